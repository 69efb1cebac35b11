/* tests/unit/test_sessfile.c: the --session-out / --session-in file, with
 * real files in a fresh directory per test.
 *
 * The tests run as root, so "directory not writable" cannot be simulated
 * with permissions; failures are made with a missing directory, a parent
 * that is a file, a directory at the path, and RLIMIT_FSIZE (writes fail
 * with EFBIG half way, like a full disk). */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "core/sessfile.h"

static char dir[64];

static void make_dir(void)
{
	strcpy(dir, "/tmp/kc-sessfile-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void remove_dir(void)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(sessfile, .init = make_dir, .fini = remove_dir);

static char *in_dir(const char *name)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];
	snprintf(b, 512, "%s/%s", dir, name);
	return b;
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static size_t read_whole(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, cap);
	cr_assert_geq(n, 0);
	close(fd);
	return (size_t)n;
}

/* Names in dir, so tests can see that no temporary file was left. */
static int count_entries(void)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static unsigned char blob[4000];

/* Fills the one shared buffer: a datum from an earlier call changes too. */
static gnutls_datum_t session_data(size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		blob[i] = (unsigned char)(i * 31 + seed);
	return (gnutls_datum_t){ blob, (unsigned)n };
}

static void save_ok(const char *path, const char *peer, const gnutls_datum_t *d)
{
	struct kc_err err = { 0 };
	cr_assert_eq(kc_sessfile_save(path, peer, d, &err), 0, "save: %s", err.msg);
}

static void load_is(const char *path, const char *peer, const gnutls_datum_t *want)
{
	struct kc_err err = { 0 };
	gnutls_datum_t got = { NULL, 0 };
	cr_assert_eq(kc_sessfile_load(path, peer, &got, &err), 0, "load: %s", err.msg);
	cr_assert_eq(got.size, want->size);
	cr_assert_arr_eq(got.data, want->data, want->size);
	kc_sessfile_free(&got);
	cr_assert_null(got.data);
	cr_assert_eq(got.size, 0);
}

static void load_fails(const char *path, const char *peer, const char *phrase)
{
	struct kc_err err = { 0 };
	gnutls_datum_t got = { (unsigned char *)"x", 1 };
	cr_assert_eq(kc_sessfile_load(path, peer, &got, &err), -1, "loaded, expected '%s'", phrase);
	cr_assert_eq(err.status, KC_E_CREDENTIALS, "status %d: %s", err.status, err.msg);
	cr_assert_null(got.data);
	cr_assert_eq(got.size, 0);
	cr_assert(strstr(err.msg, phrase), "message '%s' lacks '%s'", err.msg, phrase);
	cr_assert_null(strchr(err.msg, '\n'), "not one line: %s", err.msg);
}

Test(sessfile, round_trip)
{
	const char *p = in_dir("s.session");
	gnutls_datum_t d = session_data(807, 1);
	time_t t0 = time(NULL);
	save_ok(p, "example.com:443", &d);
	time_t t1 = time(NULL);
	load_is(p, "example.com:443", &d);

	struct kc_err err = { 0 };
	gnutls_datum_t got;
	time_t saved = 0;
	cr_assert_eq(kc_sessfile_load_full(p, "example.com:443", &got, &saved, &err), 0, "%s", err.msg);
	cr_assert(saved >= t0 && saved <= t1, "saved %lld", (long long)saved);
	kc_sessfile_free(&got);

	char text[8192];
	size_t n = read_whole(p, text, sizeof text - 1);
	text[n] = '\0';
	cr_assert(!strncmp(text, "ktlsctl-session 1\npeer example.com:443\nsaved 20", 46), "%s", text);
	cr_assert(strstr(text, "\nsha256 "));
	cr_assert(strstr(text, "\ndata "));
	cr_assert_eq(text[n - 1], '\n');
	cr_assert_eq(count_entries(), 1);
}

Test(sessfile, odd_sizes_and_ipv6_peer)
{
	const char *p = in_dir("s");
	for (size_t n = 1; n < 70; n++) {
		gnutls_datum_t d = session_data(n, (unsigned)n);
		save_ok(p, "[::1]:8443", &d);
		load_is(p, "[::1]:8443", &d);
	}
}

