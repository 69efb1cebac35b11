/* tests/unit/test_ctl.c: the client's reading of a session's answer
 * (control protocol 2, core/ctl.h) and the words a session report gets
 * for people (core/diag/session_view.h). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctl.h"
#include "core/diag/session_view.h"
#include "core/diag/view_json.h"
#include "core/diag/view_text.h"

static const char session_json[] =
	"{\"pid\":4242,\"role\":\"client\",\"peer\":\"127.0.0.1:8443\",\"channel\":\"kernel\","
	"\"version\":\"TLS1.2\",\"cipher\":\"AES-256-GCM\",\"resumed\":true,"
	"\"tx\":{\"records_key\":2,\"records\":3,\"bytes\":11,\"key_updates\":0,"
	"\"limit\":16777216,\"limit_used\":0.0000,\"record_size\":512,"
	"\"record_size_by\":\"writes\"},"
	"\"rx\":{\"records_key\":4,\"records\":4,\"bytes\":20,\"key_updates\":0,"
	"\"limit\":16777216,\"limit_used\":0.0000,\"record_size\":16384,"
	"\"record_size_exact\":false,\"no_pad\":true},"
	"\"rekey_point\":100,\"at_rekey_point\":\"close\",\"tickets\":0,\"uptime\":17,"
	"\"new_member\":\"kept\"}";

static void refused(const char *answer, size_t len, const char *msg)
{
	struct kc_view *v = (struct kc_view *)1;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_ctl_parse_response(answer, len, 42, &v, &err), -1, "%.*s", (int)len, answer);
	cr_assert_null(v);
	cr_assert_eq(err.status, KC_E_PROTOCOL);
	cr_assert_str_eq(err.msg, msg, "%.*s", (int)len, answer);
}

#define REFUSED(s, msg) refused(s, sizeof s - 1, msg)

Test(ctl, answers_read)
{
	char answer[2048];
	struct kc_view *v = NULL;
	struct kc_err err = { 0 };

	snprintf(answer, sizeof answer, "KTLSCTL/2 OK\n%s\n", session_json);
	cr_assert_eq(kc_ctl_parse_response(answer, strlen(answer), 42, &v, &err), 0, "%s", err.msg);
	char *j = kc_view_json(v, NULL);
	cr_assert_str_eq(j, session_json);   /* numbers as the session wrote them */
	free(j);
	kc_view_free(v);

	cr_assert_eq(kc_ctl_parse_response("KTLSCTL/2 OK\n{}\n", 16, 42, &v, &err), 0);
	cr_assert_null(v->first);
	kc_view_free(v);
}

Test(ctl, answers_refused)
{
	REFUSED("KTLSCTL/2 ERR key updates are not in TLS 1.2\n",
		"session 42: key updates are not in TLS 1.2");
	REFUSED("KTLSCTL/2 ERR bell\a and \x80 high\nsecond line\n",
		"session 42: bell? and ? high");
	/* A session of an older (or newer) ktlsctl. */
	REFUSED("KTLSCTL/1 ERR unsupported protocol version (this session speaks KTLSCTL/1)\n",
		"session 42 speaks control protocol KTLSCTL/1, this ktlsctl KTLSCTL/2: ask it "
		"with the ktlsctl that started it");
	REFUSED("KTLSCTL/1 OK\npid 42\n.\n",
		"session 42 speaks control protocol KTLSCTL/1, this ktlsctl KTLSCTL/2: ask it "
		"with the ktlsctl that started it");
	REFUSED("KTLSCTL/3 OK\n{}\n",
		"session 42 speaks control protocol KTLSCTL/3, this ktlsctl KTLSCTL/2: ask it "
		"with the ktlsctl that started it");
	/* Cut short: the session may have ended while answering. */
	REFUSED("KTLSCTL/2 OK\n{\"pid\":42,\"ro",
		"session 42 sent an incomplete answer (it may have just ended)");
	REFUSED("KTLSCTL/2 OK\n", "session 42 sent an incomplete answer (it may have just ended)");
	REFUSED("KTLSCTL/2 O", "session 42 sent an incomplete answer (it may have just ended)");
	REFUSED("", "session 42 gave no answer (it may have just ended)");
	REFUSED("HTTP/1.1 400 Bad Request\r\n", "session 42 gave no answer (it may have just ended)");
	REFUSED("KTLSCTL/2 OK\npid 42\n.\n",
		"session 42 sent a malformed answer: not a JSON object at byte 0");
	REFUSED("KTLSCTL/2 OK\n{\"a\":1}\n{}\n",
		"session 42 sent a malformed answer: text after the JSON document at byte 8");
	REFUSED("KTLSCTL/2 MAYBE\n", "session 42 sent a malformed answer: neither OK nor ERR");
	/* Only KC_CTL_RESPONSE_MAX bytes count: a longer answer is cut. */
	size_t big = KC_CTL_RESPONSE_MAX + 100;
	char *a = malloc(big);
	memset(a, ' ', big);
	memcpy(a, "KTLSCTL/2 OK\n{\"s\":\"", 19);
	memcpy(a + big - 3, "\"}\n", 3);
	refused(a, big, "session 42 sent an incomplete answer (it may have just ended)");
	free(a);
}

