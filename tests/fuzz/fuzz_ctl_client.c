/* tests/fuzz/fuzz_ctl_client.c: libFuzzer target for the client side of
 * the control-socket protocol (core/ctl.h), what `ktlsctl stats`, `tickets`
 * and `keyupdate` do with whatever a session answers: a fake session (or
 * a process of the same user squatting on a session's socket) may answer
 * anything.
 *
 * Input: byte 0 bit 0 = the request (STATS or TICKETS), bit 1 = the fake
 * session interrupts the client with a signal (SIGUSR1, a handler without
 * SA_RESTART) between the two halves of its answer; the rest is the
 * answer, sent by a fake session listening on <runtime dir>/4242.sock.
 *
 * Each input goes through
 *   1. kc_ctl_parse_response on the bytes, checked against the protocol
 *      of ctl.h read here: success exactly when the answer starts
 *      "KTLSCTL/1 OK\n" and has a "." line within KC_CTL_RESPONSE_MAX
 *      bytes with no NUL before it, *resp then being the lines between,
 *      printable ASCII; any failure is -1, KC_E_PROTOCOL, a printable
 *      one-line message naming the session, *resp NULL (an ERR answer's
 *      message is in it);
 *   2. kc_ctl_fields on *resp: one call per line that has a space and is
 *      shorter than 512 bytes, key and value split at the first space;
 *   3. the cli's own reading, cli/stats.c's session_report (included
 *      here, so its static functions are the real ones) over the socket:
 *      kc_ctl_request (the real recv loop and its 16 KB cap), fields,
 *      labels, grouping, cli/out.c; as JSON it must be valid JSON
 *      (fuzz_json.h), as text printable with line ends only, and it must
 *      fail or succeed as the direct parse did, with the same message;
 *      the request the fake session received is exactly the protocol's.
 * cli_error and friends are captured here, and must be printable too: a
 * session's words end up on the user's terminal. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/stats.c"
#include "fuzz_json.h"

#define FAKE_PID 4242
#define PROTO_OK "KTLSCTL/1 OK\n"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_ctl_client: %s\n", what);
	abort();
}

/* ---- cli stand-ins: messages are captured and checked ------------------- */

volatile sig_atomic_t cli_stop_signal;
int cli_stop_fd = -1;
static char said[2048];

static void printable_line(const char *s, const char *what)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p >= 0x7f) {
			fprintf(stderr, "fuzz_ctl_client: byte 0x%02x in: %s\n", *p, s);
			die(what);
		}
}

static void say(const char *fmt, va_list ap)
{
	vsnprintf(said, sizeof said, fmt, ap);
	printable_line(said, "a message for the terminal that is not printable ASCII");
}

/* The cli's message functions, each captured by say(). */
#define CAPTURED(name)                                  \
	void name(const char *fmt, ...)                 \
	{                                               \
		va_list ap;                             \
		va_start(ap, fmt);                      \
		say(fmt, ap);                           \
		va_end(ap);                             \
	}
CAPTURED(cli_error)
CAPTURED(cli_notice)
CAPTURED(cli_info)

int cli_fail(const struct kc_err *err)
{
	cli_error("%s", err->msg);
	return err->status;
}

/* FUZZ_TOLERATE=jsonnum lets a long run go past the known issue named in
 * tests/fuzz/README.md: out_num_text (cli/out.c) prints values such as
 * "1.", "01" or "1.2.3" as JSON numbers, which they are not. */
static bool tolerate_jsonnum;

/* ---- the fake session ----------------------------------------------------- */

static char rt[256], sockdir[300], sockpath[400];
static int lfd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *answer;
static size_t answer_len;
static bool interrupt;
static pthread_t main_thread;
static char request[300];
static size_t request_len;

