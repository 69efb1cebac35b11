/* core/sysinfo.h: what `ktlsctl stats` says about the kernel.
 *
 *   kc_ktls_caps    is kTLS available (ULP registered, module loadable, why
 *                   not), which ciphers work in TLS 1.2/1.3 for TX and RX,
 *                   TLS 1.3 rekey, optional socket options.  Everything is
 *                   found by experiment on fresh loopback sockets
 *                   (core/probe.h, research/kernel-ktls.md §5), never by
 *                   kernel version and never on a live connection.
 *   kc_tls_stat     /proc/net/tls_stat, parsed generically.
 *   kc_view         one tree that the cli renders both as text and as JSON,
 *                   so the two cannot drift (core/sockdiag.h fills it too).
 *
 * Nothing here prints or exits. */
#ifndef KC_SYSINFO_H
#define KC_SYSINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/keys.h"

/* ------------------------------------------------------------ view tree */

/* A JSON-shaped tree with text labels.  JSON: objects, arrays, strings,
 * unsigned numbers, booleans, null; `key` is the member name inside an
 * object (stable, snake_case, documented below) and NULL inside an array.
 * Text: `label` is what a person reads ("kTLS available"); `text`, when
 * set on an object or array, is a complete one-line rendering of it, so a
 * text renderer may print "label: text" and skip the children.
 * All strings are printable ASCII. */
enum kc_view_kind {
	KC_VIEW_OBJECT,
	KC_VIEW_ARRAY,
	KC_VIEW_STRING,
	KC_VIEW_UINT,
	KC_VIEW_BOOL,
	KC_VIEW_NULL,
};

struct kc_view {
	enum kc_view_kind kind;
	char *key;
	char *label;
	char *text;                   /* objects/arrays: optional one-liner */
	char *str;                    /* KC_VIEW_STRING */
	uint64_t num;                 /* KC_VIEW_UINT */
	bool flag;                    /* KC_VIEW_BOOL */
	struct kc_view *first, *last; /* children, in order */
	struct kc_view *next;         /* next sibling */
	struct kc_view *root;         /* the tree's root (for the oom flag) */
	bool oom;                     /* on the root: an allocation failed */
};

/* A new empty root object; NULL when out of memory. */
struct kc_view *kc_view_new(void);
/* Frees a tree made by kc_view_new (the root, never a child alone). */
void kc_view_free(struct kc_view *root);

/* Builders: add a child to parent (an object: key required; an array: key
 * NULL) and return it.  They accept parent == NULL (and then do nothing),
 * so a chain of calls needs no checks; an allocation failure marks the
 * root (kc_view_ok() is then false). */
