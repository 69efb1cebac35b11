/* cli/opts.c: the command line: one table of options per subcommand, and
 * getopt_long arrays, --help and the parse dispatch made from them. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <unistd.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/opts.h"
#include "cli/probe.h"
#include "cli/selftest.h"
#include "cli/session.h"
#include "cli/stats.h"
#include "core/keys.h"
#include "core/peercheck.h"

/* ------------------------------------------------------------ messages */

static int usage_error(struct kc_err *err, const struct cli_subcommand *sub, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int usage_error(struct kc_err *err, const struct cli_subcommand *sub, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return kc_err_set(err, KC_E_USAGE, "%s (see 'ktlsctl %s%s--help')", msg,
			  sub->name ? sub->name : "", sub->name ? " " : "");
}

/* "WHAT 'ARG': use a, b or c", the list from the option's values;
 * WHAT defaults to "invalid --NAME". */
static int value_error(struct kc_err *err, const struct cli_option *opt, const char *what,
		       const char *arg)
{
	char list[256] = "", invalid[64];
	size_t len = 0;
	for (const struct cli_value *v = opt->values; v->name; v++) {
		int n = snprintf(list + len, sizeof list - len, "%s%s",
				 v == opt->values ? "" : v[1].name ? ", " : " or ", v->name);
		if (n < 0 || (size_t)n >= sizeof list - len)
			break;
		len += (size_t)n;
	}
	if (!what) {
		snprintf(invalid, sizeof invalid, "invalid --%s", opt->name);
		what = invalid;
	}
	return kc_err_set(err, KC_E_USAGE, "%s '%s': use %s", what, arg, list);
}

/* The value arg is, or NULL; *param gets what follows "name=" of a value
 * with a parameter (NULL for the others). */
static const struct cli_value *find_value(const struct cli_option *opt, const char *arg,
					  const char **param)
{
	*param = NULL;
	for (const struct cli_value *v = opt->values; v->name; v++) {
		const char *eq = strchr(v->name, '=');
		if (!eq && strcmp(arg, v->name) == 0)
			return v;
		if (eq && strncmp(arg, v->name, (size_t)(eq - v->name) + 1) == 0) {
			*param = arg + (eq - v->name) + 1;
			return v;
		}
	}
	return NULL;
}

static int parse_seconds(const char *arg, const char *what, unsigned *ms, struct kc_err *err)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(v) || v <= 0 || v > 86400)
		return kc_err_set(err, KC_E_USAGE,
				  "invalid %s '%s': give seconds, more than 0 and at most 86400",
				  what, arg);
	*ms = (unsigned)(v * 1000 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

/* ------------------------------------------- what each option does */

/* An option whose whole effect is one statement. */
#define SETTER(fn, statement)                                                 \
	static int fn(struct cli_opts *o, const struct cli_option *opt,       \
		      const char *arg, struct kc_err *err)                   \
	{                                                                     \
		statement;                                                    \
		return 0;                                                     \
	}

SETTER(set_tls12, o->tls.versions |= KC_VERS_12)
SETTER(set_tls13, o->tls.versions |= KC_VERS_13)
SETTER(set_priority, o->tls.priority = arg)
SETTER(set_cafile, o->tls.cafile = arg)
SETTER(set_alpn_strict, o->tls.alpn_strict = true)
SETTER(set_accept_early_data, o->tls.accept_early_data = true)
SETTER(set_early_data, o->early_data = arg)

/* --cert and --key: paired in the order given. */
static int add_file(const struct cli_option *opt, const char *arg, const char **files,
		    size_t *n, struct kc_err *err)
{
	if (*n == KC_MAX_CERTS)
		return kc_err_set(err, KC_E_USAGE, "at most %d --%s files", KC_MAX_CERTS,
				  opt->name);
	files[(*n)++] = arg;
	return 0;
}

static int set_cert(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		    struct kc_err *err)
{
	return add_file(opt, arg, o->tls.certfile, &o->tls.n_certfiles, err);
}

static int set_key(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		   struct kc_err *err)
{
	return add_file(opt, arg, o->tls.keyfile, &o->tls.n_keyfiles, err);
}
SETTER(set_insecure, o->tls.insecure = true)
SETTER(set_verify_client, o->tls.verify_client = true)
SETTER(set_echo, o->echo = true)
SETTER(set_keep_open, o->keep_open = true)
SETTER(set_commands, o->commands = true)
SETTER(set_crlf, o->crlf = true)
SETTER(set_no_zerocopy, o->no_zerocopy = true)
SETTER(set_session_in, o->session_in = arg)
SETTER(set_session_out, o->session_out = arg)
SETTER(set_show_certs, o->show_certs = true)
SETTER(set_save_certs, o->save_certs = arg)
SETTER(set_info_json, o->info_json = arg)
SETTER(set_ocsp, o->tls.ocsp = true)
SETTER(set_ocsp_require, o->tls.ocsp = true; o->tls.ocsp_require = true)
SETTER(set_ocsp_response, o->tls.ocsp_response = arg)
SETTER(set_json, o->json = true; o->stats_format = CLI_STATS_JSON)
SETTER(set_output, o->output = arg)

static int set_serve(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		     struct kc_err *err)
{
	if (kc_parse_hostport(arg, true, &o->serve_hp, err) < 0)
		return -1;
	/* Metrics say what runs here: loopback unless an address is given. */
	if (!o->serve_hp.host[0]) {
		snprintf(o->serve_hp.host, sizeof o->serve_hp.host, "127.0.0.1");
		o->serve_hp.host_is_ip = true;
	}
	o->serve = true;
	return 0;
}
SETTER(set_request, o->request_peer = true)
SETTER(set_list, o->probe_list = true)
SETTER(set_http, o->probe_http = true)
SETTER(set_send, o->probe_send = arg)
SETTER(set_require_kernel, o->require_kernel = true)
SETTER(set_quiet, o->verbosity = CLI_QUIET)
SETTER(set_verbose, o->verbosity = CLI_VERBOSE)
SETTER(set_help, o->help = true)
SETTER(set_version, o->version = true)

static int add_cipher(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		      struct kc_err *err)
{
	/* core knows the names (case-insensitive); the table lists them. */
	gnutls_cipher_algorithm_t ci = kc_cipher_from_name(arg);
	if (ci == GNUTLS_CIPHER_UNKNOWN)
		return value_error(err, opt, "unknown cipher", arg);
	for (size_t i = 0; i < o->tls.n_ciphers; i++)
		if (o->tls.ciphers[i] == ci)
			return 0;
	o->tls.ciphers[o->tls.n_ciphers++] = ci;
	return 0;
}

static int set_starttls(struct cli_opts *o, const struct cli_option *opt, const char *arg,
			struct kc_err *err)
{
	o->starttls = kc_starttls_find(arg);
	return o->starttls ? 0 : value_error(err, opt, "unknown --starttls protocol", arg);
}

static int set_stats_format(struct cli_opts *o, const struct cli_option *opt, const char *arg,
			    struct kc_err *err)
{
	const char *param;
	const struct cli_value *v = find_value(opt, arg, &param);
	if (!v)
		return value_error(err, opt, NULL, arg);
	o->stats_format = (enum cli_stats_format)v->code;
	o->json = o->stats_format == CLI_STATS_JSON;
	return 0;
}

static int set_log_format(struct cli_opts *o, const struct cli_option *opt, const char *arg,
			  struct kc_err *err)
{
	const char *param;
	const struct cli_value *v = find_value(opt, arg, &param);
	if (!v)
		return value_error(err, opt, NULL, arg);
	o->log_json = v->code == 1;
	return 0;
}

static int set_ktls(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		    struct kc_err *err)
{
	const char *param;
	const struct cli_value *v = find_value(opt, arg, &param);
	if (!v)
		return value_error(err, opt, NULL, arg);
	o->ktls = (enum kc_ktls_mode)v->code;
	return 0;
}

static int set_eof(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		   struct kc_err *err)
{
	const char *param;
	const struct cli_value *v = find_value(opt, arg, &param);
	if (!v)
		return value_error(err, opt, NULL, arg);
	o->eof = (enum kc_eof_mode)v->code;
	if (!param) {
		o->linger_ms = CLI_LINGER_DEFAULT_MS;
		return 0;
	}
	char what[64];
	snprintf(what, sizeof what, "--%s %s", opt->name, v->name);
	return parse_seconds(param, what, &o->linger_ms, err);
}

/* --handshake-timeout, --connect-timeout, --watch */
static int seconds(const struct cli_option *opt, const char *arg, unsigned *ms,
		   struct kc_err *err)
{
	char what[64];
	snprintf(what, sizeof what, "--%s", opt->name);
	return parse_seconds(arg, what, ms, err);
}

static int set_handshake_timeout(struct cli_opts *o, const struct cli_option *opt,
				 const char *arg, struct kc_err *err)
{
	return seconds(opt, arg, &o->tls.handshake_timeout_ms, err);
}

static int set_connect_timeout(struct cli_opts *o, const struct cli_option *opt,
			       const char *arg, struct kc_err *err)
{
	return seconds(opt, arg, &o->connect_timeout_ms, err);
}

static int set_watch(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		     struct kc_err *err)
{
	return seconds(opt, arg, &o->watch_ms, err);
}

static int set_drain_timeout(struct cli_opts *o, const struct cli_option *opt,
			     const char *arg, struct kc_err *err)
{
	return seconds(opt, arg, &o->drain_timeout_ms, err);
}

static int set_probe_timeout(struct cli_opts *o, const struct cli_option *opt,
			     const char *arg, struct kc_err *err)
{
	return seconds(opt, arg, &o->probe_timeout_ms, err);
}

/* --only CHECKS: comma-separated names from core's table of checks. */
static int set_only(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		    struct kc_err *err)
{
	for (const char *p = arg;; p++) {
		size_t len = strcspn(p, ",");
		int i = kc_pc_index(p, len);
		if (i < 0)
			return kc_err_set(err, KC_E_USAGE, "unknown check '%.*s' in --%s "
					  "(see 'ktlsctl probe --list')", (int)len, p, opt->name);
		o->probe_only |= 1u << i;
		p += len;
		if (!*p)
			return 0;
	}
}

static int set_forward(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		       struct kc_err *err)
{
	if (kc_parse_hostport(arg, false, &o->forward_hp, err) < 0)
		return -1;
	o->forward = true;
	o->forward_arg = arg;
	return 0;
}

static int set_accept(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		      struct kc_err *err)
{
	if (kc_parse_hostport(arg, true, &o->accept_hp, err) < 0)
		return -1;
	o->accept = true;
	return 0;
}

static int set_exec(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		    struct kc_err *err)
{
	if (!*arg)
		return kc_err_set(err, KC_E_USAGE, "--%s needs a command", opt->name);
	o->exec_command = arg;
	return 0;
}

static int set_max_conns(struct cli_opts *o, const struct cli_option *opt, const char *arg,
			 struct kc_err *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < 1 || v > 1000000)
		return kc_err_set(err, KC_E_USAGE,
				  "invalid --%s '%s': give a number of sessions from 1 to 1000000",
				  opt->name, arg);
	o->max_conns = (unsigned)v;
	return 0;
}

