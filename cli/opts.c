/* cli/opts.c: the command line, parsed with getopt_long. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/opts.h"
#include "core/keys.h"

enum {
	OPT_TLS12 = 256, OPT_TLS13, OPT_CIPHER, OPT_PRIORITY, OPT_KTLS,
	OPT_HS_TIMEOUT, OPT_CONNECT_TIMEOUT, OPT_CAFILE, OPT_CERT, OPT_KEY,
	OPT_INSECURE, OPT_SNI, OPT_ALPN, OPT_ECHO, OPT_VERIFY_CLIENT,
	OPT_COMMANDS, OPT_CRLF, OPT_KEY_UPDATE_AFTER, OPT_SESSION_IN, OPT_SESSION_OUT,
	OPT_JSON, OPT_WATCH, OPT_REQUEST, OPT_REQUIRE_KERNEL, OPT_NO_ZEROCOPY,
	OPT_EOF, OPT_RECORD_SIZE_LIMIT,
};

#define COMMON_OPTIONS                                                        \
	{ "tls1.2", no_argument, NULL, OPT_TLS12 },                           \
	{ "tls1.3", no_argument, NULL, OPT_TLS13 },                           \
	{ "cipher", required_argument, NULL, OPT_CIPHER },                    \
	{ "priority", required_argument, NULL, OPT_PRIORITY },                \
	{ "ktls", required_argument, NULL, OPT_KTLS },                        \
	{ "handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT },     \
	{ "cafile", required_argument, NULL, OPT_CAFILE },                    \
	{ "cert", required_argument, NULL, OPT_CERT },                        \
	{ "key", required_argument, NULL, OPT_KEY },                          \
	{ "commands", no_argument, NULL, OPT_COMMANDS },                      \
	{ "crlf", no_argument, NULL, OPT_CRLF },                              \
	{ "key-update-after", required_argument, NULL, OPT_KEY_UPDATE_AFTER }, \
	{ "no-zerocopy", no_argument, NULL, OPT_NO_ZEROCOPY },                \
	{ "eof", required_argument, NULL, OPT_EOF },                          \
	{ "record-size-limit", required_argument, NULL, OPT_RECORD_SIZE_LIMIT }, \
	{ "quiet", no_argument, NULL, 'q' },                                  \
	{ "verbose", no_argument, NULL, 'v' },                                \
	{ "help", no_argument, NULL, 'h' }

static const struct option connect_options[] = {
	COMMON_OPTIONS,
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "sni", required_argument, NULL, OPT_SNI },
	{ "alpn", required_argument, NULL, OPT_ALPN },
	{ "session-in", required_argument, NULL, OPT_SESSION_IN },
	{ "session-out", required_argument, NULL, OPT_SESSION_OUT },
	{ 0 },
};

static const struct option listen_options[] = {
	COMMON_OPTIONS,
	{ "echo", no_argument, NULL, OPT_ECHO },
	{ "keep-open", no_argument, NULL, 'k' },
	{ "verify-client", no_argument, NULL, OPT_VERIFY_CLIENT },
	{ 0 },
};

static const struct option selftest_options[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "require-kernel", no_argument, NULL, OPT_REQUIRE_KERNEL },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static const struct option stats_options[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "watch", required_argument, NULL, OPT_WATCH },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static const struct option keyupdate_options[] = {
	{ "request", no_argument, NULL, OPT_REQUEST },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static const struct option tickets_options[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static const struct option top_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 },
};

static const char common_help[] =
	"      --tls1.2                  allow only TLS 1.2\n"
	"      --tls1.3                  allow only TLS 1.3 (default: both)\n"
	"      --cipher NAME             only this cipher (repeatable): AES-128-GCM,\n"
	"                                AES-256-GCM, CHACHA20-POLY1305, AES-128-CCM\n"
	"      --priority STRING         GnuTLS priority string (replaces the built-in one)\n"
	"      --ktls MODE               auto (default), require or off\n"
	"      --handshake-timeout SECS  give up on the handshake after SECS (default 30)\n"
	"      --eof MODE                when to send close_notify after the end of\n"
	"                                input: linger[=SECS] (default: once the peer\n"
	"                                closes or is quiet for SECS, default 2), wait\n"
	"                                (once the peer closes) or close (at once)\n"
	"      --cafile FILE             CA certificates (PEM) to verify the peer with\n"
	"      --commands                lines starting with / are session commands in\n"
	"                                pipe mode too (always on a terminal)\n"
	"      --crlf                    end the lines typed at a terminal with CR LF\n"
	"      --key-update-after N      update TLS 1.3 send keys every N records\n"
	"                                (default: shortly before the cipher's limit)\n"
	"      --record-size-limit N     announce an RFC 8449 record size limit of N\n"
	"                                bytes (64 to 16385) and refuse larger records\n"
	"      --no-zerocopy             on the kernel channel, copy through read and\n"
	"                                write instead of sendfile and splice\n";

static const char tail_help[] =
	"  -q, --quiet                   no notices on stderr (errors still shown)\n"
	"  -v, --verbose                 handshake summary and session events on stderr\n"
	"  -h, --help                    show this help\n";

void cli_usage(enum cli_cmd cmd, FILE *out)
{
	switch (cmd) {
	case CLI_CMD_CONNECT:
		fprintf(out,
			"Usage: ktlsctl connect HOST:PORT [OPTIONS]\n"
			"Connect to a TLS server, hand the connection to kernel TLS and pump\n"
			"stdin to the server and the server's data to stdout.\n\n"
			"Options:\n%s"
			"      --cert FILE               client certificate chain (PEM)\n"
			"      --key FILE                client private key (PEM)\n"
			"      --connect-timeout SECS    give up connecting after SECS (default 10)\n"
			"      --insecure                do not verify the server's certificate\n"
			"      --sni NAME                server name to send and verify (default: HOST)\n"
			"      --alpn PROTO              offer an ALPN protocol (repeatable)\n"
			"      --session-in FILE         resume the session saved in FILE\n"
			"      --session-out FILE        save the session to FILE for resumption\n"
			"                                (again whenever a new ticket arrives)\n"
			"%s", common_help, tail_help);
		break;
	case CLI_CMD_LISTEN:
		fprintf(out,
			"Usage: ktlsctl listen [ADDR]:PORT --cert FILE --key FILE [OPTIONS]\n"
			"Accept a TLS connection, hand it to kernel TLS and pump stdin to the\n"
			"client and the client's data to stdout.\n\n"
			"Options:\n%s"
			"      --cert FILE               server certificate chain (PEM), required\n"
			"      --key FILE                server private key (PEM), required\n"
			"      --echo                    echo every byte back to the client\n"
			"  -k, --keep-open               accept the next connection when one ends\n"
			"      --verify-client           require a client certificate signed by --cafile\n"
			"%s", common_help, tail_help);
		break;
	case CLI_CMD_SELFTEST:
		fprintf(out,
			"Usage: ktlsctl selftest [OPTIONS]\n"
			"Run a loopback client and server for TLS 1.2 and 1.3 with every cipher\n"
			"and report which record channel works on this machine.\n\n"
			"Options:\n"
			"      --json                    one JSON document instead of the report\n"
			"      --require-kernel          exit 7 unless the kernel carried every case\n"
			"%s", tail_help);
		break;
	case CLI_CMD_STATS:
		fprintf(out,
			"Usage: ktlsctl stats [PID] [OPTIONS]\n"
			"In short: is kernel TLS usable here (and if not, the command that fixes\n"
			"it), every kTLS socket on the machine and every running ktlsctl session,\n"
			"one line each.  With -v or --json, everything: /proc/net/tls_stat, what\n"
			"kernel TLS can do (probed on loopback sockets), each socket's and each\n"
			"session's details (records under the current key against the cipher's\n"
			"limit, bytes, key updates, tickets, uptime).  With PID: that session's\n"
			"details only.\n\n"
			"Options:\n"
			"      --json                    the whole report as one JSON document\n"
			"      --watch SECS              repeat every SECS seconds until interrupted\n"
			"  -q, --quiet                   no notices on stderr (errors still shown)\n"
			"  -v, --verbose                 the whole report; on stderr, where each part\n"
			"                                comes from\n"
			"  -h, --help                    show this help\n");
		break;
	case CLI_CMD_KEYUPDATE:
		fprintf(out,
			"Usage: ktlsctl keyupdate PID [OPTIONS]\n"
			"Make the running session PID update its TLS 1.3 send keys.\n\n"
			"Options:\n"
			"      --request                 ask the peer to update its keys too\n"
			"  -q, --quiet                   no confirmation on stderr\n"
			"  -h, --help                    show this help\n");
		break;
	case CLI_CMD_TICKETS:
		fprintf(out,
			"Usage: ktlsctl tickets PID [OPTIONS]\n"
			"Show the session tickets the running session PID received.\n\n"
			"Options:\n"
			"      --json                    JSON output\n"
			"  -h, --help                    show this help\n");
		break;
	default:
		fprintf(out,
			"Usage: ktlsctl COMMAND [OPTIONS]\n"
			"Kernel TLS (kTLS) sessions and diagnostics.\n\n"
			"Commands:\n"
			"  connect HOST:PORT             TLS client session through kernel TLS\n"
			"  listen [ADDR]:PORT            TLS server session through kernel TLS\n"
			"  selftest                      check kTLS on this machine end to end\n"
			"  stats [PID]                   the running sessions and their counters\n"
			"  keyupdate PID                 make a running session update its keys\n"
			"  tickets PID                   a running session's tickets\n\n"
			"Options:\n"
			"  -h, --help                    show this help (COMMAND --help for a command)\n"
			"  -V, --version                 show the version\n");
		break;
	}
}

static int usage_error(struct kc_err *err, const char *cmd, const char *msg)
{
	return kc_err_set(err, KC_E_USAGE, "%s (see 'ktlsctl %s%s--help')", msg,
			  cmd ? cmd : "", cmd ? " " : "");
}

static int parse_seconds(const char *arg, const char *opt, unsigned *ms, struct kc_err *err)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(v) || v <= 0 || v > 86400)
		return kc_err_set(err, KC_E_USAGE,
				  "invalid %s '%s': give seconds, more than 0 and at most 86400",
				  opt, arg);
	*ms = (unsigned)(v * 1000 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

/* --eof close | wait | linger[=SECS] */
static int parse_eof(const char *arg, struct cli_opts *o, struct kc_err *err)
{
	if (strcmp(arg, "close") == 0)
		o->eof = KC_EOF_CLOSE;
	else if (strcmp(arg, "wait") == 0)
		o->eof = KC_EOF_WAIT;
	else if (strcmp(arg, "linger") == 0) {
		o->eof = KC_EOF_LINGER;
		o->linger_ms = CLI_LINGER_DEFAULT_MS;
	} else if (strncmp(arg, "linger=", 7) == 0) {
		o->eof = KC_EOF_LINGER;
		return parse_seconds(arg + 7, "--eof linger=SECS", &o->linger_ms, err);
	} else
		return kc_err_set(err, KC_E_USAGE,
				  "invalid --eof '%s': use linger, linger=SECS, wait or close", arg);
	return 0;
}

