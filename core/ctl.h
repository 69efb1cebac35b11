/* core/ctl.h: each session's control socket, and the client side that
 * `ktlsctl stats`, `keyupdate` and `tickets` use.
 *
 * A session serves a Unix stream socket <pid>.sock in a private runtime
 * directory ($XDG_RUNTIME_DIR/ktlsctl, else /tmp/ktlsctl-UID), mode 0600
 * in a 0700 directory that must belong to us.  Only the same user or root
 * is answered (SO_PEERCRED, not just the file mode).
 *
 * A process that serves many sessions (core/serve.h) serves the same
 * socket for all of them, each named by its serving session id (the
 * number in its log line).
 *
 * Protocol, version 2, one request per connection:
 *   request:  "KTLSCTL/2 STATS[ ID]\n" | "KTLSCTL/2 TICKETS[ ID]\n"
 *             | "KTLSCTL/2 KEYUPDATE[ ID][ request]\n"
 *             ID: a serving session id (decimal, 1 or more, no leading
 *             zero); a serving process needs it, a single session
 *             refuses it.
 *   response: "KTLSCTL/2 OK\n" then one JSON object on one line and
 *             "\n", or "KTLSCTL/2 ERR message\n".  The object: {} for
 *             KEYUPDATE; the session's report for STATS and TICKETS
 *             (core/diag/session_view.h); for a serving process's STATS
 *             without an id,
 *             {"pid", "serving" (its mode: echo, forward, exec, socket,
 *             originate), "accepted" (sessions so far), "sessions": [each
 *             established session's report, with "session" (its id) after
 *             "pid"]}: the member "sessions" (an array) tells the two
 *             apart.  An ERR about which session is meant (no id given to
 *             a serving process, an id it does not run, an id given to a
 *             single session) names the process itself: "process PID ...".
 *   (Added to version 2 with serving processes: a single session answers
 *   everything it answered before the same way.)
 * Requests longer than 256 bytes, unknown requests, other versions and
 * lines with a NUL byte get an ERR; bytes after the first line are
 * ignored.  A version 1 request (a ktlsctl from before) is answered in
 * version 1's own words, "KTLSCTL/1 ERR this session speaks KTLSCTL/2:
 * ...", so that client shows why.  The server never blocks the session's
 * data path on a client. */
#ifndef KC_CTL_H
#define KC_CTL_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <gnutls/gnutls.h>

#include "core/conn.h"
#include "core/diag/session_view.h"
#include "core/diag/view.h"
#include "core/err.h"

#define KC_CTL_MAX_FDS 32     /* the listener and up to 31 clients */
/* A serving process's STATS: about 700 bytes for each of up to a few
 * thousand sessions. */
#define KC_CTL_RESPONSE_MAX (4 * 1024 * 1024)
#define KC_CTL_DIR_MAX 90     /* leaves room for "/PID.sock" in sun_path */

struct kc_ctl_server;

/* A request, read from the words after "KTLSCTL/2 ". */
enum kc_ctl_op { KC_CTL_STATS, KC_CTL_TICKETS, KC_CTL_KEYUPDATE };
struct kc_ctl_req {
	enum kc_ctl_op op;
	unsigned long id;             /* 0: none given */
	bool request;                 /* KEYUPDATE request: the peer updates too */
};
/* 0, or -1 when words are no request of this protocol. */
int kc_ctl_parse_request(const char *words, struct kc_ctl_req *req);

/* What a serving process reports on: its established sessions, through
 * next (the one after *cursor, which starts at NULL; false after the
 * last), in the order accepted. */
struct kc_ctl_many {
	const char *mode;             /* "forward", ... */
	unsigned long accepted;
	bool (*next)(void *ctx, void **cursor, struct kc_conn **conn,
		     struct kc_session_info *info);   /* info->id: its id */
	/* After a key update of that session: its data path takes the
	 * record out (NULL: nothing to do). */
	void (*kick)(void *ctx, void *cursor);
	void *ctx;
};

/* A serving process with workers (listen --workers): worker i (of n)
 * serves its own sessions, with ids i+1, i+1+n, ... (core/serve.h's
 * id_first and id_step), on a control socket of its own at paths[i],
 * which no client lists (kc_ctl_server_open_as).  The main process's
 * socket answers for all of them as one serving process: STATS without
 * an id merges the workers' answers (its own pid everywhere, "accepted"
 * their sum, every session in the order of its id); a request with an
 * id goes to the worker that owns the id, and its answer comes back with
 * the main pid; an id none runs is refused in the main process's name.
 * The workers are asked one after another, each for up to 2 s, in the
 * main process's own loop (it serves nothing else). */
struct kc_ctl_workers {
	const char *mode;             /* "forward", ... */
	size_t n;
	const char *const *paths;
};

/* The directory sessions use; create it (0700) when asked. */
int kc_ctl_dir(char *buf, size_t len, bool create, struct kc_err *err);

int kc_ctl_server_open(struct kc_ctl_server **out, struct kc_err *err);
/* The same under another file name in the directory: one that does not
 * end in .sock is private (kc_ctl_list does not see it). */
int kc_ctl_server_open_as(const char *name, struct kc_ctl_server **out, struct kc_err *err);
void kc_ctl_server_close(struct kc_ctl_server *s);   /* removes the socket */
/* Our copy closed (after a fork: another process serves it); the socket
 * file stays. */
void kc_ctl_server_drop(struct kc_ctl_server *s);
const char *kc_ctl_server_path(const struct kc_ctl_server *s);
int kc_ctl_server_fds(struct kc_ctl_server *s, struct pollfd *fds, int max);
void kc_ctl_server_ready(struct kc_ctl_server *s, struct kc_conn *conn,
			 const struct kc_session_info *info, const struct pollfd *fds, int n);
/* The same for a serving process. */
void kc_ctl_server_ready_many(struct kc_ctl_server *s, const struct kc_ctl_many *many,
			      const struct pollfd *fds, int n);
/* The same for a main process and its workers. */
void kc_ctl_server_ready_workers(struct kc_ctl_server *s, const struct kc_ctl_workers *w,
				 const struct pollfd *fds, int n);

/* Client: the pids of the sessions in the directory (stale sockets of
 * dead processes are removed), and one request ("STATS", "TICKETS",
 * "KEYUPDATE [request]") to one session: 0 and *answer, the session's
 * JSON as a new tree (kc_view_free it), or -1 with *err as for
 * kc_ctl_parse_response (KC_E_CONNECT: no session answers). */
int kc_ctl_list(pid_t *pids, size_t max, size_t *n, struct kc_err *err);
int kc_ctl_request(pid_t pid, const char *request, struct kc_view **answer,
		   struct kc_err *err);

/* The client's reading of a session's answer: answer is what came back
 * (len bytes, any content; only the first KC_CTL_RESPONSE_MAX count), pid
 * names the session in messages.  0 and *out on an OK line followed by
 * one JSON object (core/diag/view_json.h); else -1, *out NULL and *err:
 * KC_E_PROTOCOL with one printable line naming the session: its ERR
 * message (KC_E_CONNECT, shown as it is, when it names the process: no
 * such session there), an answer cut short ("incomplete answer"), malformed, in
 * another protocol version (which one, and what to do), or none;
 * KC_E_INTERNAL: out of memory. */
int kc_ctl_parse_response(const char *answer, size_t len, pid_t pid, struct kc_view **out,
			  struct kc_err *err);

#endif
