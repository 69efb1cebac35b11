/* cli/selftest.c: `ktlsctl selftest`.
 *
 * For TLS 1.2 and 1.3 with each cipher, a real server (forked child, echo)
 * and a real client (this process) do a GnuTLS handshake on loopback with
 * an ephemeral certificate, hand over to the best channel available, move
 * random data both ways through the same pump the sessions use, update
 * keys both ways (TLS 1.3), and close with close_notify on both sides. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/crypto.h>

#include "cli/msg.h"
#include "cli/out.h"
#include "cli/selftest.h"
#include "cli/signals.h"
#include "core/cipher.h"
#include "core/conn.h"
#include "core/diag/view_text.h"
#include "core/net.h"
#include "core/pump.h"
#include "core/selfcert.h"

#define SELFTEST_BYTES (1024 * 1024)

struct st_case {
	unsigned version;                  /* KC_VERS_* */
	gnutls_cipher_algorithm_t cipher;
};

struct st_result {
	const char *channel;
	bool on_kernel;
	char fallback[512];
	char detail[256];
	unsigned tickets;
	struct kc_err err;
};

static void count_event(void *ctx, const struct kc_event *ev)
{
	if (ev->kind == KC_EV_TICKET)
		((struct st_result *)ctx)->tickets++;
}

static void tls_opts_for(const struct st_case *tc, const struct kc_selfcert *sc,
			 enum kc_role role, struct kc_tls_opts *t)
{
	memset(t, 0, sizeof *t);
	t->role = role;
	t->versions = tc->version;
	t->ciphers[0] = tc->cipher;
	t->n_ciphers = 1;
	t->handshake_timeout_ms = 10000;
	t->stop = &cli_stop_signal;
	t->stop_fd = cli_stop_fd;
	t->ca_pem = &sc->cert_pem;
	if (role == KC_SERVER) {
		t->cert_pem = &sc->cert_pem;
		t->key_pem = &sc->key_pem;
	} else {
		t->verify_name = "localhost";
		t->sni = "localhost";
	}
}

static int open_conn(int fd, const struct kc_tls_opts *t, struct kc_creds *creds,
		     struct st_result *r, gnutls_session_t *s, struct kc_conn **conn)
{
	struct kc_conn_opts co = { .role = t->role, .fallback = true,
				   .on_event = count_event, .event_ctx = r };
	co.kernel = kc_conn_choose_channel(fd, KC_KTLS_AUTO, r->fallback, sizeof r->fallback,
					   NULL) == 1;
	if (kc_tls_handshake(fd, t, creds, s, &r->err) < 0)
		return -1;
	if (kc_conn_open(*s, fd, &co, conn, &r->err) < 0)
		return -1;
	if (kc_conn_fallback_reason(*conn))
		snprintf(r->fallback, sizeof r->fallback, "%s", kc_conn_fallback_reason(*conn));
	r->channel = kc_conn_channel_name(*conn);
	r->on_kernel = kc_conn_channel_kind(*conn) == KC_CHANNEL_KERNEL;
	return 0;
}

