/* tests/fuzz/fuzz_sessfile.c: libFuzzer target for core/sessfile.c's
 * loader (read_file and parse, through kc_sessfile_load_full: the module
 * has no parse-from-buffer entry, so each input is written to a mode-0600
 * file in a private temporary directory, on /dev/shm when there is one).
 *
 * The peer asked for is fixed, PEER below, as the seed files are; the
 * checksum is SHA-256, which libFuzzer's comparison tracing lets it match.
 * Checks on success: data is non-empty and its SHA-256 is the file's
 * "sha256" line, the "peer" line is PEER; the data then survives a
 * kc_sessfile_save / kc_sessfile_load round trip unchanged.  On failure:
 * status KC_E_CREDENTIALS (KC_E_INTERNAL for out of memory) and a
 * message, *data = {NULL, 0}. */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gnutls/crypto.h>

#include "core/sessfile.h"

#define PEER "example.com:443"

static char dir[256], path[300], path2[300];

static void die(const char *what)
{
	fprintf(stderr, "fuzz_sessfile: %s\n", what);
	abort();
}

static void cleanup(void)
{
	unlink(path);
	unlink(path2);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/ktlsctl-fuzz-sessfile.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(path, sizeof path, "%s/session", dir);
	snprintf(path2, sizeof path2, "%s/roundtrip", dir);
	atexit(cleanup);
	return 0;
}

static void write_input(const uint8_t *data, size_t size)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > KC_SESSFILE_MAX + 16)
		return 0;
	write_input(data, size);

	gnutls_datum_t d = { (unsigned char *)1, 1 };
	time_t saved = 0;
	struct kc_err err = { 0 };
	int rc = kc_sessfile_load_full(path, PEER, &d, &saved, &err);
	if (rc < 0) {
		if (rc != -1 || !err.msg[0] ||
		    (err.status != KC_E_CREDENTIALS && err.status != KC_E_INTERNAL))
			die("a failure without -1, KC_E_CREDENTIALS and a message");
		if (d.data || d.size)
			die("data left set on failure");
		return 0;
	}
	if (!d.data || d.size == 0)
		die("success with no data");
	if (size > KC_SESSFILE_MAX)
		die("accepted a file over KC_SESSFILE_MAX");

	/* The file's own lines, found independently. */
	char *text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	const char *peer = strstr(text, "\npeer ");
	const char *sha = strstr(text, "\nsha256 ");
	if (!peer || strncmp(peer + 6, PEER "\n", strlen(PEER) + 1) != 0)
		die("accepted a file saved for another peer");
	unsigned char digest[32];
	char hex[65];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, d.data, d.size, digest) < 0)
		die("gnutls_hash_fast");
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	if (!sha || strncmp(sha + 8, hex, 64) != 0)
		die("accepted data whose SHA-256 is not the file's");
	free(text);

	/* Round trip. */
	if (kc_sessfile_save(path2, PEER, &d, &err) < 0)
		die(err.msg);
	struct stat st;
	if (stat(path2, &st) < 0 || (st.st_mode & 077))
		die("a saved session file others may read");
	gnutls_datum_t d2 = { NULL, 0 };
	if (kc_sessfile_load(path2, PEER, &d2, &err) < 0)
		die(err.msg);
	if (d2.size != d.size || memcmp(d2.data, d.data, d.size) != 0)
		die("session data changed in a save/load round trip");
	kc_sessfile_free(&d2);
	kc_sessfile_free(&d);
	if (d.data || d.size)
		die("kc_sessfile_free left data set");
	return 0;
}
