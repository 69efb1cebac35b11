/* cli/hsreport.h: the handshake report as the options ask for it: -v's
 * lines on stderr, --show-certs, --save-certs and --info-json. */
#ifndef CLI_HSREPORT_H
#define CLI_HSREPORT_H

#include <gnutls/gnutls.h>

#include "cli/opts.h"

/* Report the finished handshake on session with peer ("addr:port").
 * 0, or the exit status after saying why (a file that cannot be written). */
int cli_hsreport(const struct cli_opts *o, gnutls_session_t session, const char *peer);

#endif
