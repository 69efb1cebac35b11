/* cli/workers.c: the main process and its workers (see workers.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/serve.h"
#include "cli/signals.h"
#include "cli/workers.h"
#include "core/ctl.h"
#include "core/handshake.h"

struct worker {
	pid_t pid;
	int pidfd;                   /* readable when it has ended */
	int reload_w;                /* reloads' ticket keys go down here */
	char *ctl_path;              /* its private control socket, or NULL */
	bool gone;
	int status;                  /* its exit status, once gone */
};

struct main_proc {
	const struct cli_opts *o;
	struct worker *w;
	unsigned n, live;
	bool stopping;
	bool failed;                 /* a worker ended unasked */
	struct kc_ctl_server *ctl;
	struct kc_ctl_workers relay;
};

/* In a worker, a reload that worked was said by the main process. */
static void worker_on_reload(void *ctx, const struct kc_creds *creds, const struct kc_err *err)
{
	if (!creds)
		cli_serve_on_reload(ctx, NULL, err);
}

/* The worker's life, in the forked child: its share of the work. */
static int run_worker(struct main_proc *m, struct kc_serve_opts *so, unsigned k,
		      int reload_r, struct kc_ctl_server *ctl, pid_t main_pid)
{
	/* Its main process gone, a worker drains and ends as at SIGTERM. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != main_pid)
		raise(SIGTERM);
	if (cli_signals_for_worker() < 0) {
		cli_error("worker %u: cannot set up its stop pipe: %s", k + 1, strerror(errno));
		return KC_E_INTERNAL;
	}
	for (unsigned i = 0; i < k; i++) {
		close(m->w[i].reload_w);
		if (m->w[i].pidfd >= 0)
			close(m->w[i].pidfd);
	}
	kc_ctl_server_drop(m->ctl);   /* the main process's to serve */
	so->stop_fd = cli_stop_fd;
	so->id_first = k + 1;
	so->id_step = m->n;
	so->max_conns = m->o->max_conns / m->n + (k < m->o->max_conns % m->n ? 1 : 0);
	if (so->reload_fd >= 0) {
		so->reload_fd = reload_r;
		so->reload_keys = true;
	} else {
		close(reload_r);
	}
	so->on_reload = worker_on_reload;
	so->ctl = ctl;
	int status = cli_serve_loop(so);
	kc_ctl_server_close(ctl);
	if (reload_r >= 0 && so->reload_fd == reload_r)
		close(reload_r);
	for (unsigned i = 0; i < m->n; i++)
		free(m->w[i].ctl_path);
	free(m->w);
	return status;
}

static void signal_all(struct main_proc *m, int sig)
{
	for (unsigned i = 0; i < m->n; i++)
		if (!m->w[i].gone && m->w[i].pid > 0)   /* never kill(0): our group */
			kill(m->w[i].pid, sig);
}