static int parse_option(struct cli_opts *o, int c, const char *cmd, struct kc_err *err)
{
	switch (c) {
	case OPT_TLS12: o->tls.versions |= KC_VERS_12; return 0;
	case OPT_TLS13: o->tls.versions |= KC_VERS_13; return 0;
	case OPT_CIPHER: {
		gnutls_cipher_algorithm_t ci = kc_cipher_from_name(optarg);
		if (ci == GNUTLS_CIPHER_UNKNOWN)
			return kc_err_set(err, KC_E_USAGE,
					  "unknown cipher '%s': use AES-128-GCM, AES-256-GCM, "
					  "CHACHA20-POLY1305 or AES-128-CCM", optarg);
		for (size_t i = 0; i < o->tls.n_ciphers; i++)
			if (o->tls.ciphers[i] == ci)
				return 0;
		o->tls.ciphers[o->tls.n_ciphers++] = ci;
		return 0;
	}
	case OPT_PRIORITY: o->tls.priority = optarg; return 0;
	case OPT_KTLS:
		if (strcmp(optarg, "auto") == 0)
			o->ktls = KC_KTLS_AUTO;
		else if (strcmp(optarg, "require") == 0)
			o->ktls = KC_KTLS_REQUIRE;
		else if (strcmp(optarg, "off") == 0)
			o->ktls = KC_KTLS_OFF;
		else
			return kc_err_set(err, KC_E_USAGE,
					  "invalid --ktls '%s': use auto, require or off", optarg);
		return 0;
	case OPT_HS_TIMEOUT:
		return parse_seconds(optarg, "--handshake-timeout", &o->tls.handshake_timeout_ms, err);
	case OPT_CONNECT_TIMEOUT:
		return parse_seconds(optarg, "--connect-timeout", &o->connect_timeout_ms, err);
	case OPT_CAFILE: o->tls.cafile = optarg; return 0;
	case OPT_CERT: o->tls.certfile = optarg; return 0;
	case OPT_KEY: o->tls.keyfile = optarg; return 0;
	case OPT_INSECURE: o->tls.insecure = true; return 0;
	case OPT_SNI:
		if (!*optarg)
			return kc_err_set(err, KC_E_USAGE, "--sni needs a name");
		o->sni = optarg;
		return 0;
	case OPT_ALPN:
		if (!*optarg || strlen(optarg) > 255)
			return kc_err_set(err, KC_E_USAGE, "--alpn needs a protocol name of 1-255 bytes");
		if (o->tls.n_alpn == KC_MAX_ALPN)
			return kc_err_set(err, KC_E_USAGE, "at most %d --alpn protocols", KC_MAX_ALPN);
		o->tls.alpn[o->tls.n_alpn++] = optarg;
		return 0;
	case OPT_ECHO: o->echo = true; return 0;
	case OPT_COMMANDS: o->commands = true; return 0;
	case OPT_CRLF: o->crlf = true; return 0;
	case OPT_NO_ZEROCOPY: o->no_zerocopy = true; return 0;
	case OPT_EOF: return parse_eof(optarg, o, err);
	case OPT_RECORD_SIZE_LIMIT: {
		char *end;
		errno = 0;
		unsigned long v = strtoul(optarg, &end, 10);
		if (errno || end == optarg || *end || optarg[0] == '-' || v < 64 || v > 16385)
			return kc_err_set(err, KC_E_USAGE,
					  "invalid --record-size-limit '%s': give a number of bytes "
					  "from 64 to 16385 (RFC 8449)", optarg);
		o->tls.record_size_limit = (unsigned)v;
		return 0;
	}
	case OPT_KEY_UPDATE_AFTER: {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(optarg, &end, 10);
		if (errno || end == optarg || *end || v == 0 || optarg[0] == '-')
			return kc_err_set(err, KC_E_USAGE,
					  "invalid --key-update-after '%s': give a number of records "
					  "(1 or more)", optarg);
		o->key_update_after = v;
		return 0;
	}
	case OPT_SESSION_IN: o->session_in = optarg; return 0;
	case OPT_JSON: o->json = true; return 0;
	case OPT_REQUEST: o->request_peer = true; return 0;
	case OPT_REQUIRE_KERNEL: o->require_kernel = true; return 0;
	case OPT_WATCH:
		return parse_seconds(optarg, "--watch", &o->watch_ms, err);
	case OPT_SESSION_OUT: o->session_out = optarg; return 0;
	case 'k': o->keep_open = true; return 0;
	case OPT_VERIFY_CLIENT: o->tls.verify_client = true; return 0;
	case 'q': o->verbosity = CLI_QUIET; return 0;
	case 'v': o->verbosity = CLI_VERBOSE; return 0;
	case 'h': o->help = true; return 0;
	case 'V': o->version = true; return 0;
	default:
		return usage_error(err, cmd, "invalid option");
	}
}

