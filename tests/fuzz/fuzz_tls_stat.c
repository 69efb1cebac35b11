/* tests/fuzz/fuzz_tls_stat.c: libFuzzer target for core/diag/tls_stat.c's
 * /proc/net/tls_stat parser (kc_tls_stat_parse, kc_tls_stat_read,
 * kc_tls_stat_find) and the "tls_stat" view built from it
 * (kc_tls_stat_view).
 *
 * Input: byte 0 = where to cut the text for the two-call parse below
 * (at the first line end at or after byte0/256 of the text) and, in bit 0,
 * whether to read it back through a file as well; the rest is the file's
 * text, in an exactly sized buffer with no NUL after it.
 *
 * Checks, against an independent reading of tls_stat.h's rule (a POSIX
 * regular expression and strtoull, line by line): the entries are exactly
 * the lines of the form "[blanks]Name blanks decimal [blanks]" with a name
 * of 1 to 63 of [A-Za-z0-9_] and a value below 2^64, in file order, and
 * skipped counts every other line that is not blank; parsing the text in
 * two calls cut at a line end appends to the same result; the text written
 * to a file and read with kc_tls_stat_read gives the same result again;
 * kc_tls_stat_find finds the first entry of a name; the view is a valid
 * tree (fuzz_view.h) whose counters are each name once, in order of first
 * appearance, with its first value, and whose skipped_lines is skipped. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag/tls_stat.h"
#include "fuzz_view.h"

static char dir[256], path[300];
static regex_t line_re;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_tls_stat: %s\n", what);
	abort();
}

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/ktlsctl-fuzz-tls_stat.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(path, sizeof path, "%s/tls_stat", dir);
	atexit(cleanup);
	/* Blanks are the five of isblank-or-space without the line end. */
	if (regcomp(&line_re, "^[ \t\r\v\f]*([A-Za-z0-9_]{1,63})[ \t\r\v\f]+([0-9]+)[ \t\r\v\f]*$",
		    REG_EXTENDED) != 0)
		die("regcomp");
	return 0;
}

/* ---- the model ---------------------------------------------------------- */

struct model {
	struct kc_tls_stat_entry *e;
	size_t n, cap, skipped;
};

static void model_line(struct model *m, const char *p, size_t len)
{
	size_t i = 0;
	while (i < len && p[i] && strchr(" \t\r\v\f", p[i]))
		i++;
	if (i == len)
		return;   /* blank */
	char *line = malloc(len + 1);
	if (!line)
		die("out of memory");
	memcpy(line, p, len);
	line[len] = '\0';
	regmatch_t g[3];
	bool ok = memchr(p, '\0', len) == NULL && regexec(&line_re, line, 3, g, 0) == 0;
	uint64_t v = 0;
	if (ok) {
		errno = 0;
		unsigned long long x = strtoull(line + g[2].rm_so, NULL, 10);
		if (errno == ERANGE)
			ok = false;
		v = x;
	}
	if (!ok) {
		m->skipped++;
	} else {
		if (m->n == m->cap) {
			m->cap = m->cap ? 2 * m->cap : 16;
			m->e = realloc(m->e, m->cap * sizeof *m->e);
			if (!m->e)
				die("out of memory");
		}
		struct kc_tls_stat_entry *e = &m->e[m->n++];
		memset(e, 0, sizeof *e);
		memcpy(e->name, line + g[1].rm_so, (size_t)(g[1].rm_eo - g[1].rm_so));
		e->value = v;
	}
	free(line);
}

static void model_text(struct model *m, const char *p, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len;
		model_line(m, p, n);
		p += n;
		len -= n;
		if (nl) {
			p++;
			len--;
		}
	}
}

static void same(const struct kc_tls_stat *st, const struct model *m, const char *how)
{
	char msg[200];
	if (!st->present) {
		snprintf(msg, sizeof msg, "%s: present is false after a parse", how);
		die(msg);
	}
	if (st->n != m->n || st->skipped != m->skipped) {
		snprintf(msg, sizeof msg, "%s: %zu entries and %zu skipped, expected %zu and %zu",
			 how, st->n, st->skipped, m->n, m->skipped);
		die(msg);
	}
	for (size_t i = 0; i < m->n; i++) {
		if (strnlen(st->entries[i].name, sizeof st->entries[i].name) ==
		    sizeof st->entries[i].name)
			die("a name without its NUL");
		if (strcmp(st->entries[i].name, m->e[i].name) != 0 ||
		    st->entries[i].value != m->e[i].value) {
			snprintf(msg, sizeof msg, "%s: entry %zu is '%s' %llu, expected '%s' %llu",
				 how, i, st->entries[i].name,
				 (unsigned long long)st->entries[i].value, m->e[i].name,
				 (unsigned long long)m->e[i].value);
			die(msg);
		}
	}
}

