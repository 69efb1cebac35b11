/* core/peercheck.h: `ktlsctl probe`: what a TLS server does after the
 * handshake, checked one behaviour at a time.
 *
 * Each check opens its own connection (TCP, handshake, handover to a
 * record channel as connect does), does one thing (a KeyUpdate, a burst
 * of them, close_notify, ...), makes the server talk with the request of
 * the options (a line of text, an HTTP request, a file's bytes) and judges
 * what came back, within a timeout for every wait.  The checks live in
 * one table (peercheck.c): name, one-line summary, function.  Nothing here
 * prints or exits: results come back as a report, which
 * core/diag/peercheck_view.h turns into a view tree. */
#ifndef KC_PEERCHECK_H
#define KC_PEERCHECK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/conn.h"
#include "core/err.h"
#include "core/handshake.h"
#include "core/net.h"
#include "core/starttls.h"

enum kc_pc_result {
	KC_PC_PASS,
	KC_PC_FAIL,
	KC_PC_NA,          /* does not apply (TLS 1.2 for KeyUpdate, ...) */
	KC_PC_UNKNOWN,     /* could not tell (the connection for it failed) */
};

/* "pass", "fail", "n/a", "unknown": stable, in text and JSON. */
const char *kc_pc_result_name(enum kc_pc_result r);

/* The checks, in the order they run. */
size_t kc_pc_count(void);
const char *kc_pc_name(size_t i);
const char *kc_pc_summary(size_t i);
/* The index of the check called name (len bytes), -1 when none. */
int kc_pc_index(const char *name, size_t len);

/* KeyUpdates sent by the keyupdate-repeat and keyupdate-burst checks. */
#define KC_PC_KU_REPEAT 4
#define KC_PC_KU_BURST 100
/* The record_size_limit the record-size-limit check announces when the
 * options give none. */
#define KC_PC_RSL_DEFAULT 512
/* The bytes the tls12 check sends (and reads back) on one connection. */
#define KC_PC_TLS12_VOLUME (4u << 20)
/* The default of --volume: what server-keyupdate sends at most. */
#define KC_PC_VOLUME_DEFAULT (16u << 20)

/* What the request is: the checks that need the server to send much
 * (an echo of what they send) or more than a record size limit can only
 * do so with a server that echoes. */
enum kc_pc_talk {
	KC_PC_TALK_LINE,     /* a line of text: an echo server is assumed */
	KC_PC_TALK_HTTP,     /* an HTTP request ending in an empty line */
	KC_PC_TALK_FILE,     /* --send FILE's bytes */
};

struct kc_pc_opts {
	const struct kc_hostport *hp;
	unsigned connect_timeout_ms;
	const struct kc_tls_opts *tls;   /* a client's */
	struct kc_creds *creds;
	enum kc_ktls_mode ktls;
	/* The user-space channel plays a kernel that cannot rekey
	 * (KTLSCTL_TEST_SOFT_NOREKEY, as for connect). */
	bool soft_no_rekey;
	/* What makes the server talk, sent after each check's action. */
	const void *request;
	size_t request_len;
	enum kc_pc_talk talk;
	uint64_t volume;                 /* server-keyupdate: bytes to send at most */
	unsigned timeout_ms;             /* each wait for the server */
	uint32_t only;                   /* bit i: run check i; 0: every check */
	/* NULL, or the STARTTLS preamble every connection speaks first. */
	const struct kc_starttls_opts *starttls;
	/* As in kc_tls_opts: a stop ends the run (-1, sys_errno EINTR). */
	volatile sig_atomic_t *stop;
	int stop_fd;
};

#define KC_PC_MAX 24
#define KC_PC_REASON_MAX 400

struct kc_pc_outcome {
	const char *name;
	enum kc_pc_result result;
	char reason[KC_PC_REASON_MAX];   /* printable ASCII, one line */
	double elapsed_ms;               /* the whole check, connections included */
};

struct kc_pc_report {
	char peer[KC_ADDRSTR_MAX];       /* the address connected to */
	char session[256];               /* the first connection, kc_tls_describe */
	char channel[16];                /* its record channel: "kernel", "user-space" */
	size_t n;
	struct kc_pc_outcome out[KC_PC_MAX];
	unsigned failed;                 /* results KC_PC_FAIL */
};

/* Run the checks o asks for into *r.  0 when they ran (r->failed says
 * whether one failed; a connection that failed after the first made that
 * check's result unknown); -1 with *err (its status: KC_E_CONNECT,
 * KC_E_VERIFY, KC_E_HANDSHAKE, ...) when the first connection could not
 * be made: the server cannot be probed at all. */
int kc_peercheck_run(const struct kc_pc_opts *o, struct kc_pc_report *r, struct kc_err *err);

#endif