/* The PID argument: optional for stats, required for the others. */
static int parse_pid(struct cli_opts *o, int npos, char **pos, const char *cmd,
		     struct kc_err *err)
{
	if (npos > 1 || (npos == 0 && o->cmd != CLI_CMD_STATS))
		return usage_error(err, cmd, npos ? "give at most one PID" : "give the session's PID");
	if (npos == 1) {
		char *end;
		errno = 0;
		long v = strtol(pos[0], &end, 10);
		if (errno || *end || v <= 0 || v > 4194304)
			return kc_err_set(err, KC_E_USAGE,
					  "invalid PID '%s': give a ktlsctl session's process id "
					  "(see 'ktlsctl stats')", pos[0]);
		o->target_pid = (pid_t)v;
	}
	return 0;
}

int cli_parse(int argc, char **argv, struct cli_opts *o, struct kc_err *err)
{
	static const struct { const char *name; enum cli_cmd cmd; const struct option *opts;
			      const char *shortopts; } cmds[] = {
		{ "connect", CLI_CMD_CONNECT, connect_options, "qvh" },
		{ "listen", CLI_CMD_LISTEN, listen_options, "qvhk" },
		{ "selftest", CLI_CMD_SELFTEST, selftest_options, "qvh" },
		{ "stats", CLI_CMD_STATS, stats_options, "qvh" },
		{ "keyupdate", CLI_CMD_KEYUPDATE, keyupdate_options, "qh" },
		{ "tickets", CLI_CMD_TICKETS, tickets_options, "h" },
	};
	const struct option *longopts = top_options;
	const char *shortopts = "hV", *cmd = NULL;
	int first = 1;

	memset(o, 0, sizeof *o);
	o->connect_timeout_ms = 10000;
	o->tls.handshake_timeout_ms = 30000;
	o->eof = KC_EOF_LINGER;
	o->linger_ms = CLI_LINGER_DEFAULT_MS;
	if (argc > 1 && argv[1][0] != '-') {
		for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
			if (strcmp(argv[1], cmds[i].name) == 0) {
				o->cmd = cmds[i].cmd;
				longopts = cmds[i].opts;
				shortopts = cmds[i].shortopts;
				cmd = cmds[i].name;
			}
		if (!cmd)
			return kc_err_set(err, KC_E_USAGE,
					  "unknown command '%s' (see 'ktlsctl --help')", argv[1]);
		first = 2;
	}

	/* getopt_long permutes argv so positional arguments end up last. */
	optind = first;
	opterr = 0;
	int c;
	char gopts[16];   /* leading ':' reports a missing argument as ':' */
	snprintf(gopts, sizeof gopts, ":%s", shortopts);
	while ((c = getopt_long(argc, argv, gopts, longopts, NULL)) != -1) {
		if (c == '?') {
			char msg[160];
			const char *arg = argv[optind - 1];
			/* glibc stores a short option as a plain char: a byte above
			 * 127 comes back negative. */
			int oc = optopt < 0 ? (unsigned char)optopt : optopt;
			if (oc > 0 && oc < 256 && strncmp(arg, "--", 2) != 0)
				snprintf(msg, sizeof msg, isprint(oc) ? "unknown option '-%c'"
								      : "unknown option '-\\x%02x'", oc);
			else if (optopt && strncmp(arg, "--", 2) == 0 && strchr(arg, '='))
				/* a long option that takes no value was given one */
				snprintf(msg, sizeof msg, "option '%.*s' takes no argument",
					 (int)(strchr(arg, '=') - arg), arg);
			else
				snprintf(msg, sizeof msg, "unknown option '%.100s'", arg);
			return usage_error(err, cmd, msg);
		}
		if (c == ':') {
			char msg[128];
			snprintf(msg, sizeof msg, "option '%s' needs an argument", argv[optind - 1]);
			return usage_error(err, cmd, msg);
		}
		if (parse_option(o, c, cmd, err) < 0)
			return -1;
	}
	if (o->help || o->version)
		return 0;

	int npos = argc - optind;
	switch (o->cmd) {
	case CLI_CMD_NONE:
		return usage_error(err, NULL, npos ? "unknown command" : "no command given");
	case CLI_CMD_SELFTEST:
		if (npos)
			return usage_error(err, cmd, "selftest takes no arguments");
		return 0;
	case CLI_CMD_STATS:
	case CLI_CMD_KEYUPDATE:
	case CLI_CMD_TICKETS:
		return parse_pid(o, argc - optind, argv + optind, cmd, err);
	case CLI_CMD_CONNECT:
	case CLI_CMD_LISTEN:
		break;
	}
	if (npos != 1)
		return usage_error(err, cmd, o->cmd == CLI_CMD_CONNECT
					     ? "give exactly one HOST:PORT"
					     : "give exactly one [ADDR]:PORT");
	if (kc_parse_hostport(argv[optind], o->cmd == CLI_CMD_LISTEN, &o->hp, err) < 0)
		return -1;
	o->tls.role = o->cmd == CLI_CMD_CONNECT ? KC_CLIENT : KC_SERVER;
	if (o->cmd == CLI_CMD_LISTEN && (!o->tls.certfile || !o->tls.keyfile))
		return usage_error(err, cmd, "listen needs --cert FILE and --key FILE");
	if (o->cmd == CLI_CMD_CONNECT && (!o->tls.certfile != !o->tls.keyfile))
		return usage_error(err, cmd, "--cert and --key go together");
	if (o->tls.verify_client && !o->tls.cafile)
		return usage_error(err, cmd, "--verify-client needs --cafile FILE");
	if (o->tls.priority && (o->tls.versions || o->tls.n_ciphers))
		return usage_error(err, cmd,
				   "--priority replaces --tls1.2/--tls1.3/--cipher: give one or the other");
	size_t recv_size;
	if (kc_tls_recv_size(&o->tls, &recv_size, err) < 0)
		return -1;
	if (o->cmd == CLI_CMD_CONNECT) {
		/* SNI carries names only; the certificate is checked against
		 * --sni, else the host (a name or an IP address). */
		o->tls.sni = o->sni ? o->sni : (o->hp.host_is_ip ? NULL : o->hp.host);
		o->tls.verify_name = o->sni ? o->sni : o->hp.host;
	}
	return 0;
}