static int set_session_id(struct cli_opts *o, const struct cli_option *opt, const char *arg,
			  struct kc_err *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] < '1' || arg[0] > '9')
		return kc_err_set(err, KC_E_USAGE,
				  "invalid --%s '%s': give a serving session's id, as 'ktlsctl stats "
				  "PID' lists them", opt->name, arg);
	o->session_id = v;
	return 0;
}

static int set_sni(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		   struct kc_err *err)
{
	if (!*arg)
		return kc_err_set(err, KC_E_USAGE, "--%s needs a name", opt->name);
	o->sni = arg;
	return 0;
}

static int add_alpn(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		    struct kc_err *err)
{
	if (!*arg || strlen(arg) > 255)
		return kc_err_set(err, KC_E_USAGE, "--%s needs a protocol name of 1-255 bytes",
				  opt->name);
	if (o->tls.n_alpn == KC_MAX_ALPN)
		return kc_err_set(err, KC_E_USAGE, "at most %d --%s protocols", KC_MAX_ALPN,
				  opt->name);
	o->tls.alpn[o->tls.n_alpn++] = arg;
	return 0;
}

static int set_record_size_limit(struct cli_opts *o, const struct cli_option *opt,
				 const char *arg, struct kc_err *err)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < 64 || v > 16385)
		return kc_err_set(err, KC_E_USAGE,
				  "invalid --%s '%s': give a number of bytes from 64 to 16385 "
				  "(RFC 8449)", opt->name, arg);
	o->tls.record_size_limit = (unsigned)v;
	return 0;
}

