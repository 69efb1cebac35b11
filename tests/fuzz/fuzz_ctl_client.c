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
 *   1. kc_ctl_parse_response on the bytes, checked against ctl.h and
 *      view_json.h read here: a tree only after "KTLSCTL/2 OK\n" and a
 *      body (within KC_CTL_RESPONSE_MAX) that a strict JSON checker
 *      (fuzz_json.h, with bytes above 127 taken as the letter x, since strings
 *      keep only printable ASCII) finds to be one object nested at most
 *      KC_VIEW_JSON_DEPTH deep; such a body refused only for a repeated
 *      member name; the tree keeps view.h's promises (fuzz_view.h) and
 *      writes back as valid JSON that reads back to the same JSON; any
 *      failure is -1, KC_E_PROTOCOL, a printable one-line message naming
 *      the session (an ERR naming the process asked: KC_E_CONNECT, its
 *      message as it is), *out NULL, and the exact message ctl.h gives for an
 *      ERR answer, an answer of another protocol version, or one cut
 *      inside the OK line;
 *   2. the cli's own reading, cli/stats.c's ask_session (included here,
 *      so its static functions are the real ones) over the socket:
 *      kc_ctl_request (the real recv loop and its KC_CTL_RESPONSE_MAX cap), the labels
 *      and summary of core/diag/session_view.c (a serving process's
 *      sessions each an element of the list), the report printed as
 *      JSON (valid JSON, fuzz_json.h) and as full and brief text
 *      (printable, line ends only); it must fail or succeed as the direct
 *      parse did, with the same message and the same tree; the request
 *      the fake session received is exactly the protocol's.
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
#include "core/diag/view_json.h"
#include "core/diag/view_text.h"
#include "fuzz_json.h"
#include "fuzz_view.h"

#define FAKE_PID 4242
#define PROTO_OK "KTLSCTL/2 OK\n"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_ctl_client: %s\n", what);
	abort();
}

/* ---- cli stand-ins: messages are captured and checked ------------------- */

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

void cli_log_line(const char *line)
{
	cli_error("%s", line);
}

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

static void printable_text(const char *s, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\n' && ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f))
			die(what);
}

/* The tree's JSON reads back to itself. */
static char *check_tree(const struct kc_view *v)
{
	fzv_check(v);
	char *j = kc_view_json(v, NULL);
	if (!j)
		die("kc_view_json failed");
	if (fzj_valid(j, strlen(j)))
		die("a tree written as JSON that is not JSON");
	struct kc_view *again = NULL;
	if (kc_view_from_json(j, strlen(j), &again, NULL) != 0)
		die("a tree's own JSON does not read back");
	char *j2 = kc_view_json(again, NULL);
	if (!j2 || strcmp(j, j2) != 0)
		die("a tree's JSON reads back to another tree");
	free(j2);
	kc_view_free(again);
	return j;
}

/* The direct parse: returns the tree's JSON on success (NULL on failure,
 * with *err_out). */
static char *check_parse(const uint8_t *a, size_t len, struct kc_err *err_out)
{
	size_t n = len < KC_CTL_RESPONSE_MAX ? len : KC_CTL_RESPONSE_MAX;
	struct kc_view *tree = (struct kc_view *)1;
	struct kc_err err = { 0 };
	char buf[64];

	int rc = kc_ctl_parse_response((const char *)a, len, FAKE_PID, &tree, &err);

	bool ok_line = n >= 13 && memcmp(a, PROTO_OK, 13) == 0;
	const char *why = "not an OK answer";
	unsigned depth = 0;
	if (ok_line) {
		/* Strings keep printable ASCII: a byte above 127 stands for a
		 * letter that means nothing in JSON's syntax (no hex digit). */
		char *body = malloc(n - 13 + 1);
		if (!body)
			die("malloc");
		for (size_t i = 13; i < n; i++)
			body[i - 13] = a[i] >= 0x80 ? 'x' : (char)a[i];
		size_t bl = n - 13, s = 0;
		why = fzj_valid_depth(body, bl, &depth);
		while (s < bl && strchr(" \t\r\n", body[s]))
			s++;
		if (!why && (s == bl || body[s] != '{'))
			why = "not an object";
		if (!why && depth > KC_VIEW_JSON_DEPTH)
			why = "nested too deep";
		free(body);
	}
	if (rc == 0 && why) {
		fprintf(stderr, "fuzz_ctl_client: accepted, but the model says: %s\n", why);
		die("kc_ctl_parse_response accepts what is not one JSON object");
	}
	if (rc < 0 && !why && !strstr(err.msg, "a member name repeated")) {
		fprintf(stderr, "fuzz_ctl_client: refused (%s) a valid answer\n", err.msg);
		die("kc_ctl_parse_response refuses a valid answer for a reason other than a "
		    "repeated member name");
	}
	*err_out = err;
	if (rc == 0) {
		if (!tree)
			die("success without *out");
		char *j = check_tree(tree);
		kc_view_free(tree);
		return j;
	}
	if (rc != -1 || tree != NULL)
		die("a failure without -1 and *out NULL");
	/* An ERR about which session, naming the process asked: as it is. */
	char self[64];
	int sl = snprintf(self, sizeof self, "KTLSCTL/2 ERR process %d ", FAKE_PID);
	if (!ok_line && n >= (size_t)sl && memcmp(a, self, (size_t)sl) == 0) {
		if (err.status != KC_E_CONNECT || strncmp(err.msg, "process ", 8) != 0)
			die("an ERR naming the process is not shown as it is, with KC_E_CONNECT");
		printable_line(err.msg, "a failure message that is not printable ASCII");
		return NULL;
	}
	if (err.status != KC_E_PROTOCOL || !err.msg[0])
		die("a failure without KC_E_PROTOCOL and a message");
	snprintf(buf, sizeof buf, "session %d", FAKE_PID);
	if (strncmp(err.msg, buf, strlen(buf)) != 0)
		die("a failure message that does not start by naming the session");
	printable_line(err.msg, "a failure message that is not printable ASCII");

	/* ctl.h's words for what is not an OK answer, from its first line. */
	char line[600], want[700];
	size_t w = 0;
	for (size_t i = 0; i < n && a[i] != '\n' && a[i] != '\0' && w < sizeof line - 1; i++)
		line[w++] = a[i] < 0x20 || a[i] >= 0x7f ? '?' : (char)a[i];
	line[w] = '\0';
	want[0] = '\0';
	if (!ok_line && n > 0 && n < 13 && memcmp(a, PROTO_OK, n) == 0)
		snprintf(want, sizeof want, "session %d sent an incomplete answer (it may have just "
			 "ended)", FAKE_PID);
	else if (!ok_line && strncmp(line, "KTLSCTL/2 ERR ", 14) == 0)
		snprintf(want, sizeof want, "session %d: %s", FAKE_PID, line + 14);
	else if (!ok_line && strncmp(line, "KTLSCTL/", 8) == 0 && strcspn(line + 8, " ") == 1 &&
		 line[8] == '2')
		snprintf(want, sizeof want, "session %d sent a malformed answer: neither OK nor ERR",
			 FAKE_PID);
	else if (!ok_line && strncmp(line, "KTLSCTL/", 8) == 0)
		snprintf(want, sizeof want, "session %d speaks control protocol KTLSCTL/%.*s, this "
			 "ktlsctl KTLSCTL/2: ask it with the ktlsctl that started it", FAKE_PID,
			 (int)(strcspn(line + 8, " ") < 16 ? strcspn(line + 8, " ") : 16), line + 8);
	if (want[0] && strncmp(err.msg, want, sizeof err.msg - 1) != 0) {
		fprintf(stderr, "fuzz_ctl_client: '%s', expected '%s'\n", err.msg, want);
		die("an answer that is not OK gets another message than ctl.h's");
	}
	return NULL;
}