/* The child: accept one connection and echo it. */
static int serve_echo(int lfd, const struct st_case *tc, const struct kc_selfcert *sc)
{
	struct kc_tls_opts t;
	struct kc_creds *creds = NULL;
	struct st_result r = { 0 };
	gnutls_session_t s = NULL;
	struct kc_conn *conn = NULL;
	char peer[KC_ADDRSTR_MAX];
	int rc = 1;

	tls_opts_for(tc, sc, KC_SERVER, &t);
	int fd = kc_tcp_accept(lfd, -1, peer, &r.err);
	if (fd >= 0 && kc_creds_new(&t, &creds, &r.err) == 0 &&
	    open_conn(fd, &t, creds, &r, &s, &conn) == 0) {
		struct kc_pump_opts po = { .in_fd = -1, .out_fd = -1, .echo = true, .stop_fd = -1 };
		rc = kc_pump_run(conn, &po, &r.err) == KC_PUMP_CLOSED ? 0 : 1;
	}
	kc_conn_free(conn);
	if (s)
		gnutls_deinit(s);
	kc_creds_free(creds);
	return rc;
}

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("ktlsctl-selftest", MFD_CLOEXEC);
	if (fd >= 0 && len && (write(fd, data, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool output_matches(int fd, const unsigned char *want, size_t len)
{
	unsigned char buf[65536];
	size_t off = 0;
	ssize_t n;
	while ((n = pread(fd, buf, sizeof buf, (off_t)off)) > 0) {
		if (off + (size_t)n > len || memcmp(buf, want + off, (size_t)n) != 0)
			return false;
		off += (size_t)n;
	}
	return n == 0 && off == len;
}

static int run_client(const char *addr, const struct st_case *tc,
		      const struct kc_selfcert *sc, const unsigned char *data, struct st_result *r)
{
	struct kc_tls_opts t;
	struct kc_creds *creds = NULL;
	gnutls_session_t s = NULL;
	struct kc_conn *conn = NULL;
	struct kc_hostport hp;
	char peer[KC_ADDRSTR_MAX];
	int in = -1, out = -1, fd = -1, rc = -1;

	tls_opts_for(tc, sc, KC_CLIENT, &t);
	if (kc_parse_hostport(addr, false, &hp, &r->err) < 0 ||
	    kc_creds_new(&t, &creds, &r->err) < 0 ||
	    (fd = kc_tcp_connect(&hp, 5000, peer, &r->err)) < 0 ||
	    open_conn(fd, &t, creds, r, &s, &conn) < 0)
		goto out;
	/* A kernel before 6.14 cannot rekey: that is a fact to report, not
	 * a failure of the kernel path (the refusal sends nothing). */
	bool rekeyed = false;
	if (tc->version == KC_VERS_13) {
		if (kc_conn_key_update(conn, true, &r->err) == 0)
			rekeyed = true;
		else if (r->err.status != KC_E_NOREKEY)
			goto out;
	}
	in = memfd_with(data, SELFTEST_BYTES);
	out = memfd_with(NULL, 0);
	if (in < 0 || out < 0) {
		kc_err_errno(&r->err, KC_E_IO, errno, "memfd_create");
		goto out;
	}
	struct kc_pump_opts po = { .in_fd = in, .out_fd = out, .stop = &cli_stop_signal,
				   .stop_fd = cli_stop_fd };
	int end = kc_pump_run(conn, &po, &r->err);
	if (end < 0)
		goto out;
	if (end != KC_PUMP_CLOSED || !output_matches(out, data, SELFTEST_BYTES)) {
		kc_err_set(&r->err, KC_E_IO, "the echoed data differs from what was sent");
		goto out;
	}
	snprintf(r->detail, sizeof r->detail, "1 MiB echoed%s, %u ticket%s",
		 rekeyed ? ", keys updated both ways"
		 : tc->version == KC_VERS_13 ? ", keys not updated (this kernel cannot rekey)" : "",
		 r->tickets, r->tickets == 1 ? "" : "s");
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	kc_conn_free(conn);
	if (s)
		gnutls_deinit(s);
	if (fd >= 0)
		close(fd);
	kc_creds_free(creds);
	return rc;
}

static int run_case(const struct st_case *tc, const struct kc_selfcert *sc,
		    const unsigned char *data, struct st_result *r)
{
	struct kc_hostport any = { .host = "127.0.0.1", .port = "0", .host_is_ip = true };
	char addr[KC_ADDRSTR_MAX];
	int lfd = kc_tcp_listen(&any, addr, &r->err);
	if (lfd < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(lfd);
		return kc_err_errno(&r->err, KC_E_INTERNAL, errno, "fork");
	}
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);   /* the parent handles stops; a signal */
		signal(SIGTERM, SIG_DFL);  /* just ends the child */
		_exit(serve_echo(lfd, tc, sc));
	}
	close(lfd);
	int rc = run_client(addr, tc, sc, data, r);
	int wstatus = 0;
	if (rc < 0)   /* the child may wait for a client that gave up */
		kill(pid, SIGKILL);
	waitpid(pid, &wstatus, 0);
	if (rc == 0 && !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0))
		rc = kc_err_set(&r->err, KC_E_PROTOCOL, "the echo server did not finish cleanly");
	return rc;
}

/* One case's line of the report. */
static void add_case(struct kc_view *cases, const char *version, gnutls_cipher_algorithm_t cipher,
		     const struct st_result *r, bool ok, double secs)
{
	const char *detail = ok ? r->detail : r->err.msg;
	struct kc_view *c = kc_view_object(cases, NULL, "case");

	kc_view_string(c, "version", NULL, "%s", version);
	kc_view_string(c, "cipher", NULL, "%s", kc_cipher_name(cipher));
	kc_view_string(c, "channel", "record channel", "%s", r->channel);
	kc_view_bool(c, "ok", NULL, ok);
	const struct kc_view *s = kc_view_decimal(c, "seconds", NULL, secs, 3);
	kc_view_string(c, "detail", NULL, "%s", detail);
	kc_view_set_text(c, "%-7s %-18s %-10s %-4s %6ss  %s", version, kc_cipher_name(cipher),
			 r->channel, ok ? "ok" : "FAIL", s ? s->str : "?", detail);
	kc_view_mark_brief(c);
}

