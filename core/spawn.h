/* core/spawn.h: run a shell command for one session, and learn how it
 * ended without blocking.
 *
 * kc_spawn runs `sh -c COMMAND` (sh found through PATH) with standard
 * input and output both one file descriptor (a socket of a socketpair,
 * so that the caller can half-close it), standard error ours, every other
 * descriptor of ours closed, every signal at its default disposition and
 * none blocked, in a process group of its own (a terminal's ^C reaches
 * the parent only, which then decides; the group can be signalled whole),
 * and the environment ours with the variables in env set or removed.
 * The caller watches the child's pidfd (readable once it exited) in its
 * loop and then calls kc_child_reap; nothing here waits (but
 * kc_child_kill_wait) or prints. */
#ifndef KC_SPAWN_H
#define KC_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

/* One variable for the command: set to value, or removed when value is
 * NULL (so that a KTLSCTL_SNI from our own environment is not mistaken
 * for the client's). */
struct kc_env_var {
	const char *name;
	const char *value;
};

struct kc_child {
	pid_t pid;                 /* 0: none */
	int pidfd;                 /* readable once the child exited; -1: none */
	bool reaped;
	int status;                /* waitpid's, once reaped */
};

/* Start command on fd (which stays open here: close it after).  -1 with
 * *err (KC_E_IO) when it cannot be started: sh not found, no processes
 * or memory left, no pidfd (Linux before 5.3). */
int kc_spawn(const char *command, int fd, const struct kc_env_var *env, size_t n_env,
	     struct kc_child *out, struct kc_err *err);

/* After the pidfd became readable (or to check): 1 when the child has
 * ended and is reaped (c->status set), 0 while it runs.  The pidfd stays
 * open: the caller closes it once its loop no longer watches it (a
 * descriptor closed while watched could come back as another one). */
int kc_child_reap(struct kc_child *c);

/* Send sig to the child's process group (the command and what it
 * started), unless it is reaped already. */
void kc_child_signal(const struct kc_child *c, int sig);

/* Kill the group and wait for the child: for when no loop is left to
 * wait in. */
void kc_child_kill_wait(struct kc_child *c);

#endif