Test(sessfile, mode_0600_whatever_the_umask)
{
	const char *p = in_dir("s");
	gnutls_datum_t d = session_data(100, 2);
	umask(0);
	save_ok(p, "h:1", &d);
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);

	/* replacing a too-open file leaves a 0600 one */
	cr_assert_eq(chmod(p, 0644), 0);
	save_ok(p, "h:1", &d);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
}

Test(sessfile, replace_is_atomic_and_leaves_no_temp)
{
	const char *p = in_dir("s");
	gnutls_datum_t a = session_data(500, 3);
	save_ok(p, "h:1", &a);
	struct stat st1, st2;
	cr_assert_eq(stat(p, &st1), 0);
	static unsigned char bb[600];
	memset(bb, 0x42, sizeof bb);
	gnutls_datum_t b = { bb, sizeof bb };
	save_ok(p, "h:1", &b);
	cr_assert_eq(stat(p, &st2), 0);
	cr_assert_neq(st1.st_ino, st2.st_ino, "rewritten in place, not renamed over");
	load_is(p, "h:1", &b);
	cr_assert_eq(count_entries(), 1);
}

Test(sessfile, save_into_missing_directory)
{
	const char *p = in_dir("nope/s");
	gnutls_datum_t d = session_data(100, 4);
	struct kc_err err = { 0 };
	cr_assert_eq(kc_sessfile_save(p, "h:1", &d, &err), -1);
	cr_assert_eq(err.status, KC_E_IO);
	cr_assert_eq(err.sys_errno, ENOENT);
	cr_assert(strstr(err.msg, p), "%s", err.msg);
	cr_assert(strstr(err.msg, "No such file or directory"), "%s", err.msg);
	cr_assert_eq(count_entries(), 0);
}

Test(sessfile, save_under_a_parent_that_is_a_file)
{
	const char *f = in_dir("file");
	write_file(f, "x", 1, 0600);
	const char *p = in_dir("file/s");
	gnutls_datum_t d = session_data(100, 5);
	struct kc_err err = { 0 };
	cr_assert_eq(kc_sessfile_save(p, "h:1", &d, &err), -1);
	cr_assert_eq(err.status, KC_E_IO);
	cr_assert_eq(err.sys_errno, ENOTDIR);
	cr_assert_eq(count_entries(), 1);
}

Test(sessfile, save_over_a_directory_removes_the_temp)
{
	const char *p = in_dir("d");
	cr_assert_eq(mkdir(p, 0700), 0);
	gnutls_datum_t d = session_data(100, 6);
	struct kc_err err = { 0 };
	cr_assert_eq(kc_sessfile_save(p, "h:1", &d, &err), -1);
	cr_assert_eq(err.status, KC_E_IO);
	cr_assert(strstr(err.msg, "rename"), "%s", err.msg);
	cr_assert_eq(count_entries(), 1);   /* only the directory */
}

/* A write that fails half way (EFBIG here, ENOSPC on a full disk takes the
 * same path): the old file is intact and no temporary file remains. */
Test(sessfile, failed_write_keeps_the_old_file)
{
	const char *p = in_dir("s");
	static unsigned char old_bytes[60];
	memset(old_bytes, 0x17, sizeof old_bytes);
	gnutls_datum_t old = { old_bytes, sizeof old_bytes };
	save_ok(p, "h:1", &old);
	char before[1024];
	size_t nb = read_whole(p, before, sizeof before);

	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl = { 1024, 1024 };
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);

	gnutls_datum_t big = session_data(4000, 8);   /* ~5.4 KB of base64 */
	struct kc_err err = { 0 };
	cr_assert_eq(kc_sessfile_save(p, "h:1", &big, &err), -1);
	cr_assert_eq(err.status, KC_E_IO);
	cr_assert_eq(err.sys_errno, EFBIG, "%s", err.msg);
	cr_assert(strstr(err.msg, "cannot save the session to"), "%s", err.msg);

	char after[1024];
	size_t na = read_whole(p, after, sizeof after);
	cr_assert_eq(na, nb);
	cr_assert_arr_eq(after, before, nb);
	cr_assert_eq(count_entries(), 1);
	load_is(p, "h:1", &old);
}