/* ---- through the cli ---------------------------------------------------- */

static void through_cli(bool tickets, const char *direct_json, const struct kc_err *derr)
{
	struct kc_err err = { 0 };
	struct kc_view *root = kc_view_new();
	if (!root)
		die("kc_view_new");
	struct kc_view *list = kc_view_array(root, "sessions", "sessions");
	static const struct cli_opts opts;   /* no --session */
	int rc = ask_session(list, FAKE_PID, &opts, tickets, &err);

	char want_req[64];
	int wl = snprintf(want_req, sizeof want_req, "KTLSCTL/2 %s\n", tickets ? "TICKETS" : "STATS");
	pthread_mutex_lock(&mu);
	if (request_len != (size_t)wl || memcmp(request, want_req, (size_t)wl) != 0)
		die("the request on the wire is not the protocol's");
	pthread_mutex_unlock(&mu);

	if ((rc >= 0) != (direct_json != NULL)) {
		fprintf(stderr, "fuzz_ctl_client: over the socket: %s; direct: %s\n",
			rc >= 0 ? "ok" : err.msg, direct_json ? "ok" : derr->msg);
		die("the answer over the socket and the direct parse disagree");
	}
	if (rc < 0 && (err.status != derr->status || strcmp(err.msg, derr->msg) != 0)) {
		fprintf(stderr, "fuzz_ctl_client: '%s' / '%s'\n", err.msg, derr->msg);
		die("the failure over the socket is not the direct parse's");
	}
	if (rc >= 0) {
		/* A serving process's STATS: its sessions, each an element of
		 * the list; else the answer is the one element. */
		struct kc_view *direct = NULL;
		if (kc_view_from_json(direct_json, strlen(direct_json), &direct, NULL) < 0)
			die("the direct parse's JSON does not read back");
		const struct kc_view *served = kc_view_get(direct, "sessions");
		bool many = !tickets && served && served->kind == KC_VIEW_ARRAY;
		char *j = kc_view_json(many ? list : list->first, NULL);
		char *want = many ? kc_view_json(served, NULL) : strdup(direct_json);
		if (!j || !want || strcmp(j, want) != 0)
			die("the tree over the socket is not the direct parse's");
		free(j);
		free(want);
		kc_view_free(direct);
	}
	fzv_check(root);
	char *json = kc_view_json(root, NULL);
	if (!json)
		die("kc_view_json failed");
	const char *why = fzj_valid(json, strlen(json));
	if (why) {
		fprintf(stderr, "fuzz_ctl_client: JSON: %s\n%.2000s\n", why, json);
		die("stats --json output that is not JSON");
	}
	free(json);
	for (int style = 0; style < 2; style++) {
		char *text = kc_view_text(root, style ? KC_VIEW_BRIEF : KC_VIEW_FULL, NULL);
		if (!text)
			die("kc_view_text failed");
		printable_text(text, strlen(text), "text output with a byte that is not printable ASCII");
		free(text);
	}
	kc_view_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool tickets = data[0] & 1;
	size_t len = size - 1;
	uint8_t *a = malloc(len ? len : 1);
	if (!a)
		return 0;
	memcpy(a, data + 1, len);

	struct kc_err derr;
	char *direct_json = check_parse(a, len, &derr);

	pthread_mutex_lock(&mu);
	answer = a;
	answer_len = len;
	interrupt = data[0] & 2;
	pthread_mutex_unlock(&mu);
	through_cli(tickets, direct_json, &derr);
	free(direct_json);
	pthread_mutex_lock(&mu);
	answer = NULL;
	answer_len = 0;
	pthread_mutex_unlock(&mu);
	free(a);
	return 0;
}