/* The same words on a tree read back from JSON as on one just built: the
 * labels come from the keys, the summary from the values. */
Test(session_view, labels_and_summary)
{
	struct kc_view *root = kc_view_new(), *v = NULL;
	cr_assert_eq(kc_view_from_json(session_json, strlen(session_json), &v, NULL), 0);
	struct kc_view *s = kc_view_adopt(kc_view_array(root, "sessions", "sessions"), NULL, v);
	kc_session_view_label(s);
	kc_view_set_label(s, "session 4242");
	char *full = kc_view_text(root, KC_VIEW_FULL, NULL);
	cr_assert_str_eq(full,
		"sessions:\n"
		"  session 4242\n"
		"    pid: 4242\n"
		"    role: client\n"
		"    peer: 127.0.0.1:8443\n"
		"    record channel: kernel\n"
		"    version: TLS1.2\n"
		"    cipher: AES-256-GCM\n"
		"    resumed: yes\n"
		"    send:\n"
		"      records under the current key: 2\n"
		"      records in all: 3\n"
		"      bytes: 11\n"
		"      key updates: 0\n"
		"      confidentiality limit (records, 0 = none): 16777216\n"
		"      limit used (%): 0.0000\n"
		"      record size limit (bytes): 512\n"
		"      record size kept by: writes\n"
		"    receive:\n"
		"      records under the current key: 4\n"
		"      records in all: 4\n"
		"      bytes: 20\n"
		"      key updates: 0\n"
		"      confidentiality limit (records, 0 = none): 16777216\n"
		"      limit used (%): 0.0000\n"
		"      record size limit (bytes): 16384\n"
		"      every record checked: no\n"
		"      TLS_RX_EXPECT_NO_PAD: yes\n"
		"    rekey point (records under one key): 100\n"
		"    at the rekey point: close\n"
		"    tickets held: 0\n"
		"    uptime (s): 17\n"
		"    new_member: kept\n");
	free(full);
	cr_assert_str_eq(s->summary, "session 4242: client 127.0.0.1:8443 TLS1.2 AES-256-GCM, "
			 "kernel channel, 11 bytes sent, 20 received, up 17s");
	kc_view_free(root);

	/* A hostile answer: what is missing shows as "?". */
	root = kc_view_new();
	cr_assert_eq(kc_view_from_json("{\"tx\":[]}", 9, &v, NULL), 0);
	s = kc_view_adopt(root, "s", v);
	kc_session_view_label(s);
	cr_assert_str_eq(s->summary, "session ?: ? ? ? ?, ? channel, ? bytes sent, ? received, up ?s");
	kc_view_free(root);
}

Test(session_view, tickets_titles)
{
	static const char t[] = "{\"count\":2,\"tickets\":[{\"lifetime\":7200,\"in_use\":false},"
				"{\"lifetime\":60,\"in_use\":true}]}";
	struct kc_view *v = NULL;
	cr_assert_eq(kc_view_from_json(t, sizeof t - 1, &v, NULL), 0);
	kc_tickets_view_label(v);
	char *full = kc_view_text(v, KC_VIEW_FULL, NULL);
	cr_assert_str_eq(full,
		"tickets: 2\n"
		"ticket list:\n"
		"  ticket 1\n"
		"    lifetime (s): 7200\n"
		"    used to resume: no\n"
		"  ticket 2\n"
		"    lifetime (s): 60\n"
		"    used to resume: yes\n");
	free(full);
	kc_view_free(v);
}

