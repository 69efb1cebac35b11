/* core/sessfile.c: saving and loading the resumable session (format in
 * sessfile.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "core/atomicfile.h"
#include "core/sessfile.h"

#define TIME_FMT "%Y-%m-%dT%H:%M:%SZ"
#define AGAIN "save a new one with --session-out"

static void to_hex(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The buffers here hold the session secret (raw or base64): wipe them. */
static void wipe_free(void *p, size_t n)
{
	if (p) {
		gnutls_memset(p, 0, n);
		free(p);
	}
}

void kc_sessfile_free(gnutls_datum_t *data)
{
	if (!data)
		return;
	if (data->data) {
		gnutls_memset(data->data, 0, data->size);
		gnutls_free(data->data);
	}
	data->data = NULL;
	data->size = 0;
}

/* ------------------------------------------------------------------ save */

/* The file's whole text, malloc'd, in *out (length *len). */
static int format_file(const char *peer, const gnutls_datum_t *data,
		       char **out, size_t *len, struct kc_err *err)
{
	unsigned char digest[32];
	char sha[65], when[32];
	int ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, data->data, data->size, digest);
	if (ret < 0)
		return kc_err_set(err, KC_E_INTERNAL, "cannot hash the session data: %s",
				  gnutls_strerror(ret));
	to_hex(digest, sizeof digest, sha);

	time_t now = time(NULL);
	struct tm tm;
	if (!gmtime_r(&now, &tm) || !strftime(when, sizeof when, TIME_FMT, &tm))
		return kc_err_set(err, KC_E_INTERNAL, "cannot format the current time");

	gnutls_datum_t b64 = { NULL, 0 };
	ret = gnutls_base64_encode2(data, &b64);
	if (ret < 0)
		return kc_err_set(err, KC_E_INTERNAL, "cannot encode the session data: %s",
				  gnutls_strerror(ret));

	size_t cap = strlen(KC_SESSFILE_MAGIC) + strlen(peer) + strlen(when) + sizeof sha
		+ b64.size + 64;
	char *text = malloc(cap);
	if (!text) {
		kc_sessfile_free(&b64);
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	}
	int n = snprintf(text, cap, "%s\npeer %s\nsaved %s\nsha256 %s\ndata %.*s\n",
			 KC_SESSFILE_MAGIC, peer, when, sha, (int)b64.size, (const char *)b64.data);
	kc_sessfile_free(&b64);
	if (n < 0 || (size_t)n >= cap) {
		wipe_free(text, cap);
		return kc_err_set(err, KC_E_INTERNAL, "cannot format the session file");
	}
	if ((size_t)n > KC_SESSFILE_MAX) {
		wipe_free(text, cap);
		return kc_err_set(err, KC_E_IO,
				  "the session data (%u bytes) is too large for a session file (at most %d bytes)",
				  data->size, KC_SESSFILE_MAX);
	}
	*out = text;
	*len = (size_t)n;
	return 0;
}

int kc_sessfile_save(const char *path, const char *peer,
		     const gnutls_datum_t *data, struct kc_err *err)
{
	if (!path || !*path)
		return kc_err_set(err, KC_E_USAGE, "no session file name given");
	if (!peer || !*peer || has_control(peer))
		return kc_err_set(err, KC_E_USAGE,
				  "cannot save a session for peer name '%s': it must be a non-empty HOST:PORT without control characters",
				  peer ? peer : "");
	if (!data || !data->data || data->size == 0)
		return kc_err_set(err, KC_E_INTERNAL, "no session data to save to %s", path);

	char *text = NULL;
	size_t len = 0;
	if (format_file(peer, data, &text, &len, err) < 0)
		return -1;

	/* 0600: the file holds a session secret. */
	int rc = kc_atomic_write(path, text, len, 0600, "save the session to", err);
	wipe_free(text, len);
	return rc;
}

/* ------------------------------------------------------------------ load */

/* Reading lines out of the file's text: next_line sets *line (without the
 * "\n") and returns false when no "\n" remains, i.e. the file ends early. */
struct text {
	const char *p;
	size_t left;
};

static bool next_line(struct text *t, const char **line, size_t *len)
{
	const char *nl = memchr(t->p, '\n', t->left);
	if (!nl)
		return false;
	*line = t->p;
	*len = (size_t)(nl - t->p);
	t->left -= *len + 1;
	t->p = nl + 1;
	return true;
}

