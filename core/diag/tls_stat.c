/* core/diag/tls_stat.c: /proc/net/tls_stat, parsed generically (see
 * tls_stat.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag/tls_stat.h"

#define TLS_STAT_MAX_BYTES (1u << 20)

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/* One line [p, e): 1 parsed into *out, 0 blank, -1 junk. */
static int parse_line(const char *p, const char *e, struct kc_tls_stat_entry *out)
{
	const char *name;
	size_t nlen;
	uint64_t v = 0;

	while (p < e && is_blank(*p))
		p++;
	if (p == e)
		return 0;
	name = p;
	while (p < e && is_name_char(*p))
		p++;
	nlen = (size_t)(p - name);
	if (nlen == 0 || nlen >= sizeof out->name || p == e || !is_blank(*p))
		return -1;
	while (p < e && is_blank(*p))
		p++;
	if (p == e || *p < '0' || *p > '9')
		return -1;
	for (; p < e && *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	while (p < e && is_blank(*p))
		p++;
	if (p != e)
		return -1;
	memcpy(out->name, name, nlen);
	out->name[nlen] = '\0';
	out->value = v;
	return 1;
}

int kc_tls_stat_parse(const char *buf, size_t len, struct kc_tls_stat *st,
		      struct kc_err *err)
{
	size_t cap = st->n;
	const char *p = buf, *end = buf + len;

	st->present = true;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		struct kc_tls_stat_entry ent;
		int r = parse_line(p, e, &ent);
		if (r < 0)
			st->skipped++;
		if (r > 0) {
			if (st->n == cap) {
				size_t ncap = cap ? cap * 2 : 32;
				struct kc_tls_stat_entry *ne =
					realloc(st->entries, ncap * sizeof *ne);
				if (!ne)
					return kc_err_set(err, KC_E_INTERNAL, "out of memory");
				st->entries = ne;
				cap = ncap;
			}
			st->entries[st->n++] = ent;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int kc_tls_stat_read(const char *path, struct kc_tls_stat *st, struct kc_err *err)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rc;

	memset(st, 0, sizeof *st);
	if (!path)
		path = KC_TLS_STAT_PATH;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			snprintf(st->reason, sizeof st->reason,
				 "tls module not loaded (no %s)", path);
		else
			snprintf(st->reason, sizeof st->reason, "cannot read %s: %s",
				 path, strerror(errno));
		return 0;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= TLS_STAT_MAX_BYTES) {
				close(fd);
				free(buf);
				return kc_err_set(err, KC_E_IO, "%s is larger than %u bytes: "
						  "not a tls_stat file?", path, TLS_STAT_MAX_BYTES);
			}
			size_t ncap = cap ? cap * 2 : 4096;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				close(fd);
				free(buf);
				return kc_err_set(err, KC_E_INTERNAL, "out of memory");
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			free(buf);
			return kc_err_errno(err, KC_E_IO, e, "cannot read %s", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	rc = kc_tls_stat_parse(buf ? buf : "", len, st, err);
	free(buf);
	return rc;
}

const struct kc_tls_stat_entry *kc_tls_stat_find(const struct kc_tls_stat *st,
						 const char *name)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->entries[i].name, name) == 0)
			return &st->entries[i];
	return NULL;
}

void kc_tls_stat_free(struct kc_tls_stat *st)
{
	if (!st)
		return;
	free(st->entries);
	st->entries = NULL;
	st->n = 0;
}

/* An entry's name and place in the file, sorted by name then place. */
struct stat_ix {
	const char *name;
	size_t i;
};

static int cmp_stat_ix(const void *a, const void *b)
{
	const struct stat_ix *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->i > y->i) - (x->i < y->i);
}

int kc_tls_stat_view(const struct kc_tls_stat *st, struct kc_view *parent,
		     struct kc_err *err)
{
	struct kc_view *o = kc_view_object(parent, "tls_stat", "/proc/net/tls_stat");

	kc_view_bool(o, "present", "present", st->present);
	kc_view_string_or_null(o, "reason", "reason", st->present ? NULL : st->reason);
	struct kc_view *c = kc_view_object(o, "counters", "counters");
	/* A repeated name keeps its first value (JSON keys must be unique).
	 * Repeats are found by sorting, not by a search per entry: a file
	 * of many names must not take quadratic time. */
	struct stat_ix *ix = st->n ? calloc(st->n, sizeof *ix) : NULL;
	bool *repeat = st->n ? calloc(st->n, sizeof *repeat) : NULL;
	if (st->n && (!ix || !repeat)) {
		free(ix);
		free(repeat);
		return kc_err_set(err, KC_E_INTERNAL, "out of memory building the report");
	}
	for (size_t i = 0; i < st->n; i++)
		ix[i] = (struct stat_ix){ st->entries[i].name, i };
	if (st->n)
		qsort(ix, st->n, sizeof *ix, cmp_stat_ix);
	for (size_t i = 1; i < st->n; i++)
		if (strcmp(ix[i].name, ix[i - 1].name) == 0)
			repeat[ix[i].i] = true;
	for (size_t i = 0; i < st->n; i++)
		if (!repeat[i])
			kc_view_uint(c, st->entries[i].name, st->entries[i].name,
				     st->entries[i].value);
	free(ix);
	free(repeat);
	kc_view_uint(o, "skipped_lines", "unparsed lines", st->skipped);
	if (!st->present)
		kc_view_set_text(o, "%s", st->reason);
	return kc_view_status(parent, err);
}