/* Requests as a serving process reads them: an id names one of its
 * sessions; anything else is no request. */
Test(ctl, requests_parsed)
{
	struct kc_ctl_req rq;
	static const struct {
		const char *words;
		enum kc_ctl_op op;
		unsigned long id;
		bool request;
	} good[] = {
		{ "STATS", KC_CTL_STATS, 0, false },
		{ "STATS 7", KC_CTL_STATS, 7, false },
		{ "TICKETS", KC_CTL_TICKETS, 0, false },
		{ "TICKETS 7", KC_CTL_TICKETS, 7, false },
		{ "KEYUPDATE", KC_CTL_KEYUPDATE, 0, false },
		{ "KEYUPDATE request", KC_CTL_KEYUPDATE, 0, true },
		{ "KEYUPDATE 12", KC_CTL_KEYUPDATE, 12, false },
		{ "KEYUPDATE 12 request", KC_CTL_KEYUPDATE, 12, true },
		{ "KEYUPDATE 4294967296", KC_CTL_KEYUPDATE, 4294967296UL, false },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		cr_assert_eq(kc_ctl_parse_request(good[i].words, &rq), 0, "%s", good[i].words);
		cr_assert_eq(rq.op, good[i].op, "%s", good[i].words);
		cr_assert_eq(rq.id, good[i].id, "%s", good[i].words);
		cr_assert_eq(rq.request, good[i].request, "%s", good[i].words);
	}
	static const char *const bad[] = {
		"", "STAT", "STATSX", "STATS ", "STATS 07", "stats", "TICKETS request",
		"TICKETS 0", "TICKETS 07", "TICKETS -7", "TICKETS +7", "TICKETS 7x", "TICKETS 7 ",
		"TICKETS  7", "KEYUPDATE request 7", "KEYUPDATE 7 request ", "KEYUPDATE 7 Request",
		"KEYUPDATE 99999999999999999999", "KEYUPDATE 1 2", " STATS",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(kc_ctl_parse_request(bad[i], &rq), -1, "'%s'", bad[i]);
}

/* An ERR about which session, naming the process asked, is shown as it
 * is, as "no such session" (KC_E_CONNECT); another process's name is
 * just an ERR. */
Test(ctl, answers_about_sessions)
{
	static const char a[] = "KTLSCTL/2 ERR process 42 has no session 9 running (its "
				"sessions: 1, 2, 5)\n";
	struct kc_view *v = NULL;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_ctl_parse_response(a, sizeof a - 1, 42, &v, &err), -1);
	cr_assert_eq(err.status, KC_E_CONNECT);
	cr_assert_str_eq(err.msg, "process 42 has no session 9 running (its sessions: 1, 2, 5)");
	REFUSED("KTLSCTL/2 ERR process 421 is a single session\n",
		"session 42: process 421 is a single session");
}

/* A serving process's session: its id in the labels and the summary. */
Test(session_view, served_session_summary)
{
	static const char j[] = "{\"pid\":4242,\"session\":7,\"role\":\"server\","
				"\"peer\":\"127.0.0.1:50000\",\"channel\":\"user-space\","
				"\"version\":\"TLS1.3\",\"cipher\":\"AES-256-GCM\","
				"\"tx\":{\"bytes\":5},\"rx\":{\"bytes\":6},\"uptime\":3}";
	struct kc_view *v = NULL;
	cr_assert_eq(kc_view_from_json(j, sizeof j - 1, &v, NULL), 0);
	kc_session_view_label(v);
	cr_assert_str_eq(v->summary, "session 4242 #7: server 127.0.0.1:50000 TLS1.3 AES-256-GCM, "
			 "user-space channel, 5 bytes sent, 6 received, up 3s");
	cr_assert_str_eq(kc_view_get(v, "session")->label, "serving session");
	kc_view_free(v);
}
