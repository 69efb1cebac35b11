/* tests/unit/test_opts.c: the command line parser. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "cli/opts.h"
#include "core/keys.h"
#include "core/peercheck.h"

#define ARGV(...) ((char *[]){ "ktlsctl", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "ktlsctl", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) cli_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o), (err))

static void usage_fails(int argc, char **argv, const char *phrase)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(cli_parse(argc, argv, &o, &err), -1, "accepted: %s", argv[1]);
	cr_assert_eq(err.status, KC_E_USAGE);
	cr_assert(strstr(err.msg, phrase), "message '%s' lacks '%s'", err.msg, phrase);
}
#define FAILS(phrase, ...) usage_fails(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), phrase)

Test(opts, connect_defaults)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "connect", "example.com:443"), 0, "%s", err.msg);
	cr_assert_eq(o.cmd, CLI_CMD_CONNECT);
	cr_assert_eq(o.ktls, KC_KTLS_AUTO);
	cr_assert_eq(o.connect_timeout_ms, 10000);
	cr_assert_eq(o.tls.handshake_timeout_ms, 30000);
	cr_assert_str_eq(o.tls.sni, "example.com");
	cr_assert_str_eq(o.tls.verify_name, "example.com");
	cr_assert_eq(o.tls.role, KC_CLIENT);
}

Test(opts, connect_everything)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "connect", "--tls1.3", "--cipher", "aes-128-ccm",
			   "--cipher", "CHACHA20-POLY1305", "--ktls", "off", "--sni", "name.test",
			   "--alpn", "h2", "--alpn", "http/1.1", "--connect-timeout", "0.5",
			   "--handshake-timeout=2", "-v", "127.0.0.1:4433"), 0, "%s", err.msg);
	cr_assert_eq(o.tls.versions, KC_VERS_13);
	cr_assert_eq(o.tls.n_ciphers, 2);
	cr_assert_eq(o.tls.ciphers[0], GNUTLS_CIPHER_AES_128_CCM);
	cr_assert_eq(o.ktls, KC_KTLS_OFF);
	cr_assert_str_eq(o.tls.sni, "name.test");
	cr_assert_str_eq(o.tls.verify_name, "name.test");
	cr_assert_eq(o.tls.n_alpn, 2);
	cr_assert_eq(o.connect_timeout_ms, 500);
	cr_assert_eq(o.tls.handshake_timeout_ms, 2000);
	cr_assert_eq(o.verbosity, CLI_VERBOSE);
}

Test(opts, ip_literal_gets_no_sni_but_is_verified)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "connect", "[::1]:4433"), 0, "%s", err.msg);
	cr_assert_null(o.tls.sni);
	cr_assert_str_eq(o.tls.verify_name, "::1");
}

Test(opts, listen)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "listen", ":0", "--cert", "c.pem", "--key", "k.pem",
			   "--echo", "-k", "-q"), 0, "%s", err.msg);
	cr_assert_eq(o.cmd, CLI_CMD_LISTEN);
	cr_assert(o.echo);
	cr_assert(o.keep_open);
	cr_assert_eq(o.verbosity, CLI_QUIET);
	cr_assert_eq(o.tls.role, KC_SERVER);
}

/* --workers: a number or auto (the CPUs online), for serving many only,
 * and never more workers than --max-conns can share out. */
Test(opts, workers)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "listen", ":0", "--cert", "c.pem", "--key", "k.pem",
			   "--echo", "-k"), 0, "%s", err.msg);
	cr_assert_eq(o.workers, 1);
	cr_assert_eq(PARSE(&o, &err, "listen", ":0", "--cert", "c.pem", "--key", "k.pem",
			   "--forward", "127.0.0.1:80", "--workers", "3"), 0, "%s", err.msg);
	cr_assert_eq(o.workers, 3);
	cr_assert_eq(PARSE(&o, &err, "listen", ":0", "--cert", "c.pem", "--key", "k.pem",
			   "--exec", "cat", "--workers", "auto"), 0, "%s", err.msg);
	cr_assert_eq(o.workers, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	cr_assert_eq(PARSE(&o, &err, "connect", "a:1", "--accept", ":0", "--workers", "2"), 0,
		     "%s", err.msg);
	cr_assert_eq(o.workers, 2);
	FAILS("invalid --workers '0'", "listen", ":1", "--cert", "c", "--key", "k", "--echo",
	      "-k", "--workers", "0");
	FAILS("invalid --workers 'many'", "listen", ":1", "--cert", "c", "--key", "k", "--echo",
	      "-k", "--workers", "many");
	FAILS("invalid --workers '2x'", "listen", ":1", "--cert", "c", "--key", "k", "--echo",
	      "-k", "--workers", "2x");
	FAILS("--workers is for serving many sessions", "listen", ":1", "--cert", "c", "--key",
	      "k", "--echo", "--workers", "2");
	FAILS("--workers is for serving many sessions", "connect", "a:1", "--workers", "2");
	FAILS("--max-conns 2 is shared out among --workers 3", "listen", ":1", "--cert", "c",
	      "--key", "k", "--echo", "-k", "--workers", "3", "--max-conns", "2");
}