static int set_key_update_after(struct cli_opts *o, const struct cli_option *opt,
				const char *arg, struct kc_err *err)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || v == 0 || arg[0] == '-')
		return kc_err_set(err, KC_E_USAGE,
				  "invalid --%s '%s': give a number of records (1 or more)",
				  opt->name, arg);
	o->key_update_after = v;
	return 0;
}

/* --volume BYTES: a count of bytes, with an optional K, M or G (binary:
 * KiB, MiB, GiB), 1 byte to 1 TiB. */
static int set_volume(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		      struct kc_err *err)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	unsigned shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
	if (shift)
		end++;
	if (errno || end == arg || *end || arg[0] == '-' || v == 0 || v > (1ull << 40) >> shift)
		return kc_err_set(err, KC_E_USAGE,
				  "invalid --%s '%s': give a number of bytes (1 or more), "
				  "optionally with K, M or G", opt->name, arg);
	o->probe_volume = v << shift;
	return 0;
}

/* ------------------------------------------------------------ options */

static const struct cli_value cipher_values[] = {
	{ .name = "AES-128-GCM" }, { .name = "AES-256-GCM" },
	{ .name = "CHACHA20-POLY1305" }, { .name = "AES-128-CCM" },
	{ 0 },
};

static const struct cli_value ktls_values[] = {
	{ "auto", KC_KTLS_AUTO, "the kernel when it can, else user space (default)" },
	{ "require", KC_KTLS_REQUIRE, "the kernel, or fail" },
	{ "off", KC_KTLS_OFF, "always the user-space channel" },
	{ 0 },
};

static const struct cli_value eof_values[] = {
	{ "linger", KC_EOF_LINGER, "once the peer closes or is quiet for 2 s (default)" },
	{ "linger=SECS", KC_EOF_LINGER, "once the peer closes or is quiet for SECS" },
	{ "wait", KC_EOF_WAIT, "once the peer closes" },
	{ "close", KC_EOF_CLOSE, "at once" },
	{ 0 },
};

static const struct cli_option opt_tls12 = {
	.name = "tls1.2", .help = "allow only TLS 1.2", .apply = set_tls12,
};
static const struct cli_option opt_tls13 = {
	.name = "tls1.3", .help = "allow only TLS 1.3 (default: both)", .apply = set_tls13,
};
static const struct cli_option opt_cipher = {
	.name = "cipher", .metavar = "NAME", .values = cipher_values, .apply = add_cipher,
	.help = "only this cipher (repeatable): AES-128-GCM,\n"
		"AES-256-GCM, CHACHA20-POLY1305, AES-128-CCM",
};
static const struct cli_option opt_priority = {
	.name = "priority", .metavar = "STRING", .apply = set_priority,
	.help = "GnuTLS priority string (replaces the built-in one)",
};
static const struct cli_option opt_ktls = {
	.name = "ktls", .metavar = "MODE", .values = ktls_values, .apply = set_ktls,
	.help = "auto (default), require or off",
};
static const struct cli_option opt_handshake_timeout = {
	.name = "handshake-timeout", .metavar = "SECS", .apply = set_handshake_timeout,
	.help = "give up on the handshake after SECS (default 30)",
};
static const struct cli_option opt_eof = {
	.name = "eof", .metavar = "MODE", .values = eof_values, .apply = set_eof,
	.help = "when to send close_notify after the end of\n"
		"input: linger[=SECS] (default: once the peer\n"
		"closes or is quiet for SECS, default 2), wait\n"
		"(once the peer closes) or close (at once)",
};
static const struct cli_option opt_cafile = {
	.name = "cafile", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_cafile,
	.help = "CA certificates (PEM) to verify the peer with",
};
static const struct cli_option opt_commands = {
	.name = "commands", .apply = set_commands,
	.help = "lines starting with / are session commands in\n"
		"pipe mode too (always on a terminal)",
};
static const struct cli_option opt_crlf = {
	.name = "crlf", .apply = set_crlf,
	.help = "end the lines typed at a terminal with CR LF",
};
static const struct cli_option opt_key_update_after = {
	.name = "key-update-after", .metavar = "N", .apply = set_key_update_after,
	.help = "update TLS 1.3 send keys every N records\n"
		"(default: shortly before the cipher's limit)",
};
static const struct cli_option opt_record_size_limit = {
	.name = "record-size-limit", .metavar = "N", .apply = set_record_size_limit,
	.help = "announce an RFC 8449 record size limit of N\n"
		"bytes (64 to 16385) and refuse larger records",
};
static const struct cli_option opt_no_zerocopy = {
	.name = "no-zerocopy", .apply = set_no_zerocopy,
	.help = "on the kernel channel, copy through read and\n"
		"write instead of sendfile and splice",
};

static const struct cli_option opt_show_certs = {
	.name = "show-certs", .apply = set_show_certs,
	.help = "write the peer's certificate chain as PEM to\n"
		"stderr after the handshake",
};
static const struct cli_option opt_save_certs = {
	.name = "save-certs", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_save_certs,
	.help = "write the peer's certificate chain as PEM to FILE",
};
static const struct cli_option opt_info_json = {
	.name = "info-json", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_info_json,
	.help = "write the handshake report (as -v shows it) to\n"
		"FILE as one JSON document",
};