static void write_file(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot create the input file");
	while (size) {
		ssize_t w = write(fd, data, size);
		if (w <= 0)
			die("cannot write the input file");
		data += w;
		size -= (size_t)w;
	}
	close(fd);
}

static void check_view(const struct kc_tls_stat *st)
{
	struct kc_view *root = kc_view_new();
	struct kc_err err = { 0 };
	if (!root)
		die("out of memory");
	if (kc_tls_stat_view(st, root, &err) < 0)
		die(err.msg);
	fzv_check(root);
	const struct kc_view *o = kc_view_get(root, "tls_stat");
	const struct kc_view *present = kc_view_get(o, "present");
	const struct kc_view *reason = kc_view_get(o, "reason");
	const struct kc_view *counters = kc_view_get(o, "counters");
	const struct kc_view *skipped = kc_view_get(o, "skipped_lines");
	if (!o || o->kind != KC_VIEW_OBJECT || !present || present->kind != KC_VIEW_BOOL ||
	    !present->flag || !reason || reason->kind != KC_VIEW_NULL || !counters ||
	    counters->kind != KC_VIEW_OBJECT || !skipped || skipped->kind != KC_VIEW_UINT)
		die("view: tls_stat is not {present: true, reason: null, counters: {}, "
		    "skipped_lines: uint}");
	if (skipped->num != st->skipped)
		die("view: skipped_lines is not skipped");
	/* Each name once, in order of first appearance, with its first value. */
	const struct kc_view *c = counters->first;
	for (size_t i = 0; i < st->n; i++) {
		size_t j = 0;
		while (j < i && strcmp(st->entries[j].name, st->entries[i].name) != 0)
			j++;
		if (kc_tls_stat_find(st, st->entries[i].name) != &st->entries[j])
			die("kc_tls_stat_find does not find a name's first entry");
		if (j < i)
			continue;
		if (!c || c->kind != KC_VIEW_UINT || strcmp(c->key, st->entries[i].name) != 0 ||
		    c->num != st->entries[i].value)
			die("view: counters differ from the entries' first values");
		c = c->next;
	}
	if (c)
		die("view: more counters than names");
	kc_view_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned cfg = data[0];
	size_t len = size - 1;
	char *text = malloc(len ? len : 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, len);

	struct model m = { 0 };
	model_text(&m, text, len);

	/* One call. */
	struct kc_tls_stat st = { 0 };
	struct kc_err err = { 0 };
	if (kc_tls_stat_parse(text, len, &st, &err) < 0)
		die(err.msg);
	same(&st, &m, "one parse");
	if (kc_tls_stat_find(&st, "") != NULL)
		die("kc_tls_stat_find found an empty name");
	check_view(&st);
	kc_tls_stat_free(&st);
	if (st.entries || st.n)
		die("kc_tls_stat_free left entries");

	/* Two calls, cut after a line end: each in its own exact buffer. */
	size_t cut = len * (cfg >> 1) / 128;
	const char *nl = cut < len ? memchr(text + cut, '\n', len - cut) : NULL;
	cut = nl ? (size_t)(nl - text) + 1 : len;
	char *a = malloc(cut ? cut : 1), *b = malloc(len - cut ? len - cut : 1);
	if (!a || !b)
		die("out of memory");
	memcpy(a, text, cut);
	memcpy(b, text + cut, len - cut);
	memset(&st, 0, sizeof st);
	if (kc_tls_stat_parse(a, cut, &st, &err) < 0 ||
	    kc_tls_stat_parse(b, len - cut, &st, &err) < 0)
		die(err.msg);
	same(&st, &m, "two parses");
	kc_tls_stat_free(&st);
	free(a);
	free(b);

	/* Through a file. */
	if (cfg & 1) {
		write_file(data + 1, len);
		memset(&st, 0x5a, sizeof st);
		if (kc_tls_stat_read(path, &st, &err) < 0)
			die(err.msg);
		same(&st, &m, "kc_tls_stat_read");
		kc_tls_stat_free(&st);
	}

	free(m.e);
	free(text);
	return 0;
}