Test(sessfile, save_refuses_bad_arguments)
{
	const char *p = in_dir("s");
	gnutls_datum_t d = session_data(10, 9);
	gnutls_datum_t empty = { NULL, 0 };
	struct kc_err err = { 0 };
	cr_assert_eq(kc_sessfile_save(p, "h:1\npeer evil:1", &d, &err), -1);
	cr_assert_eq(err.status, KC_E_USAGE);
	cr_assert_eq(kc_sessfile_save(p, "", &d, &err), -1);
	cr_assert_eq(err.status, KC_E_USAGE);
	cr_assert_eq(kc_sessfile_save("", "h:1", &d, &err), -1);
	cr_assert_eq(err.status, KC_E_USAGE);
	cr_assert_eq(kc_sessfile_save(p, "h:1", &empty, &err), -1);
	cr_assert_eq(count_entries(), 0);
}

Test(sessfile, missing_file)
{
	load_fails(in_dir("absent"), "h:1", "no session file");
	load_fails(in_dir("absent"), "h:1", "--session-out");
}

Test(sessfile, not_a_regular_file)
{
	const char *p = in_dir("d");
	cr_assert_eq(mkdir(p, 0700), 0);
	load_fails(p, "h:1", "not a regular file");
	const char *f = in_dir("fifo");
	cr_assert_eq(mkfifo(f, 0600), 0);
	load_fails(f, "h:1", "not a regular file");   /* and does not hang */
}

Test(sessfile, foreign_peer)
{
	const char *p = in_dir("s");
	gnutls_datum_t d = session_data(300, 10);
	save_ok(p, "a.example:443", &d);
	load_fails(p, "b.example:443", "saved for a.example:443, not b.example:443");
	load_fails(p, "a.example:4433", "saved for a.example:443, not a.example:4433");
	load_fails(p, "a.example", "saved for a.example:443, not a.example");
}

Test(sessfile, permissions_too_open)
{
	const char *p = in_dir("s");
	gnutls_datum_t d = session_data(300, 11);
	save_ok(p, "h:1", &d);
	static const mode_t open_modes[] = { 0644, 0640, 0604, 0660, 0606, 0610, 0601, 0666, 0777 };
	for (size_t i = 0; i < sizeof open_modes / sizeof open_modes[0]; i++) {
		cr_assert_eq(chmod(p, open_modes[i]), 0);
		char want[16];
		snprintf(want, sizeof want, "(%04o)", (unsigned)open_modes[i]);
		load_fails(p, "h:1", "permissions too open");
		load_fails(p, "h:1", "chmod 600");
		load_fails(p, "h:1", want);
	}
	cr_assert_eq(chmod(p, 0400), 0);   /* read-only for the owner is fine */
	load_is(p, "h:1", &d);
}

Test(sessfile, bad_magic)
{
	const char *p = in_dir("s");
	static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
	write_file(p, pem, sizeof pem - 1, 0600);
	load_fails(p, "h:1", "is not a ktlsctl session file");
	static const char nonl[] = "hello";
	write_file(p, nonl, sizeof nonl - 1, 0600);
	load_fails(p, "h:1", "is not a ktlsctl session file");
	static const char v2[] = "ktlsctl-session 2\npeer h:1\n";
	write_file(p, v2, sizeof v2 - 1, 0600);
	load_fails(p, "h:1", "has format \"ktlsctl-session 2\"");
	write_file(p, "", 0, 0600);
	load_fails(p, "h:1", "is empty");
	static const char bin[] = "ktlsctl-session 1\n\0\0\0";
	write_file(p, bin, sizeof bin - 1, 0600);
	load_fails(p, "h:1", "binary");
}

/* A valid file's text, for the corruption tests. */
static size_t valid_text(char *buf, size_t cap)
{
	const char *p = in_dir("valid");
	gnutls_datum_t d = session_data(807, 12);
	save_ok(p, "h:1", &d);
	size_t n = read_whole(p, buf, cap);
	unlink(p);
	return n;
}

Test(sessfile, every_truncation_is_refused)
{
	char text[4096];
	size_t n = valid_text(text, sizeof text);
	const char *p = in_dir("s");
	for (size_t cut = 0; cut < n; cut++) {
		write_file(p, text, cut, 0600);
		struct kc_err err = { 0 };
		gnutls_datum_t got;
		cr_assert_eq(kc_sessfile_load(p, "h:1", &got, &err), -1, "cut at %zu loaded", cut);
		cr_assert_eq(err.status, KC_E_CREDENTIALS);
		cr_assert(strstr(err.msg, "truncated") || strstr(err.msg, "empty"),
			  "cut at %zu: %s", cut, err.msg);
	}
	/* the two cuts people meet: inside the data, and the last newline */
	write_file(p, text, n - 100, 0600);
	load_fails(p, "h:1", "is truncated");
	write_file(p, text, n - 1, 0600);
	load_fails(p, "h:1", "is truncated");
	write_file(p, text, 10, 0600);
	load_fails(p, "h:1", "is truncated (it ends inside the first line)");
}