static bool starts(const char *line, size_t len, const char *key)
{
	size_t k = strlen(key);
	return len >= k && memcmp(line, key, k) == 0;
}

static int corrupt(struct kc_err *err, const char *path, const char *why)
{
	return kc_err_set(err, KC_E_CREDENTIALS, "session file %s is corrupt (%s); " AGAIN, path, why);
}

static int truncated(struct kc_err *err, const char *path, const char *why)
{
	return kc_err_set(err, KC_E_CREDENTIALS, "session file %s is truncated (%s); " AGAIN, path, why);
}

/* Read the whole file (at most KC_SESSFILE_MAX bytes) after the checks
 * that do not need its content; *buf is malloc'd, NUL-terminated. */
static int read_file(const char *path, char **buf, size_t *len, struct kc_err *err)
{
	/* O_NONBLOCK: a FIFO planted at path must not hang us in open(). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return kc_err_set(err, KC_E_CREDENTIALS,
					  "no session file %s; save one with --session-out first", path);
		return kc_err_errno(err, KC_E_CREDENTIALS, e, "cannot open session file %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return kc_err_errno(err, KC_E_CREDENTIALS, e, "cannot stat session file %s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return kc_err_set(err, KC_E_CREDENTIALS, "session file %s is not a regular file", path);
	}
	/* Checked on the open file, not the name, so a chmod race cannot
	 * slip between the check and the read. */
	if (st.st_mode & 077) {
		close(fd);
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "session file %s: permissions too open (%04o): it holds a secret; chmod 600 %s",
				  path, (unsigned)(st.st_mode & 07777), path);
	}
	if (st.st_size > KC_SESSFILE_MAX) {
		close(fd);
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "session file %s is too large (%lld bytes, at most %d): not a ktlsctl session file",
				  path, (long long)st.st_size, KC_SESSFILE_MAX);
	}

	char *b = malloc(KC_SESSFILE_MAX + 2);
	if (!b) {
		close(fd);
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	}
	size_t n = 0;
	for (;;) {
		/* one byte more than allowed, to notice a file that grew */
		ssize_t r = read(fd, b + n, KC_SESSFILE_MAX + 1 - n);
		if (r < 0) {
			int e = errno;
			if (e == EINTR)
				continue;
			close(fd);
			wipe_free(b, KC_SESSFILE_MAX + 2);
			return kc_err_errno(err, KC_E_CREDENTIALS, e, "cannot read session file %s", path);
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > KC_SESSFILE_MAX) {
			close(fd);
			wipe_free(b, KC_SESSFILE_MAX + 2);
			return kc_err_set(err, KC_E_CREDENTIALS,
					  "session file %s is too large (more than %d bytes): not a ktlsctl session file",
					  path, KC_SESSFILE_MAX);
		}
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

static bool is_b64(const char *s, size_t n)
{
	if (n == 0 || n % 4)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool pad_ok = i >= n - 2 && ch == '=' && (i == n - 1 || s[n - 1] == '=');
		if (!(('A' <= ch && ch <= 'Z') || ('a' <= ch && ch <= 'z') ||
		      ('0' <= ch && ch <= '9') || ch == '+' || ch == '/' || pad_ok))
			return false;
	}
	return true;
}

static bool is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(('0' <= s[i] && s[i] <= '9') || ('a' <= s[i] && s[i] <= 'f')))
			return false;
	return true;
}

