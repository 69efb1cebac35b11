/* core/ctl.h: each session's control socket, and the client side that
 * `ktlsctl stats`, `keyupdate` and `tickets` use.
 *
 * A session serves a Unix stream socket <pid>.sock in a private runtime
 * directory ($XDG_RUNTIME_DIR/ktlsctl, else /tmp/ktlsctl-UID), mode 0600
 * in a 0700 directory that must belong to us.  Only the same user or root
 * is answered (SO_PEERCRED, not just the file mode).
 *
 * Protocol, version 2, one request per connection:
 *   request:  "KTLSCTL/2 STATS\n" | "KTLSCTL/2 TICKETS\n"
 *             | "KTLSCTL/2 KEYUPDATE\n" | "KTLSCTL/2 KEYUPDATE request\n"
 *   response: "KTLSCTL/2 OK\n" then one JSON object on one line (the
 *             session's report, core/diag/session_view.h; {} for
 *             KEYUPDATE) and "\n", or "KTLSCTL/2 ERR message\n".
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
#define KC_CTL_RESPONSE_MAX 16384
#define KC_CTL_DIR_MAX 90     /* leaves room for "/PID.sock" in sun_path */

struct kc_ctl_server;

/* The directory sessions use; create it (0700) when asked. */
int kc_ctl_dir(char *buf, size_t len, bool create, struct kc_err *err);

int kc_ctl_server_open(struct kc_ctl_server **out, struct kc_err *err);
void kc_ctl_server_close(struct kc_ctl_server *s);   /* removes the socket */
const char *kc_ctl_server_path(const struct kc_ctl_server *s);
int kc_ctl_server_fds(struct kc_ctl_server *s, struct pollfd *fds, int max);
void kc_ctl_server_ready(struct kc_ctl_server *s, struct kc_conn *conn,
			 const struct kc_session_info *info, const struct pollfd *fds, int n);

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
 * message, an answer cut short ("incomplete answer"), malformed, in
 * another protocol version (which one, and what to do), or none;
 * KC_E_INTERNAL: out of memory. */
int kc_ctl_parse_response(const char *answer, size_t len, pid_t pid, struct kc_view **out,
			  struct kc_err *err);

#endif
