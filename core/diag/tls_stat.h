/* core/diag/tls_stat.h: the kernel's kTLS counters, /proc/net/tls_stat,
 * parsed generically (names this version does not know are kept too).
 * Nothing here prints or exits. */
#ifndef KC_DIAG_TLS_STAT_H
#define KC_DIAG_TLS_STAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/diag/view.h"
#include "core/err.h"

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

#endif
