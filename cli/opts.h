/* cli/opts.h: the command line, parsed into one struct. */
#ifndef CLI_OPTS_H
#define CLI_OPTS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "cli/msg.h"
#include "core/addr.h"
#include "core/conn.h"
#include "core/handshake.h"
#include "core/pump.h"

/* --eof linger's quiet time: gnutls-cli's at the end of its input. */
#define CLI_LINGER_DEFAULT_MS 2000

enum cli_cmd {
	CLI_CMD_NONE, CLI_CMD_CONNECT, CLI_CMD_LISTEN, CLI_CMD_SELFTEST,
	CLI_CMD_STATS, CLI_CMD_KEYUPDATE, CLI_CMD_TICKETS,
};

struct cli_opts {
	enum cli_cmd cmd;
	bool help, version;
	struct kc_hostport hp;
	struct kc_tls_opts tls;
	const char *sni;               /* --sni as given */
	enum kc_ktls_mode ktls;
	unsigned connect_timeout_ms;
	bool echo, keep_open;
	bool commands;                 /* '/' lines are commands in pipe mode */
	bool crlf;                     /* interactive lines end in CR LF */
	bool no_zerocopy;              /* kernel channel: no sendfile/splice */
	enum kc_eof_mode eof;          /* when close_notify follows the end of input */
	unsigned linger_ms;            /* --eof linger=SECS */
	uint64_t key_update_after;     /* records; 0: near the cipher's limit */
	const char *session_in, *session_out;
	/* stats, keyupdate, tickets */
	bool json;
	unsigned watch_ms;
	pid_t target_pid;              /* 0: every session */
	bool request_peer;
	bool require_kernel;           /* selftest: fail (7) without the kernel path */
	enum cli_verbosity verbosity;
};

/* Parse argv (argv[0] is the program).  On a usage error returns -1 with
 * status KC_E_USAGE and a message naming the problem and `--help`. */
int cli_parse(int argc, char **argv, struct cli_opts *o, struct kc_err *err);

/* --help text for a subcommand (CLI_CMD_NONE: the program). */
void cli_usage(enum cli_cmd cmd, FILE *out);

#endif
