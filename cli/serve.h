/* cli/serve.h: listen --forward, --exec and --echo --keep-open: every
 * client at once (core/serve.h), one log line per session. */
#ifndef CLI_SERVE_H
#define CLI_SERVE_H

#include <stdbool.h>

#include "cli/opts.h"
#include "core/handshake.h"
#include "core/serve.h"

/* Serve on the listening socket lfd (taken over) until a stop; returns
 * the exit status. */
int cli_serve(const struct cli_opts *o, int lfd, struct kc_creds *creds);

/* One kc_serve_run on so, and the exit status its result means (a
 * worker's too, cli/workers.h). */
int cli_serve_loop(const struct kc_serve_opts *so);

/* What a user sees of any server on core/serve.h (listen, and stats
 * --serve over TLS), as kc_serve_opts callbacks whose ctx is the struct
 * cli_opts: a session's log line (text, or JSON with --log-format json),
 * a notice, and the line after a SIGHUP reload. */
void cli_serve_on_end(void *ctx, const struct kc_session_report *r);
void cli_serve_on_notice(void *ctx, const char *msg);
void cli_serve_on_reload(void *ctx, const struct kc_creds *creds, const struct kc_err *err);

/* This process's control socket (core/ctl.h), its path said with -v; NULL
 * when it cannot be had (said why: `whose` are then not seen by ktlsctl
 * stats).  kc_ctl_server_close it. */
struct kc_ctl_server *cli_ctl_open(const char *whose);

/* The soft limit on descriptors raised to the hard one (see serve.c). */
void cli_raise_fd_limit(void);

#endif