Test(opts, help_and_version)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "--version"), 0);
	cr_assert(o.version);
	cr_assert_eq(PARSE(&o, &err, "listen", "--help"), 0);
	cr_assert(o.help);
	cr_assert_eq(o.cmd, CLI_CMD_LISTEN);
}

Test(opts, usage_errors)
{
	usage_fails(1, (char *[]){ "ktlsctl", NULL }, "no command given");
	FAILS("unknown option '-q'", "-q");
	FAILS("unknown command 'conect'", "conect", "x:1");
	FAILS("exactly one HOST:PORT", "connect");
	FAILS("exactly one HOST:PORT", "connect", "a:1", "b:2");
	FAILS("unknown option '--bogus'", "connect", "--bogus", "a:1");
	FAILS("needs an argument", "connect", "a:1", "--cipher");
	FAILS("unknown cipher 'rc4'", "connect", "--cipher", "rc4", "a:1");
	FAILS("invalid --ktls 'maybe'", "connect", "--ktls", "maybe", "a:1");
	FAILS("invalid --connect-timeout '0'", "connect", "--connect-timeout", "0", "a:1");
	FAILS("invalid --handshake-timeout 'x'", "connect", "--handshake-timeout", "x", "a:1");
	FAILS("listen needs --cert FILE and --key FILE", "listen", ":1");
	FAILS("--cert and --key go together", "connect", "--cert", "c", "a:1");
	FAILS("--verify-client needs --cafile", "listen", ":1", "--cert", "c", "--key", "k",
	      "--verify-client");
	FAILS("--priority replaces", "connect", "--priority", "NORMAL", "--tls1.3", "a:1");
	FAILS("unknown option '--echo'", "connect", "--echo", "a:1");
	FAILS("malformed address", "connect", "nohost");
	FAILS("selftest takes no arguments", "selftest", "x");
}

/* probe: --only names come from core's table of checks, by bit. */
Test(opts, probe)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "probe", "example.com:443"), 0, "%s", err.msg);
	cr_assert_eq(o.cmd, CLI_CMD_PROBE);
	cr_assert_eq(o.probe_only, 0);
	cr_assert_eq(o.probe_timeout_ms, 5000);
	cr_assert_str_eq(o.tls.sni, "example.com");
	cr_assert_eq(PARSE(&o, &err, "probe", "a:1", "--only", "resume,keyupdate", "--only",
			   "ktls", "--timeout", "0.5", "--http"), 0, "%s", err.msg);
	cr_assert_eq(o.probe_only, 1u << kc_pc_index("resume", 6) |
			 1u << kc_pc_index("keyupdate", 9) | 1u << kc_pc_index("ktls", 4));
	cr_assert_eq(o.probe_timeout_ms, 500);
	cr_assert(o.probe_http);
	cr_assert_eq(PARSE(&o, &err, "probe", "--list"), 0, "%s", err.msg);
	cr_assert(o.probe_list);
	FAILS("unknown check 'nosuch' in --only", "probe", "a:1", "--only", "ktls,nosuch");
	FAILS("unknown check '' in --only", "probe", "a:1", "--only", "ktls,");
	FAILS("unknown check 'keyupdat' in --only", "probe", "a:1", "--only", "keyupdat");
	FAILS("--list takes no HOST:PORT", "probe", "a:1", "--list");
	FAILS("--http and --send exclude each other", "probe", "a:1", "--http", "--send", "f");
	FAILS("exactly one HOST:PORT", "probe");
	FAILS("unknown option '--eof'", "probe", "a:1", "--eof", "close");
}

