/* tests/fuzz/fuzz_opts.c: libFuzzer target for cli/opts.c (cli_parse, and
 * through it core/addr.c and kc_cipher_from_name), with argv built from the
 * input.
 *
 * Input: byte 0 picks argv[1]: 0 = none (the input gives it), 1 connect,
 * 2 listen, 3 selftest (low two bits); the rest is split at NUL bytes into
 * at most MAX_ARGS arguments, each in an exactly sized buffer.  Use
 * fuzz_opts.dict (option names) for a useful run.  Checks on success:
 * what opts.h and the usage rules promise (a HOST:PORT for connect and
 * listen, --cert with --key, counts in range); on failure: status
 * KC_E_USAGE and a message. */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/opts.h"

#define MAX_ARGS 24

static void die(const char *what)
{
	fprintf(stderr, "fuzz_opts: %s\n", what);
	abort();
}

/* FUZZ_TOLERATE=optmsg lets a long run go past the known issue in the
 * report (tests/fuzz/regress/fuzz_opts/): "--tls1.2=x" is reported as
 * "unknown option '-" (the message cut at a NUL from '%c' of 256). */
static bool tolerate_optmsg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *t = getenv("FUZZ_TOLERATE");
	tolerate_optmsg = t && strstr(t, "optmsg");
	return 0;
}

/* A message naming an option must name it: "unknown option 'X'" with X
 * neither empty nor a lone '-' (a long name may be cut to fit, though). */
static void check_message(const char *msg)
{
	static const char pre[] = "unknown option '";
	if (strncmp(msg, pre, sizeof pre - 1) != 0 || tolerate_optmsg)
		return;
	const char *m = msg + sizeof pre - 1;
	const char *q = strstr(m, " (see ");
	size_t n = q ? (size_t)(q - m) : strlen(m);
	if (n && m[n - 1] == '\'')
		n--;
	if (n == 0 || (n == 1 && m[0] == '-')) {
		fprintf(stderr, "fuzz_opts: message: %s\n", msg);
		die("an option name cut short in the error message");
	}
}

/* getopt keeps a pointer into the last argv between calls (inside a
 * cluster of short options such as "-qv" when it stopped there).  The
 * program parses once per process; here every input is a new process as
 * far as getopt is concerned: optind = 0 makes glibc start over. */
static void reset_getopt(void)
{
	static char prog[] = "ktlsctl";
	char *argv[] = { prog, NULL };
	optind = 0;
	opterr = 0;
	while (getopt(1, argv, "") != -1)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const cmds[] = { NULL, "connect", "listen", "selftest" };
	char *argv[MAX_ARGS + 3];
	char *copy[MAX_ARGS + 3];
	int argc = 0, ncopy = 0;

	if (size < 1)
		return 0;
	const char *cmd = cmds[data[0] & 3];
	argv[argc++] = copy[ncopy++] = strdup("ktlsctl");
	if (cmd)
		argv[argc++] = copy[ncopy++] = strdup(cmd);
	const uint8_t *p = data + 1, *end = data + size;
	while (p < end && argc < MAX_ARGS + 2) {
		const uint8_t *z = memchr(p, '\0', (size_t)(end - p));
		size_t n = z ? (size_t)(z - p) : (size_t)(end - p);
		char *a = malloc(n + 1);
		if (!a)
			abort();
		memcpy(a, p, n);
		a[n] = '\0';
		argv[argc++] = copy[ncopy++] = a;
		p += n + 1;
	}
	argv[argc] = NULL;

	struct cli_opts o;
	struct kc_err err = { 0 };
	reset_getopt();
	int rc = cli_parse(argc, argv, &o, &err);
	if (rc == 0) {
		if (o.tls.n_ciphers > sizeof o.tls.ciphers / sizeof o.tls.ciphers[0])
			die("more ciphers than the array holds");
		if (o.tls.n_alpn > KC_MAX_ALPN)
			die("more ALPN protocols than the array holds");
		for (size_t i = 0; i < o.tls.n_alpn; i++)
			if (!o.tls.alpn[i] || !o.tls.alpn[i][0] || strlen(o.tls.alpn[i]) > 255)
				die("an ALPN protocol out of range");
		if (!o.help && !o.version) {
			if (o.cmd == CLI_CMD_NONE)
				die("success without a command");
			if (o.cmd == CLI_CMD_CONNECT || o.cmd == CLI_CMD_LISTEN) {
				if (!o.hp.port[0])
					die("success without a port");
				if (o.cmd == CLI_CMD_CONNECT && !o.hp.host[0])
					die("connect without a host");
				if (o.cmd == CLI_CMD_LISTEN && (!o.tls.n_certfiles || !o.tls.n_keyfiles))
					die("listen without --cert and --key");
				if (o.tls.verify_client && !o.tls.cafile)
					die("--verify-client without --cafile");
			}
			if (o.cmd == CLI_CMD_CONNECT && !o.tls.verify_name)
				die("connect without a name to verify");
		}
		if (o.connect_timeout_ms == 0 || o.tls.handshake_timeout_ms == 0 ||
		    o.connect_timeout_ms > 86400000u || o.tls.handshake_timeout_ms > 86400000u)
			die("a timeout out of range");
	} else {
		if (rc != -1 || err.status != KC_E_USAGE || !err.msg[0])
			die("a failure without -1, KC_E_USAGE and a message");
		check_message(err.msg);
	}
	for (int i = 0; i < ncopy; i++)
		free(copy[i]);
	return 0;
}