static void cleanup(void)
{
	unlink(sockpath);
	rmdir(sockdir);
	rmdir(rt);
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void send_all(int fd, const uint8_t *a, size_t len)
{
	while (len > 0) {
		ssize_t w = send(fd, a, len, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		a += w;
		len -= (size_t)w;
	}
}

static void *fake_session(void *arg)
{
	sigset_t all;
	(void)arg;
	sigfillset(&all);   /* signals are for the client, in the main thread */
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		struct timeval tv = { .tv_sec = 5 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		char req[300];
		size_t n = 0;
		while (n < sizeof req && !memchr(req, '\n', n)) {
			ssize_t r = recv(fd, req + n, sizeof req - n, 0);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		pthread_mutex_lock(&mu);
		memcpy(request, req, n);
		request_len = n;
		const uint8_t *a = answer;
		size_t len = answer_len;
		bool intr = interrupt;
		pthread_mutex_unlock(&mu);
		if (intr) {
			/* The client waits in recv for the rest: a signal now
			 * interrupts it (EINTR), as a Ctrl-Z/fg, a SIGWINCH or a
			 * timer of an embedding program would. */
			send_all(fd, a, len / 2);
			usleep(300);
			pthread_kill(main_thread, SIGUSR1);
			usleep(300);
			send_all(fd, a + len / 2, len - len / 2);
		} else {
			send_all(fd, a, len);
		}
		close(fd);
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *t = getenv("FUZZ_TOLERATE");
	tolerate_jsonnum = t && strstr(t, "jsonnum");
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(rt, sizeof rt, "%s/ktlsctl-fuzz-ctl.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(rt))
		die("mkdtemp");
	setenv("XDG_RUNTIME_DIR", rt, 1);
	atexit(cleanup);
	struct kc_err err = { 0 };
	if (kc_ctl_dir(sockdir, sizeof sockdir, true, &err) < 0)
		die(err.msg);
	snprintf(sockpath, sizeof sockpath, "%s/%d.sock", sockdir, FAKE_PID);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4) < 0)
		die("cannot serve the fake session's socket");
	struct sigaction act = { .sa_handler = on_usr1 };   /* no SA_RESTART */
	sigaction(SIGUSR1, &act, NULL);
	main_thread = pthread_self();
	pthread_t th;
	if (pthread_create(&th, NULL, fake_session, NULL) != 0)
		die("pthread_create");
	pthread_detach(th);
	return 0;
}

/* ---- the model -------------------------------------------------------------- */

static const uint8_t *find(const uint8_t *p, size_t n, const char *s)
{
	return memmem(p, n, s, strlen(s));
}

struct field_model {
	const char *resp;
	size_t at;       /* where the next line starts in resp */
	size_t calls;
};

/* kc_ctl_fields calls this for each field: it must be the next line of
 * resp that has a space and is shorter than 512 bytes. */
static void expect_field(void *ctx, const char *key, const char *value)
{
	struct field_model *m = ctx;
	const char *r = m->resp;
	for (;;) {
		if (!r[m->at])
			die("kc_ctl_fields reported a field after the last line");
		size_t n = strcspn(r + m->at, "\n");
		const char *line = r + m->at;
		m->at += n + (line[n] == '\n');
		const char *sp = memchr(line, ' ', n);
		if (!sp || n >= 512)
			continue;   /* not a field: skipped */
		size_t kl = (size_t)(sp - line);
		if (strlen(key) != kl || memcmp(key, line, kl) != 0 ||
		    strlen(value) != n - kl - 1 || memcmp(value, sp + 1, n - kl - 1) != 0)
			die("kc_ctl_fields: a key or value that is not its line's");
		m->calls++;
		return;
	}
}

static void check_parse(const uint8_t *a, size_t len, char **resp_out, struct kc_err *err_out)
{
	size_t n = len < KC_CTL_RESPONSE_MAX ? len : KC_CTL_RESPONSE_MAX;
	char *resp = (char *)1;
	struct kc_err err = { 0 };
	char buf[64];

	int rc = kc_ctl_parse_response((const char *)a, len, FAKE_PID, &resp, &err);

	/* Success exactly when: the OK line, a "." line, no NUL before it. */
	const uint8_t *dot = NULL;
	bool ok = n >= 13 && memcmp(a, PROTO_OK, 13) == 0 &&
		  (dot = find(a + 12, n - 12, "\n.\n")) != NULL && !memchr(a, '\0', (size_t)(dot - a));
	if ((rc == 0) != ok) {
		fprintf(stderr, "fuzz_ctl_client: parse %s (%s), the protocol says %s\n",
			rc == 0 ? "accepted" : "refused", err.msg, ok ? "accept" : "refuse");
		die("kc_ctl_parse_response disagrees with the protocol");
	}
	if (rc == 0) {
		if (!resp)
			die("success without *resp");
		size_t body = (size_t)(dot + 1 - (a + 13));
		if (strlen(resp) != body)
			die("*resp is not the lines between the OK line and the \".\" line");
		/* Byte for byte, but for unprintable bytes shown as '?'. */
		for (size_t i = 0; i < body; i++) {
			unsigned char want = a[13 + i];
			if (want != '\n' && (want < 0x20 || want >= 0x7f))
				want = '?';
			if ((unsigned char)resp[i] != want) {
				fprintf(stderr, "fuzz_ctl_client: byte %zu of *resp is 0x%02x, the "
					"answer's 0x%02x\n", i, (unsigned char)resp[i], a[13 + i]);
				die("*resp differs from the answer (beyond showing unprintables as '?')");
			}
		}
		struct field_model fm = { .resp = resp };
		int count = kc_ctl_fields(resp, expect_field, &fm);
		if (count < 0 || (size_t)count != fm.calls)
			die("kc_ctl_fields' count is not its number of calls");
		struct field_model rest = fm;
		while (resp[rest.at]) {   /* no field may be left over */
			size_t l = strcspn(resp + rest.at, "\n");
			const char *line = resp + rest.at;
			rest.at += l + (line[l] == '\n');
			if (memchr(line, ' ', l) && l < 512)
				die("kc_ctl_fields skipped a field");
		}
	} else {
		if (rc != -1 || resp != NULL)
			die("a failure without -1 and *resp NULL");
		if (err.status != KC_E_PROTOCOL || !err.msg[0])
			die("a failure without KC_E_PROTOCOL and a message");
		snprintf(buf, sizeof buf, "session %d", FAKE_PID);
		if (!strstr(err.msg, buf))
			die("a failure message that does not name the session");
		printable_line(err.msg, "a failure message that is not printable ASCII");
		if (n >= 14 && memcmp(a, "KTLSCTL/1 ERR ", 14) == 0) {
			/* The session's message: its first line, unprintables as '?'. */
			char want[600];
			size_t w = (size_t)snprintf(want, sizeof want, "session %d: ", FAKE_PID);
			for (size_t i = 14; i < n && a[i] != '\n' && a[i] != '\0' && w < sizeof want - 1;
			     i++)
				want[w++] = a[i] < 0x20 || a[i] >= 0x7f ? '?' : (char)a[i];
			want[w] = '\0';
			if (strncmp(err.msg, want, sizeof err.msg - 1) != 0)
				die("an ERR answer's message is not what kc_err shows");
		}
	}
	*resp_out = rc == 0 ? resp : NULL;
	if (rc != 0)
		free(resp == (char *)1 ? NULL : resp);
	*err_out = err;
}

/* ---- through the cli ---------------------------------------------------- */

static void through_cli(bool json, const char *req, int direct_rc, const struct kc_err *derr)
{
	char *text = NULL;
	size_t text_len = 0;
	FILE *f = open_memstream(&text, &text_len);
	if (!f)
		die("open_memstream");
	struct cli_out o;
	struct kc_err err = { 0 };
	out_init(&o, f, json);
	out_list(&o, "sessions", "sessions");
	int rc = session_report(&o, FAKE_PID, req, &err);
	out_end(&o);
	out_finish(&o);
	fclose(f);

	char want_req[64];
	int wl = snprintf(want_req, sizeof want_req, "KTLSCTL/1 %s\n", req);
	pthread_mutex_lock(&mu);
	if (request_len != (size_t)wl || memcmp(request, want_req, (size_t)wl) != 0)
		die("the request on the wire is not the protocol's");
	pthread_mutex_unlock(&mu);

	if ((rc == 0) != (direct_rc == 0)) {
		fprintf(stderr, "fuzz_ctl_client: over the socket: %s; direct: %s\n",
			rc == 0 ? "ok" : err.msg, direct_rc == 0 ? "ok" : derr->msg);
		die("the answer over the socket and the direct parse disagree");
	}
	if (rc < 0 && (err.status != derr->status || strcmp(err.msg, derr->msg) != 0)) {
		fprintf(stderr, "fuzz_ctl_client: '%s' / '%s'\n", err.msg, derr->msg);
		die("the failure over the socket is not the direct parse's");
	}
	if (json) {
		const char *why = fzj_valid(text, text_len);
		if (why && tolerate_jsonnum && strstr(why, "number"))
			why = NULL;
		if (why) {
			fprintf(stderr, "fuzz_ctl_client: JSON: %s\n%.*s\n", why,
				(int)(text_len > 2000 ? 2000 : text_len), text);
			die("stats --json output that is not JSON");
		}
	} else {
		for (size_t i = 0; i < text_len; i++)
			if (text[i] != '\n' && ((unsigned char)text[i] < 0x20 ||
						(unsigned char)text[i] >= 0x7f))
				die("text output with a byte that is not printable ASCII");
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *req = data[0] & 1 ? "TICKETS" : "STATS";
	size_t len = size - 1;
	uint8_t *a = malloc(len ? len : 1);
	if (!a)
		return 0;
	memcpy(a, data + 1, len);

	char *resp;
	struct kc_err derr;
	check_parse(a, len, &resp, &derr);
	int direct_rc = resp ? 0 : -1;
	free(resp);

	pthread_mutex_lock(&mu);
	answer = a;
	answer_len = len;
	interrupt = data[0] & 2;
	pthread_mutex_unlock(&mu);
	through_cli(true, req, direct_rc, &derr);
	through_cli(false, req, direct_rc, &derr);
	pthread_mutex_lock(&mu);
	answer = NULL;
	answer_len = 0;
	pthread_mutex_unlock(&mu);
	free(a);
	return 0;
}