/* SIGHUP: the files again, one line, and the new ticket key to all. */
static void reload(struct main_proc *m)
{
	char buf[64];
	ssize_t r;
	while ((r = read(cli_reload_fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
		;
	if (m->stopping)
		return;
	struct kc_err err = { 0 };
	struct kc_creds *c;
	unsigned char key[KC_TICKET_KEY_SIZE];
	if (kc_creds_new(&m->o->tls, &c, &err) < 0) {
		cli_serve_on_reload((void *)m->o, NULL, &err);
		return;
	}
	if (kc_creds_ticket_key(c, key, &err) < 0) {
		cli_serve_on_reload((void *)m->o, NULL, &err);
		kc_creds_free(c);
		return;
	}
	for (unsigned i = 0; i < m->n; i++) {
		/* A full pipe holds keys the worker has not read yet: the
		 * newest counts, and this one cannot be split (< PIPE_BUF). */
		if (!m->w[i].gone && write(m->w[i].reload_w, key, sizeof key) < 0 && errno != EAGAIN)
			cli_error("worker %u (pid %d) cannot be told to reload: %s", i + 1,
				  (int)m->w[i].pid, strerror(errno));
	}
	gnutls_memset(key, 0, sizeof key);
	cli_serve_on_reload((void *)m->o, c, NULL);
	kc_creds_free(c);
}

/* A worker's pidfd is readable: it has ended. */
static void reap(struct main_proc *m, unsigned i)
{
	struct worker *w = &m->w[i];
	int st;
	pid_t r;
	while ((r = waitpid(w->pid, &st, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r != w->pid)
		return;
	w->gone = true;
	m->live--;
	close(w->pidfd);
	w->pidfd = -1;
	close(w->reload_w);
	w->reload_w = -1;
	w->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (m->stopping)
		return;
	char how[64];
	const char *name = WIFSIGNALED(st) ? sigabbrev_np(WTERMSIG(st)) : NULL;
	if (WIFSIGNALED(st) && name)
		snprintf(how, sizeof how, "was killed by SIG%s", name);
	else if (WIFSIGNALED(st))
		snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
	cli_error("worker %u (pid %d) %s while serving: stopping the other workers (their "
		  "sessions drain), exit status 1", i + 1, (int)w->pid, how);
	m->failed = true;
	m->stopping = true;
	signal_all(m, SIGTERM);
}

/* The main process's loop: signals, reloads, workers' ends and the
 * control socket, until every worker is gone. */
static void supervise(struct main_proc *m)
{
	while (m->live > 0) {
		struct pollfd fds[3 + 1024 + KC_CTL_MAX_FDS];
		int n = 0, first_w, first_ctl;
		int stop_i = -1, reload_i = -1;
		if (!m->stopping && cli_stop_fd >= 0) {
			stop_i = n;
			fds[n++] = (struct pollfd){ .fd = cli_stop_fd, .events = POLLIN };
		}
		if (cli_reload_fd >= 0) {
			reload_i = n;
			fds[n++] = (struct pollfd){ .fd = cli_reload_fd, .events = POLLIN };
		}
		first_w = n;
		for (unsigned i = 0; i < m->n; i++)
			fds[n++] = (struct pollfd){ .fd = m->w[i].gone ? -1 : m->w[i].pidfd,
						    .events = POLLIN };
		first_ctl = n;
		if (m->ctl)
			n += kc_ctl_server_fds(m->ctl, fds + n, KC_CTL_MAX_FDS);
		if (poll(fds, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			cli_error("the main process cannot wait (poll: %s): stopping the workers",
				  strerror(errno));
			m->failed = m->stopping = true;
			signal_all(m, SIGTERM);
			/* their ends, blocking */
			for (unsigned i = 0; i < m->n; i++)
				if (!m->w[i].gone && waitpid(m->w[i].pid, &m->w[i].status, 0) > 0)
					m->w[i].gone = true;
			return;
		}
		if (stop_i >= 0 && fds[stop_i].revents) {
			m->stopping = true;
			signal_all(m, cli_stop_signal ? (int)cli_stop_signal : SIGTERM);
		}
		if (reload_i >= 0 && fds[reload_i].revents)
			reload(m);
		for (unsigned i = 0; i < m->n; i++)
			if (fds[first_w + (int)i].revents)
				reap(m, i);
		if (m->ctl && n > first_ctl)
			kc_ctl_server_ready_workers(m->ctl, &m->relay, fds + first_ctl, n - first_ctl);
	}
}

/* The main process's exit status: a worker's failure before a plain
 * "stopped by signal N". */
static int worst(const struct main_proc *m)
{
	if (m->failed)
		return KC_E_INTERNAL;
	int plain = cli_interrupted_status();
	for (unsigned i = 0; i < m->n; i++)
		if (m->w[i].status != plain && m->w[i].status != 0)
			return m->w[i].status;
	return plain;
}

int cli_serve_workers(const struct cli_opts *o, struct kc_serve_opts *so)
{
	struct kc_err err = { 0 };
	struct main_proc m = { .o = o, .n = o->workers };
	pid_t main_pid = getpid();
	m.w = calloc(m.n, sizeof *m.w);
	const char **paths = calloc(m.n, sizeof *paths);
	if (!m.w || !paths) {
		free(m.w);
		free(paths);
		close(so->listen_fd);
		kc_err_set(&err, KC_E_INTERNAL, "out of memory");
		return cli_fail(&err);
	}
	m.ctl = cli_ctl_open("these sessions");
	unsigned k;
	for (k = 0; k < m.n; k++) {
		struct worker *w = &m.w[k];
		struct kc_ctl_server *wctl = NULL;
		int rp[2];
		w->pidfd = w->reload_w = -1;
		if (m.ctl) {
			char name[48];
			snprintf(name, sizeof name, "%d.w%u", (int)main_pid, k + 1);
			if (kc_ctl_server_open_as(name, &wctl, &err) < 0) {
				cli_notice("worker %u has no control socket (ktlsctl stats will not "
					   "see its sessions): %s", k + 1, err.msg);
				wctl = NULL;
			} else {
				w->ctl_path = strdup(kc_ctl_server_path(wctl));
			}
		}
		if (pipe2(rp, O_CLOEXEC | O_NONBLOCK) < 0) {
			kc_err_errno(&err, KC_E_INTERNAL, errno, "cannot start worker %u (pipe)", k + 1);
			kc_ctl_server_close(wctl);
			break;
		}
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		if (pid == 0) {
			close(rp[1]);
			free(paths);
			return run_worker(&m, so, k, rp[0], wctl, main_pid);
		}
		close(rp[0]);
		if (pid < 0) {
			kc_err_errno(&err, KC_E_INTERNAL, errno, "cannot start worker %u (fork)", k + 1);
			close(rp[1]);
			kc_ctl_server_close(wctl);
			break;
		}
		kc_ctl_server_drop(wctl);   /* the worker serves it; the file stays */
		w->pid = pid;
		w->reload_w = rp[1];
		w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		m.live++;
		if (w->pidfd < 0) {
			kc_err_errno(&err, KC_E_INTERNAL, errno, "cannot watch worker %u (pidfd_open)",
				     k + 1);
			k++;
			break;
		}
	}
	close(so->listen_fd);   /* the workers' now */
	for (unsigned i = 0; i < m.n; i++)
		paths[i] = m.w[i].ctl_path ? m.w[i].ctl_path : "";
	m.relay = (struct kc_ctl_workers){ .n = m.n, .paths = paths,
		.mode = o->accept ? "originate" : o->forward ? "forward"
		      : o->exec_command ? "exec" : "echo" };
	int status;
	if (k < m.n) {
		/* Not all could start: those that did stop again. */
		cli_error("%s; stopping the %u started", err.msg, m.live);
		m.stopping = true;
		signal_all(&m, SIGTERM);
		for (unsigned i = 0; i < m.n; i++)
			if (m.w[i].pid > 0 && !m.w[i].gone)
				waitpid(m.w[i].pid, NULL, 0);
		status = err.status ? err.status : KC_E_INTERNAL;
	} else {
		supervise(&m);
		status = worst(&m);
	}
	kc_ctl_server_close(m.ctl);
	for (unsigned i = 0; i < m.n; i++) {
		if (m.w[i].ctl_path)
			unlink(m.w[i].ctl_path);   /* a worker killed left it */
		free(m.w[i].ctl_path);
		if (m.w[i].pidfd >= 0)
			close(m.w[i].pidfd);
		if (m.w[i].reload_w >= 0)
			close(m.w[i].reload_w);
	}
	free(paths);
	free(m.w);
	return status;
}