/* connect */
static const struct cli_option opt_ocsp = {
	.name = "ocsp", .apply = set_ocsp,
	.help = "ask for the server's stapled OCSP response\n"
		"and say its status on stderr",
};
static const struct cli_option opt_ocsp_require = {
	.name = "ocsp-require", .apply = set_ocsp_require,
	.help = "fail (exit 4) unless the stapled OCSP response\n"
		"says good (implies --ocsp)",
};
static const struct cli_option opt_client_cert = {
	.name = "cert", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_cert,
	.help = "client certificate chain (PEM)",
};
static const struct cli_option opt_client_key = {
	.name = "key", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_key,
	.help = "client private key (PEM)",
};
static const struct cli_option opt_connect_timeout = {
	.name = "connect-timeout", .metavar = "SECS", .apply = set_connect_timeout,
	.help = "give up connecting after SECS (default 10)",
};
static const struct cli_option opt_backend_timeout = {
	.name = "connect-timeout", .metavar = "SECS", .apply = set_connect_timeout,
	.help = "with --forward: give up connecting to the\n"
		"backend after SECS (default 10)",
};
static const struct cli_option opt_accept = {
	.name = "accept", .metavar = "[ADDR]:PORT", .apply = set_accept,
	.help = "take plain TCP clients on [ADDR]:PORT, every one\n"
		"at once, each with its own TLS connection to HOST:PORT",
};
static const struct cli_option opt_insecure = {
	.name = "insecure", .apply = set_insecure,
	.help = "do not verify the server's certificate",
};
static const struct cli_option opt_sni = {
	.name = "sni", .metavar = "NAME", .hint = CLI_HINT_HOST, .apply = set_sni,
	.help = "server name to send and verify (default: HOST)",
};
static const struct cli_option opt_alpn = {
	.name = "alpn", .metavar = "PROTO", .apply = add_alpn,
	.help = "offer an ALPN protocol (repeatable)",
};
/* Made from core's table of protocols when the program starts, so that
 * the list is written once. */
static struct cli_value starttls_values[16];

__attribute__((constructor)) static void fill_starttls_values(void)
{
	const struct kc_starttls_proto *p;
	for (size_t i = 0; i + 1 < sizeof starttls_values / sizeof starttls_values[0] &&
			   (p = kc_starttls_at(i)); i++)
		starttls_values[i].name = kc_starttls_name(p);
}

static const struct cli_option opt_starttls = {
	.name = "starttls", .metavar = "PROTO", .values = starttls_values, .apply = set_starttls,
	.help = "speak PROTO's plain-text preamble first, then\n"
		"TLS: smtp, lmtp, imap, pop3, ftp, nntp, sieve,\n"
		"xmpp, ldap or postgres",
};
static const struct cli_option opt_session_in = {
	.name = "session-in", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_session_in,
	.help = "resume the session saved in FILE",
};
static const struct cli_option opt_early_data = {
	.name = "early-data", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_early_data,
	.help = "with --session-in: send FILE as TLS 1.3 early\n"
		"data (0-RTT) if the ticket allows, else (or if\n"
		"the server refuses it) right after the handshake",
};
static const struct cli_option opt_session_out = {
	.name = "session-out", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_session_out,
	.help = "save the session to FILE for resumption\n"
		"(again whenever a new ticket arrives)",
};

/* listen */
static const struct cli_option opt_server_cert = {
	.name = "cert", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_cert,
	.help = "server certificate chain (PEM), required;\n"
		"repeatable: each client gets the one whose names\n"
		"match its SNI (and whose key suits it), else the\n"
		"first",
};
static const struct cli_option opt_server_key = {
	.name = "key", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_key,
	.help = "server private key (PEM), required; one for\n"
		"each --cert, in the same order",
};
static const struct cli_option opt_echo = {
	.name = "echo", .apply = set_echo,
	.help = "echo every byte back to the client",
};
static const struct cli_option opt_keep_open = {
	.name = "keep-open", .short_name = 'k', .apply = set_keep_open,
	.help = "accept the next connection when one ends;\n"
		"with --echo, serve every client at once",
};
static const struct cli_option opt_forward = {
	.name = "forward", .metavar = "HOST:PORT", .hint = CLI_HINT_HOST, .apply = set_forward,
	.help = "serve every client at once, each joined to its\n"
		"own plain TCP connection to HOST:PORT",
};
/* A number, or auto: as many as the CPUs online (nginx's
 * worker_processes auto). */
static int set_workers(struct cli_opts *o, const struct cli_option *opt, const char *arg,
		       struct kc_err *err)
{
	char *end;
	errno = 0;
	long v = strcmp(arg, "auto") == 0 ? sysconf(_SC_NPROCESSORS_ONLN)
					  : (long)strtoul(arg, &end, 10);
	if (strcmp(arg, "auto") != 0 && (errno || end == arg || *end || arg[0] == '-'))
		v = 0;
	if (v < 1 || v > 1024)
		return kc_err_set(err, KC_E_USAGE,
				  "invalid --%s '%s': give a number of processes from 1 to 1024, "
				  "or auto", opt->name, arg);
	o->workers = (unsigned)v;
	return 0;
}

static const struct cli_option opt_exec = {
	.name = "exec", .metavar = "COMMAND", .apply = set_exec,
	.help = "serve every client at once, each joined to its\n"
		"own 'sh -c COMMAND' (stdin and stdout)",
};
static const struct cli_option opt_server_alpn = {
	.name = "alpn", .metavar = "PROTO", .apply = add_alpn,
	.help = "accept an ALPN protocol (repeatable; the\n"
		"first of ours that the client offers wins)",
};
static const struct cli_option opt_alpn_strict = {
	.name = "alpn-strict", .apply = set_alpn_strict,
	.help = "with --alpn: refuse a client that offers none\n"
		"of them (alert no_application_protocol)",
};
static const struct cli_option opt_accept_early_data = {
	.name = "early-data", .apply = set_accept_early_data,
	.help = "accept TLS 1.3 early data (0-RTT) from resuming\n"
		"clients: it can be replayed (see the man page)",
};
static const struct cli_option opt_max_conns = {
	.name = "max-conns", .metavar = "N", .apply = set_max_conns,
	.help = "serving many: at most N sessions at once\n"
		"(default 1024); at N, wait before accepting",
};
static const struct cli_option opt_workers = {
	.name = "workers", .metavar = "N|auto", .apply = set_workers,
	.help = "serving many: serve in N processes (auto: one\n"
		"per CPU online), --max-conns shared out (default 1)",
};
static const struct cli_option opt_drain_timeout = {
	.name = "drain-timeout", .metavar = "SECS", .apply = set_drain_timeout,
	.help = "serving many: after SIGTERM or SIGINT, wait up\n"
		"to SECS for the sessions to close (default 10)",
};
static const struct cli_value log_format_values[] = {
	{ "text", 0, "a line of key=value fields per session (default)" },
	{ "json", 1, "a JSON object per line, for each session and notice" },
	{ 0 },
};
static const struct cli_option opt_log_format = {
	.name = "log-format", .metavar = "FORMAT", .values = log_format_values,
	.apply = set_log_format,
	.help = "serving many: log each session's end as text\n"
		"(key=value, the default) or json (an object a line)",
};
static const struct cli_option opt_ocsp_response = {
	.name = "ocsp-response", .metavar = "FILE", .hint = CLI_HINT_FILE,
	.apply = set_ocsp_response,
	.help = "staple this OCSP response (DER) for clients\n"
		"that ask for one",
};
static const struct cli_option opt_verify_client = {
	.name = "verify-client", .apply = set_verify_client,
	.help = "require a client certificate signed by --cafile",
};

