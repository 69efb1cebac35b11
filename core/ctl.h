/* core/ctl.h: each session's control socket, and the client side that
 * `ktlsctl stats`, `keyupdate` and `tickets` use.
 *
 * A session serves a Unix stream socket <pid>.sock in a private runtime
 * directory ($XDG_RUNTIME_DIR/ktlsctl, else /tmp/ktlsctl-UID), mode 0600
 * in a 0700 directory that must belong to us.  Only the same user or root
 * is answered (SO_PEERCRED, not just the file mode).
 *
 * Protocol, version 1, one request per connection:
 *   request:  "KTLSCTL/1 STATS\n" | "KTLSCTL/1 TICKETS\n"
 *             | "KTLSCTL/1 KEYUPDATE\n" | "KTLSCTL/1 KEYUPDATE request\n"
 *   response: "KTLSCTL/1 OK\n" then "key value\n" lines, then ".\n"
 *             or "KTLSCTL/1 ERR message\n".
 * Requests longer than 256 bytes, unknown requests, other versions and
 * lines with a NUL byte get an ERR; bytes after the first line are
 * ignored.  The server never blocks the session's data path on a client. */
#ifndef KC_CTL_H
#define KC_CTL_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <gnutls/gnutls.h>

#include "core/conn.h"
#include "core/err.h"

#define KC_CTL_MAX_FDS 32     /* the listener and up to 31 clients */
#define KC_CTL_RESPONSE_MAX 16384
#define KC_CTL_DIR_MAX 90     /* leaves room for "/PID.sock" in sun_path */

struct kc_ctl_server;

struct kc_ctl_info {
	const char *role;             /* "client" / "server" */
	const char *peer;             /* "addr:port" */
	gnutls_session_t session;
	time_t started;
};

/* The directory sessions use; create it (0700) when asked. */
int kc_ctl_dir(char *buf, size_t len, bool create, struct kc_err *err);

int kc_ctl_server_open(struct kc_ctl_server **out, struct kc_err *err);
void kc_ctl_server_close(struct kc_ctl_server *s);   /* removes the socket */
const char *kc_ctl_server_path(const struct kc_ctl_server *s);
int kc_ctl_server_fds(struct kc_ctl_server *s, struct pollfd *fds, int max);
void kc_ctl_server_ready(struct kc_ctl_server *s, struct kc_conn *conn,
			 const struct kc_ctl_info *info, const struct pollfd *fds, int n);

/* Client: the pids of the sessions in the directory (stale sockets of
 * dead processes are removed), and one request to one session.  *resp is
 * malloc'd: the "key value" lines after the OK line (see
 * kc_ctl_parse_response). */
int kc_ctl_list(pid_t *pids, size_t max, size_t *n, struct kc_err *err);
int kc_ctl_request(pid_t pid, const char *request, char **resp, struct kc_err *err);

/* The client's reading of a session's answer: answer is what came back
 * (len bytes, any content; only the first KC_CTL_RESPONSE_MAX count), pid
 * names the session in messages.  0 and *resp as for kc_ctl_request on an
 * OK answer ending in a "." line; else -1 with *err (KC_E_PROTOCOL: the
 * session's ERR message, an incomplete answer or none; KC_E_INTERNAL: out
 * of memory) and *resp NULL.  Both *resp and the message are printable
 * ASCII (and line ends in *resp): any other byte becomes '?'. */
int kc_ctl_parse_response(const char *answer, size_t len, pid_t pid, char **resp,
			  struct kc_err *err);

/* Split a response into fields: calls fn(ctx, key, value) per line. */
int kc_ctl_fields(const char *resp, void (*fn)(void *ctx, const char *key, const char *value),
		  void *ctx);

#endif