Test(opts, eof_modes)
{
	struct cli_opts o;
	struct kc_err err = { 0 };
	cr_assert_eq(PARSE(&o, &err, "connect", "h:1"), 0, "%s", err.msg);
	cr_assert_eq(o.eof, KC_EOF_LINGER);
	cr_assert_eq(o.linger_ms, CLI_LINGER_DEFAULT_MS);
	cr_assert_eq(PARSE(&o, &err, "listen", ":1", "--cert", "c", "--key", "k", "--eof", "close"),
		     0, "%s", err.msg);
	cr_assert_eq(o.eof, KC_EOF_CLOSE);
	cr_assert_eq(PARSE(&o, &err, "connect", "h:1", "--eof", "wait"), 0, "%s", err.msg);
	cr_assert_eq(o.eof, KC_EOF_WAIT);
	cr_assert_eq(PARSE(&o, &err, "connect", "h:1", "--eof=linger=0.25"), 0, "%s", err.msg);
	cr_assert_eq(o.eof, KC_EOF_LINGER);
	cr_assert_eq(o.linger_ms, 250);
	/* A later plain "linger" is the default quiet time again. */
	cr_assert_eq(PARSE(&o, &err, "connect", "h:1", "--eof", "linger=5", "--eof", "linger"), 0,
		     "%s", err.msg);
	cr_assert_eq(o.linger_ms, CLI_LINGER_DEFAULT_MS);
	FAILS("invalid --eof 'never': use linger, linger=SECS, wait or close",
	      "connect", "h:1", "--eof", "never");
	FAILS("invalid --eof linger=SECS '0'", "connect", "h:1", "--eof", "linger=0");
	FAILS("invalid --eof linger=SECS ''", "connect", "h:1", "--eof", "linger=");
	FAILS("option '--eof' needs an argument", "connect", "h:1", "--eof");
	FAILS("unknown option '--eof'", "stats", "--eof", "close");
}

/* Every table the parser, --help and the completion helper are made of,
 * the program's own included. */
#define EACH_TABLE(sub)                                                       \
	for (const struct cli_subcommand *sub = &cli_program; sub;            \
	     sub = sub == &cli_program ? cli_subcommands                      \
		   : sub[1].name ? sub + 1 : NULL)

Test(opts, tables_are_consistent)
{
	size_t nsub = 0;
	EACH_TABLE(sub) {
		const char *who = sub->name ? sub->name : "(program)";
		nsub++;
		cr_assert(sub->check && sub->description && sub->options[0], "%s", who);
		cr_assert(!sub->name == !sub->run, "%s: a subcommand runs, the program does not", who);
		cr_assert_eq(cli_subcommand_of(sub->cmd), sub, "%s", who);
		for (const struct cli_option *const *p = sub->options; *p; p++) {
			const struct cli_option *opt = *p;
			cr_assert(opt->apply && opt->help && *opt->help, "%s --%s", who, opt->name);
			for (const struct cli_option *const *q = p + 1; *q; q++) {
				cr_assert(strcmp(opt->name, (*q)->name) != 0, "%s: --%s twice", who,
					  opt->name);
				cr_assert(!opt->short_name || opt->short_name != (*q)->short_name,
					  "%s: -%c twice", who, opt->short_name);
			}
			cr_assert(opt->metavar || (!opt->values && opt->hint == CLI_HINT_NONE),
				  "%s --%s: values without an argument", who, opt->name);
			/* --help names each value (a value with a parameter by
			 * what comes before its '='). */
			for (const struct cli_value *v = opt->values; v && v->name; v++)
				cr_assert(memmem(opt->help, strlen(opt->help), v->name,
						 strcspn(v->name, "=")),
					  "%s --%s: the help does not name '%s'", who, opt->name,
					  v->name);
		}
	}
	cr_assert_eq(nsub, 8);
	cr_assert_null(cli_subcommand_named("nosuch"));
}

/* --cipher's list is core's: every name it gives is one core takes, and
 * core takes no cipher it does not give. */
Test(opts, cipher_values_are_cores)
{
	const struct cli_option *opt =
		cli_option_named(cli_subcommand_of(CLI_CMD_CONNECT), "cipher", strlen("cipher"));
	cr_assert_not_null(opt);
	gnutls_cipher_algorithm_t seen[8];
	size_t n = 0;
	for (const struct cli_value *v = opt->values; v->name; v++) {
		gnutls_cipher_algorithm_t ci = kc_cipher_from_name(v->name);
		cr_assert(kc_cipher_supported(ci), "%s", v->name);
		for (size_t i = 0; i < n; i++)
			cr_assert_neq(seen[i], ci, "%s twice", v->name);
		seen[n++] = ci;
	}
	size_t supported = 0;
	for (const gnutls_cipher_algorithm_t *ci = gnutls_cipher_list(); *ci; ci++)
		supported += kc_cipher_supported(*ci);
	cr_assert_eq(n, supported);
}

Test(opts, value_lists_in_messages)
{
	FAILS("invalid --ktls 'AUTO': use auto, require or off", "connect", "--ktls", "AUTO", "a:1");
	FAILS("unknown cipher 'rc4': use AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305 or AES-128-CCM",
	      "connect", "--cipher", "rc4", "a:1");
	FAILS("invalid --eof linger=SECS 'x'", "listen", ":1", "--eof=linger=x");
}