/* selftest, stats, keyupdate, tickets */
static const struct cli_option opt_selftest_json = {
	.name = "json", .apply = set_json,
	.help = "one JSON document instead of the report",
};
static const struct cli_option opt_require_kernel = {
	.name = "require-kernel", .apply = set_require_kernel,
	.help = "exit 7 unless the kernel carried every case",
};
static const struct cli_option opt_stats_json = {
	.name = "json", .apply = set_json,
	.help = "the whole report as one JSON document",
};
static const struct cli_value stats_format_values[] = {
	{ "text", CLI_STATS_TEXT, "for people: a summary, everything with -v (default)" },
	{ "json", CLI_STATS_JSON, "one JSON document with stable keys (as --json)" },
	{ "openmetrics", CLI_STATS_OPENMETRICS, "metrics, OpenMetrics 1.0 text" },
	{ "prometheus", CLI_STATS_PROMETHEUS, "metrics, Prometheus text format 0.0.4" },
	{ 0 },
};
static const struct cli_option opt_stats_format = {
	.name = "format", .metavar = "FORMAT", .values = stats_format_values,
	.apply = set_stats_format,
	.help = "text (default), json, openmetrics or prometheus",
};
static const struct cli_option opt_output = {
	.name = "output", .short_name = 'o', .metavar = "FILE", .hint = CLI_HINT_FILE,
	.apply = set_output,
	.help = "write to FILE instead of standard output,\n"
		"replacing it atomically each time (for\n"
		"node_exporter's textfile collector)",
};
static const struct cli_option opt_serve = {
	.name = "serve", .metavar = "[ADDR]:PORT", .hint = CLI_HINT_HOST, .apply = set_serve,
	.help = "serve the metrics over HTTP at /metrics until\n"
		"stopped (ADDR default 127.0.0.1)",
};
static const struct cli_option opt_stats_cert = {
	.name = "cert", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_cert,
	.help = "with --serve: serve over TLS (https) with this\n"
		"certificate chain (PEM)",
};
static const struct cli_option opt_stats_key = {
	.name = "key", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_key,
	.help = "with --cert: its private key (PEM)",
};
static const struct cli_option opt_watch = {
	.name = "watch", .metavar = "SECS", .apply = set_watch,
	.help = "repeat every SECS seconds until interrupted",
};
static const struct cli_option opt_stats_verbose = {
	.name = "verbose", .short_name = 'v', .apply = set_verbose,
	.help = "the whole report; on stderr, where each part\n"
		"comes from",
};
static const struct cli_option opt_request = {
	.name = "request", .apply = set_request,
	.help = "ask the peer to update its keys too",
};
static const struct cli_option opt_session_id = {
	.name = "session", .metavar = "ID", .apply = set_session_id,
	.help = "the session ID of a serving process (listen\n"
		"--forward/--exec/--echo -k, connect --accept)",
};
static const struct cli_option opt_keyupdate_quiet = {
	.name = "quiet", .short_name = 'q', .apply = set_quiet,
	.help = "no confirmation on stderr",
};
static const struct cli_option opt_tickets_json = {
	.name = "json", .apply = set_json,
	.help = "JSON output",
};

/* probe */
static const struct cli_option opt_probe_json = {
	.name = "json", .apply = set_json,
	.help = "one JSON document instead of a line per check",
};
static const struct cli_option opt_only = {
	.name = "only", .metavar = "CHECKS", .apply = set_only,
	.help = "run only these checks, comma-separated\n"
		"(names as --list shows)",
};
static const struct cli_option opt_list = {
	.name = "list", .apply = set_list,
	.help = "list the checks and what each one does",
};
static const struct cli_option opt_http = {
	.name = "http", .apply = set_http,
	.help = "make the server talk with 'GET / HTTP/1.1'\n"
		"(default: a line of text)",
};
static const struct cli_option opt_send = {
	.name = "send", .metavar = "FILE", .hint = CLI_HINT_FILE, .apply = set_send,
	.help = "make the server talk with FILE's bytes",
};
static const struct cli_option opt_volume = {
	.name = "volume", .metavar = "BYTES", .apply = set_volume,
	.help = "server-keyupdate: send at most BYTES (K, M, G\n"
		"allowed; default 16M)",
};
static const struct cli_option opt_probe_timeout = {
	.name = "timeout", .metavar = "SECS", .apply = set_probe_timeout,
	.help = "wait at most SECS for each answer (default 5)",
};

/* every subcommand */
static const struct cli_option opt_quiet = {
	.name = "quiet", .short_name = 'q', .apply = set_quiet,
	.help = "no notices on stderr (errors still shown)",
};
static const struct cli_option opt_verbose = {
	.name = "verbose", .short_name = 'v', .apply = set_verbose,
	.help = "handshake summary and session events on stderr",
};
static const struct cli_option opt_help = {
	.name = "help", .short_name = 'h', .apply = set_help,
	.help = "show this help",
};

/* the program */
static const struct cli_option opt_program_help = {
	.name = "help", .short_name = 'h', .apply = set_help,
	.help = "show this help (COMMAND --help for a command)",
};
static const struct cli_option opt_version = {
	.name = "version", .short_name = 'V', .apply = set_version,
	.help = "show the version",
};

/* The groups of the man page's OPTIONS: the TLS options of connect,
 * listen and probe; those of a session (connect and listen); a client's
 * (connect and probe). */
#define TLS_OPTIONS                                                           \
	&opt_tls12, &opt_tls13, &opt_cipher, &opt_priority, &opt_ktls,        \
	&opt_handshake_timeout, &opt_cafile, &opt_record_size_limit

#define SESSION_OPTIONS                                                       \
	TLS_OPTIONS, &opt_eof, &opt_commands, &opt_crlf,                      \
	&opt_key_update_after, &opt_no_zerocopy, &opt_show_certs,             \
	&opt_save_certs, &opt_info_json

#define CLIENT_OPTIONS                                                        \
	&opt_client_cert, &opt_client_key, &opt_connect_timeout,              \
	&opt_insecure, &opt_sni, &opt_alpn, &opt_starttls

