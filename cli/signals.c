/* cli/signals.c: the stop signals, as a flag and a self-pipe; SIGHUP
 * (serving many) as another self-pipe. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli/signals.h"

volatile sig_atomic_t cli_stop_signal;
int cli_stop_fd = -1;
static int stop_pipe_w = -1;
int cli_reload_fd = -1;
static int reload_pipe_w = -1;

static void on_signal(int sig)
{
	int saved = errno;
	cli_stop_signal = sig;
	if (stop_pipe_w >= 0 && write(stop_pipe_w, "", 1) < 0) {
		/* full pipe: a stop is already pending */
	}
	errno = saved;
}

void cli_install_signals(void)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
		cli_stop_fd = fds[0];
		stop_pipe_w = fds[1];
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void on_reload_signal(int sig)
{
	int saved = errno;
	if (reload_pipe_w >= 0 && write(reload_pipe_w, "", 1) < 0) {
		/* full pipe: a reload is already pending */
	}
	errno = saved;
}

int cli_install_reload_signal(void)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	cli_reload_fd = fds[0];
	reload_pipe_w = fds[1];
	/* SA_RESTART: a reload is no reason to cut a wait short. */
	struct sigaction sa = { .sa_handler = on_reload_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGHUP, &sa, NULL);
}

int cli_signals_for_worker(void)
{
	int fds[2];
	signal(SIGHUP, SIG_IGN);
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	/* The main process's ends are its own; no handler runs between
	 * these two lines that could use a closed one (a signal here still
	 * sets cli_stop_signal, and the new pipe is checked after). */
	int old_r = cli_stop_fd, old_w = stop_pipe_w;
	cli_stop_fd = fds[0];
	stop_pipe_w = fds[1];
	if (old_r >= 0)
		close(old_r);
	if (old_w >= 0)
		close(old_w);
	if (cli_stop_signal && write(stop_pipe_w, "", 1) < 0) {
		/* cannot be full: it is new */
	}
	if (cli_reload_fd >= 0)
		close(cli_reload_fd);
	if (reload_pipe_w >= 0)
		close(reload_pipe_w);
	cli_reload_fd = reload_pipe_w = -1;
	return 0;
}

int cli_interrupted_status(void)
{
	return 128 + (int)cli_stop_signal;
}