/* Parse and check the text; on success *data is gnutls_malloc'd. */
static int parse(const char *path, const char *peer, const char *buf, size_t n,
		 gnutls_datum_t *data, time_t *saved, struct kc_err *err)
{
	struct text t = { buf, n };
	const char *line;
	size_t len;

	if (n == 0)
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "session file %s is empty, not a ktlsctl session file; " AGAIN, path);
	if (memchr(buf, '\0', n))
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "%s is not a ktlsctl session file (it is binary); " AGAIN, path);

	/* The magic line.  A prefix of it without "\n" is a truncated file. */
	size_t mlen = strlen(KC_SESSFILE_MAGIC);
	if (!next_line(&t, &line, &len)) {
		if (n <= mlen && memcmp(buf, KC_SESSFILE_MAGIC, n) == 0)
			return truncated(err, path, "it ends inside the first line");
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "%s is not a ktlsctl session file (its first line is not \"%s\"); " AGAIN,
				  path, KC_SESSFILE_MAGIC);
	}
	if (starts(line, len, "ktlsctl-session ") && !(len == mlen && !memcmp(line, KC_SESSFILE_MAGIC, mlen)))
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "session file %s has format \"%.*s\"; this ktlsctl reads \"%s\"; " AGAIN,
				  path, (int)(len > 40 ? 40 : len), line, KC_SESSFILE_MAGIC);
	if (len != mlen || memcmp(line, KC_SESSFILE_MAGIC, mlen))
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "%s is not a ktlsctl session file (its first line is not \"%s\"); " AGAIN,
				  path, KC_SESSFILE_MAGIC);

	/* The four fields, in order. */
	static const char *const keys[] = { "peer ", "saved ", "sha256 ", "data " };
	const char *val[4];
	size_t vlen[4];
	for (size_t i = 0; i < 4; i++) {
		char why[64];
		int klen = (int)strlen(keys[i]) - 1;
		if (!next_line(&t, &line, &len)) {
			if (t.left == 0)
				snprintf(why, sizeof why, "no \"%.*s\" line", klen, keys[i]);
			else
				snprintf(why, sizeof why, "it ends inside the \"%.*s\" line", klen, keys[i]);
			return truncated(err, path, why);
		}
		if (!starts(line, len, keys[i])) {
			snprintf(why, sizeof why, "line %zu is not \"%.*s ...\"", i + 2, klen, keys[i]);
			return corrupt(err, path, why);
		}
		val[i] = line + strlen(keys[i]);
		vlen[i] = len - strlen(keys[i]);
	}
	if (t.left != 0)
		return corrupt(err, path, "text after the data line");

	/* peer: the most useful complaint first, even if the rest is bad */
	if (vlen[0] == 0)
		return corrupt(err, path, "empty peer");
	if (strlen(peer) != vlen[0] || memcmp(peer, val[0], vlen[0]) != 0) {
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "session file %s was saved for %.*s, not %s; use a session file saved for %s",
				  path, (int)(vlen[0] > 300 ? 300 : vlen[0]), val[0], peer, peer);
	}

	/* saved */
	char when[32];
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (vlen[1] >= sizeof when)
		return corrupt(err, path, "bad save time");
	memcpy(when, val[1], vlen[1]);
	when[vlen[1]] = '\0';
	const char *end = strptime(when, TIME_FMT, &tm);
	if (!end || *end)
		return corrupt(err, path, "bad save time");
	time_t at = timegm(&tm);

	/* sha256 and data */
	if (!is_hex64(val[2], vlen[2]))
		return corrupt(err, path, "bad sha256 line");
	if (vlen[3] == 0)
		return truncated(err, path, "no session data");
	if (!is_b64(val[3], vlen[3]))
		return (vlen[3] % 4) ? truncated(err, path, "the data line is cut short")
				     : corrupt(err, path, "the data is not base64");

	gnutls_datum_t b64 = { (unsigned char *)val[3], (unsigned)vlen[3] };
	gnutls_datum_t out = { NULL, 0 };
	if (gnutls_base64_decode2(&b64, &out) < 0 || out.size == 0) {
		kc_sessfile_free(&out);
		return corrupt(err, path, "the data is not base64");
	}
	unsigned char digest[32];
	char hex[65];
	int ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, out.data, out.size, digest);
	if (ret < 0) {
		kc_sessfile_free(&out);
		return kc_err_set(err, KC_E_INTERNAL, "cannot hash the session data: %s",
				  gnutls_strerror(ret));
	}
	to_hex(digest, sizeof digest, hex);
	if (memcmp(hex, val[2], 64) != 0) {
		kc_sessfile_free(&out);
		return corrupt(err, path, "checksum mismatch");
	}

	*data = out;
	if (saved)
		*saved = at;
	return 0;
}

int kc_sessfile_load_full(const char *path, const char *peer,
			  gnutls_datum_t *data, time_t *saved, struct kc_err *err)
{
	data->data = NULL;
	data->size = 0;
	if (!path || !*path)
		return kc_err_set(err, KC_E_USAGE, "no session file name given");
	if (!peer)
		peer = "";

	char *buf = NULL;
	size_t n = 0;
	if (read_file(path, &buf, &n, err) < 0)
		return -1;
	int ret = parse(path, peer, buf, n, data, saved, err);
	wipe_free(buf, n);
	return ret;
}

int kc_sessfile_load(const char *path, const char *peer,
		     gnutls_datum_t *data, struct kc_err *err)
{
	return kc_sessfile_load_full(path, peer, data, NULL, err);
}