static const struct cli_option *const connect_options[] = {
	SESSION_OPTIONS, CLIENT_OPTIONS,
	&opt_session_in, &opt_session_out, &opt_early_data, &opt_ocsp, &opt_ocsp_require,
	&opt_accept, &opt_max_conns, &opt_workers, &opt_drain_timeout, &opt_log_format,
	&opt_quiet, &opt_verbose, &opt_help, NULL,
};

static const struct cli_option *const listen_options[] = {
	SESSION_OPTIONS,
	&opt_server_cert, &opt_server_key, &opt_echo, &opt_keep_open, &opt_forward,
	&opt_exec, &opt_server_alpn, &opt_alpn_strict, &opt_accept_early_data, &opt_max_conns,
	&opt_workers, &opt_drain_timeout, &opt_log_format, &opt_backend_timeout,
	&opt_verify_client, &opt_ocsp_response,
	&opt_quiet, &opt_verbose, &opt_help, NULL,
};

static const struct cli_option *const probe_options[] = {
	TLS_OPTIONS, CLIENT_OPTIONS,
	&opt_probe_json, &opt_only, &opt_list, &opt_http, &opt_send, &opt_volume, &opt_probe_timeout,
	&opt_quiet, &opt_verbose, &opt_help, NULL,
};

static const struct cli_option *const selftest_options[] = {
	&opt_selftest_json, &opt_require_kernel, &opt_quiet, &opt_verbose, &opt_help, NULL,
};

static const struct cli_option *const stats_options[] = {
	&opt_stats_json, &opt_stats_format, &opt_output, &opt_watch, &opt_serve,
	&opt_stats_cert, &opt_stats_key, &opt_cafile, &opt_verify_client, &opt_ktls,
	&opt_session_id, &opt_quiet, &opt_stats_verbose, &opt_help, NULL,
};

static const struct cli_option *const keyupdate_options[] = {
	&opt_session_id, &opt_request, &opt_keyupdate_quiet, &opt_help, NULL,
};

static const struct cli_option *const tickets_options[] = {
	&opt_session_id, &opt_tickets_json, &opt_help, NULL,
};

static const struct cli_option *const program_options[] = {
	&opt_program_help, &opt_version, NULL,
};

/* ------------------------------------------- positional arguments */

static int check_program(struct cli_opts *o, const struct cli_subcommand *sub, int npos,
			 char **pos, struct kc_err *err)
{
	return usage_error(err, sub, npos ? "unknown command" : "no command given");
}

static int check_no_args(struct cli_opts *o, const struct cli_subcommand *sub, int npos,
			 char **pos, struct kc_err *err)
{
	return npos ? usage_error(err, sub, "%s takes no arguments", sub->name) : 0;
}

