/* core/spawn.c: run a shell command for one session (see spawn.h). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/spawn.h"

extern char **environ;

static bool replaced(const char *entry, const struct kc_env_var *env, size_t n_env)
{
	for (size_t i = 0; i < n_env; i++) {
		size_t len = strlen(env[i].name);
		if (strncmp(entry, env[i].name, len) == 0 && entry[len] == '=')
			return true;
	}
	return false;
}

/* Our environment without the names in env, then env's values: one
 * allocation for the array and the new strings. */
static char **build_env(const struct kc_env_var *env, size_t n_env)
{
	size_t n = 0, bytes = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	for (size_t i = 0; i < n_env; i++)
		if (env[i].value)
			bytes += strlen(env[i].name) + strlen(env[i].value) + 2;
	size_t slots = n + n_env + 1;
	char **out = malloc(slots * sizeof *out + bytes);
	if (!out)
		return NULL;
	char *str = (char *)(out + slots);
	size_t k = 0;
	for (char **e = environ; e && *e; e++)
		if (!replaced(*e, env, n_env))
			out[k++] = *e;
	for (size_t i = 0; i < n_env; i++) {
		if (!env[i].value)
			continue;
		int len = sprintf(str, "%s=%s", env[i].name, env[i].value);
		out[k++] = str;
		str += len + 1;
	}
	out[k] = NULL;
	return out;
}

int kc_spawn(const char *command, int fd, const struct kc_env_var *env, size_t n_env,
	     struct kc_child *out, struct kc_err *err)
{
	*out = (struct kc_child){ .pidfd = -1 };
	char **envp = build_env(env, n_env);
	if (!envp)
		return kc_err_set(err, KC_E_IO, "cannot start the command: out of memory");

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* Our descriptors are close-on-exec; closing the rest too keeps
	 * anything a library opened without it (or the fd itself, should it
	 * be 0 or 1 already) from leaking into the command. */
	posix_spawn_file_actions_adddup2(&fa, fd, 0);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
#ifdef HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCLOSEFROM_NP
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
	/* An ignored signal stays ignored across exec (we ignore SIGPIPE):
	 * set every one back to its default, and unblock them all. */
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETPGROUP);

	char *argv[] = { "sh", "-c", (char *)command, NULL };
	pid_t pid;
	/* glibc's posix_spawn reports a failed exec here (it waits for the
	 * child to exec), so "sh not found" is an error, not an exit 127. */
	int rc = posix_spawnp(&pid, "sh", &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(envp);
	if (rc != 0)
		return kc_err_errno(err, KC_E_IO, rc, "cannot start the command with sh -c");

	/* The child is ours and not reaped, so its pid cannot be reused
	 * before the pidfd is open. */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		int e = errno;
		*out = (struct kc_child){ .pid = pid, .pidfd = -1 };
		kc_child_kill_wait(out);
		*out = (struct kc_child){ .pidfd = -1 };
		return kc_err_errno(err, KC_E_IO, e, "cannot watch the command (pidfd_open, "
				    "Linux 5.3 or later)");
	}
	*out = (struct kc_child){ .pid = pid, .pidfd = pidfd };
	return 0;
}

int kc_child_reap(struct kc_child *c)
{
	if (c->reaped)
		return 1;
	if (c->pid <= 0)
		return 0;
	int status;
	pid_t r;
	do
		r = waitpid(c->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	/* r < 0 (ECHILD) cannot happen for our own child; say it ended. */
	c->status = r < 0 ? 0 : status;
	c->reaped = true;
	return 1;
}

void kc_child_signal(const struct kc_child *c, int sig)
{
	if (c->pid > 0 && !c->reaped && kill(-c->pid, sig) < 0)
		kill(c->pid, sig);      /* no group (it cannot be, but the child is what matters) */
}

void kc_child_kill_wait(struct kc_child *c)
{
	if (c->pid <= 0 || c->reaped)
		return;
	kc_child_signal(c, SIGKILL);
	int status = 0;
	while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
		;
	c->status = status;
	c->reaped = true;
}
