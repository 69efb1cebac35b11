/* cli/opts.h: the command line: its tables, parsed into one struct. */
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
#include "core/starttls.h"

/* --eof linger's quiet time: gnutls-cli's at the end of its input. */
#define CLI_LINGER_DEFAULT_MS 2000

enum cli_cmd {
	CLI_CMD_NONE, CLI_CMD_CONNECT, CLI_CMD_LISTEN, CLI_CMD_SELFTEST,
	CLI_CMD_STATS, CLI_CMD_KEYUPDATE, CLI_CMD_TICKETS, CLI_CMD_PROBE,
};

/* What `stats` writes: text for people (brief, or whole with -v), the
 * JSON document, or metrics in one of Prometheus's exposition formats. */
enum cli_stats_format {
	CLI_STATS_TEXT, CLI_STATS_JSON, CLI_STATS_OPENMETRICS, CLI_STATS_PROMETHEUS,
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
	/* listen: serving many (cli/serve.c) */
	bool forward;                  /* --forward HOST:PORT */
	struct kc_hostport forward_hp;
	const char *forward_arg;
	const char *exec_command;      /* --exec COMMAND */
	unsigned max_conns;            /* --max-conns, default 1024 */
	unsigned workers;              /* --workers, default 1 (auto: the online CPUs) */
	unsigned drain_timeout_ms;     /* --drain-timeout, default 10 s */
	bool log_json;                 /* --log-format json */
	/* connect --accept [ADDR]:PORT: a TLS connection to HOST:PORT for
	 * each plain client accepted there (serving many) */
	bool accept;
	struct kc_hostport accept_hp;
	const char *target_arg;        /* connect's HOST:PORT as given */
	bool commands;                 /* '/' lines are commands in pipe mode */
	bool crlf;                     /* interactive lines end in CR LF */
	bool no_zerocopy;              /* kernel channel: no sendfile/splice */
	enum kc_eof_mode eof;          /* when close_notify follows the end of input */
	unsigned linger_ms;            /* --eof linger=SECS */
	uint64_t key_update_after;     /* records; 0: near the cipher's limit */
	const char *session_in, *session_out;
	/* connect and probe --starttls PROTO: its preamble before TLS */
	const struct kc_starttls_proto *starttls;
	/* the handshake report (cli/hsreport.c) */
	bool show_certs;               /* --show-certs: the peer's chain as PEM on stderr */
	const char *save_certs;        /* --save-certs FILE */
	const char *info_json;         /* --info-json FILE */
	const char *early_data;        /* connect --early-data FILE */
	/* KTLSCTL_TEST_SOFT_NOREKEY=1 (man page, ENVIRONMENT): the user-space
	 * channel plays a kernel that cannot rekey, so that the suites can
	 * test Linux before 6.14's behaviour on any machine. */
	bool soft_no_rekey;
	/* stats, keyupdate, tickets */
	bool json;
	unsigned watch_ms;
	pid_t target_pid;              /* 0: every session */
	enum cli_stats_format stats_format;
	const char *output;            /* stats --output FILE */
	bool serve;                    /* stats --serve [ADDR]:PORT */
	struct kc_hostport serve_hp;   /* its address; "" given: loopback */
	bool request_peer;
	unsigned long session_id;      /* keyupdate, tickets --session: 0 none */
	bool require_kernel;           /* selftest: fail (7) without the kernel path */
	/* probe */
	uint32_t probe_only;           /* --only: bit i for check i (core/peercheck.h) */
	bool probe_list, probe_http;
	const char *probe_send;        /* --send FILE */
	unsigned probe_timeout_ms;     /* --timeout, default 5 s */
	uint64_t probe_volume;         /* --volume, default KC_PC_VOLUME_DEFAULT */
	enum cli_verbosity verbosity;
};

/* The command line as tables, one per subcommand, in the style of tmux's
 * cmd_entry: getopt's arrays, --help, the parse dispatch and the shell
 * completion helper (cli/complete.c) are all made from them at run time,
 * so an option is described in exactly one place. */

/* What completes an argument when it is not one of a fixed list. */
enum cli_hint { CLI_HINT_NONE, CLI_HINT_FILE, CLI_HINT_HOST, CLI_HINT_PID };

/* One value of an option that takes a fixed list of them.  A name of the
 * form "linger=SECS" stands for "linger=" followed by a parameter. */
struct cli_value {
	const char *name;
	int code;                        /* what the option stores for it */
	const char *help;                /* for completion menus; NULL: none */
};

struct cli_option {
	const char *name;                /* long name, without "--" */
	char short_name;                 /* 0: none */
	const char *metavar;             /* its argument in --help; NULL: takes none */
	const struct cli_value *values;  /* the only values it takes, {0}-terminated */
	enum cli_hint hint;              /* what else completes its argument */
	const char *help;                /* --help text; '\n' starts a continuation line */
	int (*apply)(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		     struct kc_err *err);
};

struct cli_subcommand {
	const char *name;                /* NULL: the program itself */
	enum cli_cmd cmd;
	const char *args;                /* positional arguments ("[PID]": optional); NULL: none */
	enum cli_hint args_hint;
	const char *required;            /* options its usage line shows as required */
	const char *summary;             /* its line in `ktlsctl --help` */
	const char *description;         /* under the usage line of its --help */
	const struct cli_option *const *options;   /* NULL-terminated, in --help's order */
	/* The positional arguments, and rules that join options; a usage
	 * error as cli_parse describes. */
	int (*check)(struct cli_opts *o, const struct cli_subcommand *sub, int npos, char **pos,
		     struct kc_err *err);
	int (*run)(const struct cli_opts *o);      /* the exit status */
};

/* The program's own options (--help, --version), and the subcommands,
 * ending with an entry whose name is NULL. */
extern const struct cli_subcommand cli_program;
extern const struct cli_subcommand cli_subcommands[];

/* The subcommand called name (NULL: none), and the one for cmd
 * (CLI_CMD_NONE: cli_program). */
const struct cli_subcommand *cli_subcommand_named(const char *name);
const struct cli_subcommand *cli_subcommand_of(enum cli_cmd cmd);

/* sub's option whose long name is the len bytes at name, or whose short
 * name is c; NULL: none. */
const struct cli_option *cli_option_named(const struct cli_subcommand *sub, const char *name,
					  size_t len);
const struct cli_option *cli_option_short(const struct cli_subcommand *sub, char c);

/* Parse argv (argv[0] is the program).  On a usage error returns -1 with
 * status KC_E_USAGE and a message naming the problem and `--help`. */
int cli_parse(int argc, char **argv, struct cli_opts *o, struct kc_err *err);

/* Whether o asks for serving many rather than one session at a time
 * (listen --forward, --exec, --echo -k; connect --accept). */
bool cli_serves_many(const struct cli_opts *o);

/* --help text for a subcommand (CLI_CMD_NONE: the program). */
void cli_usage(enum cli_cmd cmd, FILE *out);

#endif