/* The PID of a running session: optional when args says "[PID]". */
static int check_pid(struct cli_opts *o, const struct cli_subcommand *sub, int npos,
		     char **pos, struct kc_err *err)
{
	if (npos > 1 || (npos == 0 && sub->args[0] != '['))
		return usage_error(err, sub, npos ? "give at most one PID" : "give the session's PID");
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

/* The certificate and key go together; --verify-client needs the CA
 * (connect, listen, stats --serve). */
static int check_tls_files(const struct cli_opts *o, const struct cli_subcommand *sub,
			   struct kc_err *err)
{
	if (o->tls.n_certfiles != o->tls.n_keyfiles)
		return usage_error(err, sub, o->tls.n_certfiles > 1 || o->tls.n_keyfiles > 1
				   ? "--cert and --key go together: give one --key for each "
				     "--cert, in the same order"
				   : "--cert and --key go together");
	if (o->cmd != CLI_CMD_LISTEN && o->tls.n_certfiles > 1)
		return usage_error(err, sub, "give one --cert and one --key (several are for "
				   "listen)");
	if (o->tls.verify_client && !o->tls.cafile)
		return usage_error(err, sub, "--verify-client needs --cafile FILE");
	return 0;
}

/* stats [PID] and the options that go together. */
static int check_stats(struct cli_opts *o, const struct cli_subcommand *sub, int npos,
		       char **pos, struct kc_err *err)
{
	if (check_pid(o, sub, npos, pos, err) < 0)
		return -1;
	if (o->session_id && !o->target_pid)
		return usage_error(err, sub, "--session ID names one of a serving process's "
				   "sessions: give the process's PID too");
	if (o->serve && (o->output || o->watch_ms))
		return usage_error(err, sub, "--serve answers each scrape afresh: "
				   "give it without --output and --watch");
	if (o->serve && (o->stats_format == CLI_STATS_JSON || o->json))
		return usage_error(err, sub, "--serve serves metrics: --format openmetrics or "
				   "prometheus, or neither (then as the scraper asks)");
	if ((o->tls.n_certfiles || o->tls.n_keyfiles || o->tls.cafile || o->tls.verify_client) &&
	    !o->serve)
		return usage_error(err, sub, "--cert, --key, --cafile and --verify-client "
				   "go with --serve");
	if (check_tls_files(o, sub, err) < 0)
		return -1;
	if (o->tls.cafile && !o->tls.n_certfiles)
		return usage_error(err, sub, "--cafile verifies scrapers over TLS: give "
				   "--cert and --key too");
	return 0;
}

/* connect HOST:PORT, listen [ADDR]:PORT, and the options that go together. */
static int check_session(struct cli_opts *o, const struct cli_subcommand *sub, int npos,
			 char **pos, struct kc_err *err)
{
	bool listen = o->cmd == CLI_CMD_LISTEN;
	if (npos != 1)
		return usage_error(err, sub, "give exactly one %s", sub->args);
	if (kc_parse_hostport(pos[0], listen, &o->hp, err) < 0)
		return -1;
	o->target_arg = pos[0];
	o->tls.role = listen ? KC_SERVER : KC_CLIENT;
	if (listen && (!o->tls.n_certfiles || !o->tls.n_keyfiles))
		return usage_error(err, sub, "listen needs --cert FILE and --key FILE");
	if (check_tls_files(o, sub, err) < 0)
		return -1;
	if (o->forward + o->echo + !!o->exec_command > 1)
		return usage_error(err, sub, "--echo, --forward and --exec exclude each other: "
				   "give one");
	if (o->accept && o->starttls)
		return usage_error(err, sub, "--starttls is for one connection: give it "
				   "without --accept");
	if ((o->show_certs || o->save_certs || o->info_json) && cli_serves_many(o))
		return usage_error(err, sub, "--show-certs, --save-certs and --info-json report "
				   "one session: give them without %s",
				   listen ? "--forward, --exec or --echo -k" : "--accept");
	if (o->workers > 1 && !cli_serves_many(o))
		return usage_error(err, sub, "--workers is for serving many sessions: give it with "
				   "--forward, --exec, --echo --keep-open or connect --accept");
	if (o->workers > o->max_conns)
		return usage_error(err, sub, "--max-conns %u is shared out among --workers %u: "
				   "give each at least one session", o->max_conns, o->workers);
	if (o->accept && (o->session_in || o->session_out))
		return usage_error(err, sub, "--accept resumes across its connections by itself: "
				   "give it without --session-in and --session-out");
	if (o->tls.alpn_strict && !o->tls.n_alpn)
		return usage_error(err, sub, "--alpn-strict needs the protocols: give --alpn PROTO");
	if (o->early_data && !o->session_in)
		return usage_error(err, sub, "--early-data needs a ticket: give --session-in FILE "
				   "(saved by an earlier --session-out)");
	if (o->tls.priority && (o->tls.versions || o->tls.n_ciphers))
		return usage_error(err, sub,
				   "--priority replaces --tls1.2/--tls1.3/--cipher: give one or the other");
	size_t recv_size;
	if (kc_tls_recv_size(&o->tls, &recv_size, err) < 0)
		return -1;
	const char *norekey = getenv("KTLSCTL_TEST_SOFT_NOREKEY");
	o->soft_no_rekey = norekey && strcmp(norekey, "1") == 0;
	if (!listen) {
		/* SNI carries names only; the certificate is checked against
		 * --sni, else the host (a name or an IP address). */
		o->tls.sni = o->sni ? o->sni : (o->hp.host_is_ip ? NULL : o->hp.host);
		o->tls.verify_name = o->sni ? o->sni : o->hp.host;
	}
	return 0;
}

bool cli_serves_many(const struct cli_opts *o)
{
	return o->forward || o->exec_command || (o->echo && o->keep_open) || o->accept;
}

/* probe HOST:PORT, or --list alone. */
static int check_probe(struct cli_opts *o, const struct cli_subcommand *sub, int npos,
		       char **pos, struct kc_err *err)
{
	if (o->probe_list)
		return npos ? usage_error(err, sub, "--list takes no HOST:PORT") : 0;
	if (o->probe_http && o->probe_send)
		return usage_error(err, sub, "--http and --send exclude each other: give one");
	return check_session(o, sub, npos, pos, err);
}

/* --------------------------------------------------------- subcommands */

const struct cli_subcommand cli_program = {
	.args = "COMMAND",
	.description = "Kernel TLS (kTLS) sessions and diagnostics.",
	.options = program_options,
	.check = check_program,
};

const struct cli_subcommand cli_subcommands[] = {
	{
		.name = "connect", .cmd = CLI_CMD_CONNECT,
		.args = "HOST:PORT", .args_hint = CLI_HINT_HOST,
		.summary = "TLS client session through kernel TLS",
		.description =
			"Connect to a TLS server, hand the connection to kernel TLS and pump\n"
			"stdin to the server and the server's data to stdout.",
		.options = connect_options, .check = check_session, .run = cli_connect,
	},
	{
		.name = "listen", .cmd = CLI_CMD_LISTEN,
		.args = "[ADDR]:PORT", .required = "--cert FILE --key FILE",
		.summary = "TLS server session through kernel TLS",
		.description =
			"Accept a TLS connection, hand it to kernel TLS and pump stdin to the\n"
			"client and the client's data to stdout.",
		.options = listen_options, .check = check_session, .run = cli_listen,
	},
	{
		.name = "selftest", .cmd = CLI_CMD_SELFTEST,
		.summary = "check kTLS on this machine end to end",
		.description =
			"Run a loopback client and server for TLS 1.2 and 1.3 with every cipher\n"
			"and report which record channel works on this machine.",
		.options = selftest_options, .check = check_no_args, .run = cli_selftest,
	},
	{
		.name = "stats", .cmd = CLI_CMD_STATS,
		.args = "[PID]", .args_hint = CLI_HINT_PID,
		.summary = "the running sessions and their counters",
		.description =
			"In short: is kernel TLS usable here (and if not, the command that fixes\n"
			"it), every kTLS socket on the machine and every running ktlsctl session,\n"
			"one line each.  With -v or --json, everything: /proc/net/tls_stat, what\n"
			"kernel TLS can do (probed on loopback sockets), each socket's and each\n"
			"session's details (records under the current key against the cipher's\n"
			"limit, bytes, key updates, tickets, uptime).  With PID: that session's\n"
			"details only (a serving process's: each of its sessions').",
		.options = stats_options, .check = check_stats, .run = cli_stats,
	},
	{
		.name = "keyupdate", .cmd = CLI_CMD_KEYUPDATE,
		.args = "PID", .args_hint = CLI_HINT_PID,
		.summary = "make a running session update its keys",
		.description =
			"Make the running session PID update its TLS 1.3 send keys; for a process\n"
			"serving many sessions, the one --session ID names.",
		.options = keyupdate_options, .check = check_pid, .run = cli_keyupdate,
	},
	{
		.name = "tickets", .cmd = CLI_CMD_TICKETS,
		.args = "PID", .args_hint = CLI_HINT_PID,
		.summary = "a running session's tickets",
		.description =
			"Show the session tickets the running session PID received; for a process\n"
			"serving many sessions, the one --session ID names.",
		.options = tickets_options, .check = check_pid, .run = cli_tickets,
	},
	{
		.name = "probe", .cmd = CLI_CMD_PROBE,
		.args = "HOST:PORT", .args_hint = CLI_HINT_HOST,
		.summary = "check what a server does after the handshake",
		.description =
			"Check a TLS server's behaviour after the handshake (KeyUpdate, close_notify,\n"
			"half-close, tickets, resumption, kernel TLS), each check on its own\n"
			"connection, and print one line per check: its name, pass, fail, n/a or\n"
			"unknown, and why.",
		.options = probe_options, .check = check_probe, .run = cli_probe,
	},
	{ 0 },
};

const struct cli_subcommand *cli_subcommand_named(const char *name)
{
	for (const struct cli_subcommand *s = cli_subcommands; s->name; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

const struct cli_subcommand *cli_subcommand_of(enum cli_cmd cmd)
{
	for (const struct cli_subcommand *s = cli_subcommands; s->name; s++)
		if (s->cmd == cmd)
			return s;
	return &cli_program;
}

const struct cli_option *cli_option_named(const struct cli_subcommand *sub, const char *name,
					  size_t len)
{
	for (const struct cli_option *const *p = sub->options; *p; p++)
		if (strlen((*p)->name) == len && strncmp((*p)->name, name, len) == 0)
			return *p;
	return NULL;
}

const struct cli_option *cli_option_short(const struct cli_subcommand *sub, char c)
{
	for (const struct cli_option *const *p = sub->options; *p; p++)
		if ((*p)->short_name == c)
			return *p;
	return NULL;
}

/* ---------------------------------------------------------------- --help */

/* "  LEFT   help", the help's further lines under its first. */
static void print_item(FILE *out, const char *left, const char *help)
{
	fprintf(out, "%-30s  ", left);
	for (const char *line = help;;) {
		const char *nl = strchr(line, '\n');
		if (!nl) {
			fprintf(out, "%s\n", line);
			return;
		}
		fprintf(out, "%.*s\n%32s", (int)(nl - line), line, "");
		line = nl + 1;
	}
}

void cli_usage(enum cli_cmd cmd, FILE *out)
{
	const struct cli_subcommand *sub = cli_subcommand_of(cmd);
	char left[80];

	fprintf(out, "Usage: ktlsctl%s%s", sub->name ? " " : "", sub->name ? sub->name : "");
	if (sub->args)
		fprintf(out, " %s", sub->args);
	if (sub->required)
		fprintf(out, " %s", sub->required);
	fprintf(out, " [OPTIONS]\n%s\n\n", sub->description);
	if (sub == &cli_program) {
		fputs("Commands:\n", out);
		for (const struct cli_subcommand *s = cli_subcommands; s->name; s++) {
			snprintf(left, sizeof left, "  %s%s%s", s->name, s->args ? " " : "",
				 s->args ? s->args : "");
			print_item(out, left, s->summary);
		}
		fputc('\n', out);
	}
	fputs("Options:\n", out);
	for (const struct cli_option *const *p = sub->options; *p; p++) {
		const struct cli_option *opt = *p;
		snprintf(left, sizeof left, "  %c%c%c --%s%s%s", opt->short_name ? '-' : ' ',
			 opt->short_name ? opt->short_name : ' ', opt->short_name ? ',' : ' ',
			 opt->name, opt->metavar ? " " : "", opt->metavar ? opt->metavar : "");
		print_item(out, left, opt->help);
	}
}

/* ------------------------------------------------------------- parsing */

/* getopt_long's value for an option without a short name: its index in
 * the subcommand's table, above every char. */
#define LONG_ONLY 256

/* The message for getopt's '?' (unknown option, or a value given to an
 * option that takes none) and ':' (a missing argument). */
static int getopt_error(int c, char **argv, const struct cli_subcommand *sub,
			struct kc_err *err)
{
	const char *arg = argv[optind - 1];
	if (c == ':')
		return usage_error(err, sub, "option '%.100s' needs an argument", arg);
	/* glibc stores a short option as a plain char: a byte above 127
	 * comes back negative. */
	int oc = optopt < 0 ? (unsigned char)optopt : optopt;
	if (oc > 0 && oc < 256 && strncmp(arg, "--", 2) != 0)
		return usage_error(err, sub, isprint(oc) ? "unknown option '-%c'"
							 : "unknown option '-\\x%02x'", oc);
	if (optopt && strncmp(arg, "--", 2) == 0 && strchr(arg, '='))
		/* a long option that takes no value was given one */
		return usage_error(err, sub, "option '%.*s' takes no argument",
				   (int)(strchr(arg, '=') - arg), arg);
	return usage_error(err, sub, "unknown option '%.100s'", arg);
}

int cli_parse(int argc, char **argv, struct cli_opts *o, struct kc_err *err)
{
	const struct cli_subcommand *sub = &cli_program;
	int first = 1;

	memset(o, 0, sizeof *o);
	o->connect_timeout_ms = 10000;
	o->tls.handshake_timeout_ms = 30000;
	o->max_conns = 1024;
	o->workers = 1;
	o->drain_timeout_ms = 10000;
	o->eof = KC_EOF_LINGER;
	o->linger_ms = CLI_LINGER_DEFAULT_MS;
	o->probe_timeout_ms = 5000;
	o->probe_volume = KC_PC_VOLUME_DEFAULT;
	if (argc > 1 && argv[1][0] != '-') {
		sub = cli_subcommand_named(argv[1]);
		if (!sub)
			return kc_err_set(err, KC_E_USAGE,
					  "unknown command '%s' (see 'ktlsctl --help')", argv[1]);
		first = 2;
	}
	o->cmd = sub->cmd;

	/* getopt_long's arrays, from the table. */
	size_t n = 0;
	while (sub->options[n])
		n++;
	struct option longopts[n + 1];
	char shortopts[1 + 2 * n + 1], *s = shortopts;
	*s++ = ':';   /* a missing argument comes back as ':' */
	for (size_t i = 0; i < n; i++) {
		const struct cli_option *opt = sub->options[i];
		longopts[i] = (struct option){
			.name = opt->name,
			.has_arg = opt->metavar ? required_argument : no_argument,
			.val = opt->short_name ? opt->short_name : LONG_ONLY + (int)i,
		};
		if (opt->short_name) {
			*s++ = opt->short_name;
			if (opt->metavar)
				*s++ = ':';
		}
	}
	longopts[n] = (struct option){ 0 };
	*s = '\0';

	/* getopt_long permutes argv so positional arguments end up last. */
	optind = first;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == '?' || c == ':')
			return getopt_error(c, argv, sub, err);
		const struct cli_option *opt = c >= LONG_ONLY ? sub->options[c - LONG_ONLY]
							      : cli_option_short(sub, (char)c);
		if (opt->apply(o, opt, optarg, err) < 0)
			return -1;
	}
	if (o->help || o->version)
		return 0;
	return sub->check(o, sub, argc - optind, argv + optind, err);
}