struct kc_view *kc_view_object(struct kc_view *parent, const char *key, const char *label);
struct kc_view *kc_view_array(struct kc_view *parent, const char *key, const char *label);
struct kc_view *kc_view_string(struct kc_view *parent, const char *key, const char *label,
			       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
struct kc_view *kc_view_uint(struct kc_view *parent, const char *key, const char *label,
			     uint64_t value);
struct kc_view *kc_view_bool(struct kc_view *parent, const char *key, const char *label,
			     bool value);
struct kc_view *kc_view_null(struct kc_view *parent, const char *key, const char *label);
/* A string, or null when s is NULL or empty. */
struct kc_view *kc_view_string_or_null(struct kc_view *parent, const char *key,
				       const char *label, const char *s);
void kc_view_set_text(struct kc_view *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The child of an object by key, NULL if none. */
const struct kc_view *kc_view_get(const struct kc_view *obj, const char *key);
bool kc_view_ok(const struct kc_view *v);

/* --------------------------------------------------------- capabilities */

enum kc_cap_state { KC_CAP_UNKNOWN = -1, KC_CAP_NO = 0, KC_CAP_YES = 1 };

/* One answer.  reason: for NO/UNKNOWN a short "why" (always set); for YES
 * an optional note ("loaded on demand by this probe"), usually "". */
struct kc_cap {
	enum kc_cap_state state;
	int sys_errno;        /* the errno behind the answer, 0 when none */
	char reason[200];
};

/* "yes", "no", "unknown" */
const char *kc_cap_state_name(enum kc_cap_state s);

#define KC_CAPS_NCIPHERS 4

struct kc_cipher_caps {
	gnutls_cipher_algorithm_t cipher;
	const char *name;         /* "AES-128-GCM" (core/keys.h names) */
	uint16_t kernel_id;       /* TLS_CIPHER_* */
	const char *kernel_name;  /* "aes-gcm-128" (core/probe.h names) */
	struct kc_cap tls12_tx, tls12_rx, tls13_tx, tls13_rx;
};

struct kc_ktls_caps {
	bool net_admin;            /* caller has CAP_NET_ADMIN ("root") */
	bool ulp_registered;       /* "tls" in tcp_available_ulp before probing */
	char available_ulps[128];  /* that file's contents, "" if unreadable */
	struct kc_cap available;   /* TCP_ULP "tls" works for this caller */
	struct kc_cap module;      /* tls.ko loaded or loadable */
	struct kc_cipher_caps ciphers[KC_CAPS_NCIPHERS]; /* AES-128-GCM, AES-256-GCM,
							    CHACHA20-POLY1305, AES-128-CCM */
	struct kc_cap rekey;              /* TLS 1.3 key update (TX) */
	struct kc_cap rx_expect_no_pad;   /* TLS_RX_EXPECT_NO_PAD */
	struct kc_cap tx_zerocopy_ro;     /* TLS_TX_ZEROCOPY_RO */
	struct kc_cap tx_max_payload_len; /* TLS_TX_MAX_PAYLOAD_LEN */
};

/* Probe everything (about 20 throw-away loopback pairs).  Returns 0 and a
 * filled *caps whenever the answers could be formed, including "kTLS is
 * not available, because ..." (caps->available.state == KC_CAP_NO); -1
 * only on a bug (NULL caps).  When kTLS is unavailable, every per-cipher
 * and feature answer is KC_CAP_UNKNOWN "not probed: ...".  See probe.h for
 * the side effects (tls_stat counters, module autoload as root). */
int kc_ktls_caps_probe(struct kc_ktls_caps *caps, struct kc_err *err);

/* Adds object "kernel" to parent:
 *   available            {state, reason, errno}   (a "cap" object)
 *   net_admin            bool
 *   ulp_registered       bool
 *   available_ulps       string|null
 *   module               cap
 *   ciphers              [ {name, kernel_name, kernel_id,
 *                           tls12: {tx: cap, rx: cap}, tls13: {tx: cap, rx: cap}} ]
 *   rekey                cap
 *   features             {rx_expect_no_pad: cap, tx_zerocopy_ro: cap,
 *                         tx_max_payload_len: cap}
 * where cap = {state: "yes"|"no"|"unknown", reason: string|null,
 *              errno: "ENOENT"|...|null}.
 * 0, or -1 with *err when out of memory. */
int kc_ktls_caps_view(const struct kc_ktls_caps *caps, struct kc_view *parent,
		      struct kc_err *err);

/* --------------------------------------------------- /proc/net/tls_stat */

#define KC_TLS_STAT_PATH "/proc/net/tls_stat"

struct kc_tls_stat_entry {
	char name[64];
	uint64_t value;
};

struct kc_tls_stat {
	bool present;                     /* the file was read */
	char reason[200];                 /* why not, when !present */
	struct kc_tls_stat_entry *entries;/* in file order, unknown names too */
	size_t n;
	size_t skipped;                   /* lines that were not "Name value" */
};

/* Parse "Name<blanks>value" lines from buf (len bytes, need not be NUL
 * terminated).  A line is taken when it is a name of [A-Za-z0-9_] (at most
 * 63 characters), blanks, and a decimal value that fits 64 bits, with
 * optional trailing blanks; any other non-empty line is counted in
 * skipped.  Appends to *st (zero-initialise it first); sets present.
 * 0, or -1 with *err when out of memory. */
int kc_tls_stat_parse(const char *buf, size_t len, struct kc_tls_stat *st,
		      struct kc_err *err);

/* Read and parse path (NULL: KC_TLS_STAT_PATH) into *st (initialised
 * here).  A missing file is no error: present = false and reason "tls
 * module not loaded (no /proc/net/tls_stat)"; an unreadable one likewise
 * with the errno in reason.  -1 with *err only for out of memory or a
 * read failure midway. */
int kc_tls_stat_read(const char *path, struct kc_tls_stat *st, struct kc_err *err);

/* The entry called name, NULL if none. */
const struct kc_tls_stat_entry *kc_tls_stat_find(const struct kc_tls_stat *st,
						 const char *name);
void kc_tls_stat_free(struct kc_tls_stat *st);

/* Adds object "tls_stat" to parent:
 *   present    bool
 *   reason     string|null
 *   counters   {Name: uint, ...}   (file order; a repeated name keeps
 *                                  its first value)
 *   skipped_lines uint
 * 0, or -1 with *err when out of memory. */
int kc_tls_stat_view(const struct kc_tls_stat *st, struct kc_view *parent,
		     struct kc_err *err);

/* ---------------------------------------------------------------- misc */

/* True when this process has CAP_NET_ADMIN (what the kernel checks for
 * module autoload and, before Linux 6.15, for sock_diag ULP info). */
bool kc_sysinfo_net_admin(void);

/* "ENOENT", "EINVAL", ... for the errnos probes meet; "errno N" otherwise
 * (into buf). */
const char *kc_errno_name(int e, char *buf, size_t len);

/* The small parsers of /proc and /lib/modules text behind the answers
 * above (callable on their own for tests and fuzzing; nothing is opened):
 *   kc_proc_status_capeff    a /proc/PID/status stream: 1 and *eff, the
 *                            CapEff mask, from the first "CapEff:" line;
 *                            0 when no line has one.
 *   kc_ulp_list_has          is word one of the blank-separated words of
 *                            list (/proc/sys/net/ipv4/tcp_available_ulp)?
 *   kc_modules_list_has_tls  a modules.builtin or modules.dep stream: 1
 *                            when a line starts with kernel/net/tls/tls.ko
 *                            (".ko.xz" and the like included), else 0. */
int kc_proc_status_capeff(FILE *f, uint64_t *eff);
bool kc_ulp_list_has(const char *list, const char *word);
int kc_modules_list_has_tls(FILE *f);

#endif