static void corrupt_with(const char *text, size_t n, size_t at, char c, const char *phrase)
{
	char copy[4096];
	memcpy(copy, text, n);
	copy[at] = c;
	const char *p = in_dir("s");
	write_file(p, copy, n, 0600);
	load_fails(p, "h:1", phrase);
}

Test(sessfile, corrupt_files)
{
	char text[4096];
	size_t n = valid_text(text, sizeof text);
	const char *data = strstr(text, "\ndata ") + 6;
	const char *sha = strstr(text, "\nsha256 ") + 8;
	const char *saved = strstr(text, "\nsaved ") + 7;
	size_t d = (size_t)(data - text), s = (size_t)(sha - text), t = (size_t)(saved - text);

	/* a flipped base64 digit decodes fine but fails the checksum */
	corrupt_with(text, n, d + 10, text[d + 10] == 'A' ? 'B' : 'A', "checksum mismatch");
	corrupt_with(text, n, d + 10, '*', "is corrupt (the data is not base64)");
	corrupt_with(text, n, s + 3, text[s + 3] == '0' ? '1' : '0', "checksum mismatch");
	corrupt_with(text, n, s + 3, 'X', "bad sha256 line");
	corrupt_with(text, n, t + 2, 'x', "bad save time");
	corrupt_with(text, n, s - 8, 'X', "line 4 is not \"sha256 ...\"");
	corrupt_with(text, n, 18, 'P', "line 2 is not \"peer ...\"");

	/* something after the data line */
	char more[4096];
	memcpy(more, text, n);
	memcpy(more + n, "extra\n", 6);
	const char *p = in_dir("s");
	write_file(p, more, n + 6, 0600);
	load_fails(p, "h:1", "text after the data line");

	/* data with its padding cut to a non-multiple of 4 but a newline kept */
	memcpy(more, text, n);
	more[n - 2] = '\n';
	write_file(p, more, n - 1, 0600);
	load_fails(p, "h:1", "session file");
}

Test(sessfile, oversized)
{
	const char *p = in_dir("s");
	static char big[KC_SESSFILE_MAX + 1];
	memset(big, 'A', sizeof big);
	memcpy(big, "ktlsctl-session 1\n", 18);
	write_file(p, big, sizeof big, 0600);
	load_fails(p, "h:1", "too large (65537 bytes, at most 65536)");

	/* and save refuses data that cannot fit rather than writing it */
	static unsigned char huge[50000];
	gnutls_datum_t d = { huge, sizeof huge };
	struct kc_err err = { 0 };
	cr_assert_eq(kc_sessfile_save(in_dir("t"), "h:1", &d, &err), -1);
	cr_assert_eq(err.status, KC_E_IO);
	cr_assert(strstr(err.msg, "too large"), "%s", err.msg);
	cr_assert_null(strchr(err.msg, '\n'));
}

Test(sessfile, garbage_does_not_crash)
{
	const char *p = in_dir("s");
	srand(5);
	static char g[9000];
	for (int round = 0; round < 300; round++) {
		size_t n = (size_t)(rand() % (int)sizeof g);
		for (size_t i = 0; i < n; i++)
			g[i] = (char)rand();
		/* half the time behind a valid first line, to reach the parser */
		if (round % 2 && n > 18)
			memcpy(g, "ktlsctl-session 1\n", 18);
		write_file(p, g, n, 0600);
		struct kc_err err = { 0 };
		gnutls_datum_t got;
		cr_assert_eq(kc_sessfile_load(p, "h:1", &got, &err), -1);
		cr_assert_eq(err.status, KC_E_CREDENTIALS);
		cr_assert_null(strchr(err.msg, '\n'));
	}
}

Test(sessfile, free_is_safe)
{
	kc_sessfile_free(NULL);
	gnutls_datum_t z = { NULL, 0 };
	kc_sessfile_free(&z);
	cr_assert_null(z.data);
}