/* The text report grows case by case: print what the last call did not. */
static void print_progress(const struct kc_view *root, bool json, size_t *shown)
{
	struct kc_err err = { 0 };
	char *text = json ? NULL : kc_view_text(root, KC_VIEW_BRIEF, &err);
	if (!text)
		return;
	size_t len = strlen(text);
	if (len > *shown)
		fputs(text + *shown, stdout);
	*shown = len;
	fflush(stdout);
	free(text);
}

int cli_selftest(const struct cli_opts *o)
{
	struct kc_selfcert sc;
	struct kc_err err;
	unsigned passed = 0, failed = 0, on_kernel = 0;
	const char *channel = NULL;
	char kernel_why[512] = "";
	size_t shown = 0;

	if (kc_selfcert_generate(&sc, &err) < 0)
		return cli_fail(&err);
	unsigned char *data = malloc(SELFTEST_BYTES);
	struct kc_view *root = kc_view_new();
	if (!data || !root || gnutls_rnd(GNUTLS_RND_NONCE, data, SELFTEST_BYTES) < 0) {
		free(data);
		kc_view_free(root);
		kc_selfcert_free(&sc);
		cli_error("cannot prepare test data");
		return KC_E_INTERNAL;
	}
	struct kc_view *cases = kc_view_array(root, "cases", "cases");
	kc_view_set_summary(cases, "ktlsctl selftest: loopback client and server, %d cases",
			    2 * KC_NCIPHERS);
	print_progress(root, o->json, &shown);
	for (unsigned v = KC_VERS_12; v <= KC_VERS_13 && !cli_stop_signal; v++) {
		for (size_t i = 0; i < KC_NCIPHERS && !cli_stop_signal; i++) {
			gnutls_cipher_algorithm_t cipher = kc_ciphers[i].gnutls;
			struct st_case tc = { .version = v, .cipher = cipher };
			struct st_result r = { .channel = "-" };
			struct timespec t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			int rc = run_case(&tc, &sc, data, &r);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
			add_case(cases, v == KC_VERS_13 ? "TLS1.3" : "TLS1.2", cipher, &r, rc == 0,
				 secs);
			print_progress(root, o->json, &shown);
			if (rc == 0) {
				passed++;
				channel = r.channel;
				on_kernel += r.on_kernel;
			} else {
				failed++;
			}
			if (r.fallback[0] && !kernel_why[0])
				snprintf(kernel_why, sizeof kernel_why, "%s", r.fallback);
		}
	}
	bool kernel_ok = on_kernel == passed && passed > 0 && failed == 0;
	struct kc_view *k = kc_view_bool(root, "kernel_tls", "kernel TLS carried every case",
					 kernel_ok);
	if (kernel_why[0]) {
		kc_view_set_summary(k, "kernel TLS: not used: %s", kernel_why);
		kc_view_string(root, "kernel_tls_unavailable", "kernel TLS unavailable", "%s",
			       kernel_why);
	} else if (kernel_ok) {
		kc_view_set_summary(k, "kernel TLS: works (the kernel encrypted and decrypted "
				    "every case)");
	}
	kc_view_set_summary(kc_view_uint(root, "passed", NULL, passed),
			    "%u passed, %u failed (record channel: %s)", passed, failed,
			    channel ? channel : "none");
	kc_view_uint(root, "failed", NULL, failed);
	kc_view_string(root, "channel", "record channel", "%s", channel ? channel : "none");
	if (o->json)
		cli_print_view(stdout, root, CLI_JSON);
	else
		print_progress(root, false, &shown);
	kc_view_free(root);
	free(data);
	kc_selfcert_free(&sc);
	if (cli_stop_signal)
		return cli_interrupted_status();
	if (failed)
		return 1;
	/* The user-space channel passing is success, unless the caller
	 * needs the kernel path itself. */
	return o->require_kernel && !kernel_ok ? KC_E_KTLS : 0;
}
