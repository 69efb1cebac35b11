/* tests/fuzz/fuzz_procfs.c: libFuzzer target for the /proc and
 * /lib/modules text that `ktlsctl stats` reads besides tls_stat:
 *   mode 0  /proc/self/status        kc_proc_status_capeff (core/diag/procfs.c)
 *   mode 1  tcp_available_ulp        kc_ulp_list_has (core/diag/procfs.c)
 *   mode 2  modules.builtin/.dep     kc_modules_list_has_tls (core/diag/procfs.c)
 *   mode 3  /proc/PID/fd and comm    kc_sockdiag_find_owners (core/diag/sockdiag.c)
 *
 * Input: byte 0 = mode (mod 4).  Modes 0-2: the rest is the file's text
 * (through fmemopen, or an exactly sized string for mode 1).  Mode 3: a
 * fake proc tree, built in a private directory (on /dev/shm when there is
 * one) and passed as proc_root:
 *   byte 1       sockets: count = b % 9, then one byte each, the socket's
 *                inode (0: none, 255: 4294967295, else the byte)
 *   then ops     [entry b % 12][kind][len][len bytes], kind % 4:
 *                0 fd symlink to the bytes (cut at a NUL), 1 fd symlink
 *                "socket:[I]" to socket len % count, 2 the comm file's
 *                bytes, 3 an fd that is a regular file, not a link.
 *                Entries are pids "1" "2" "10" "42" "300" "4242" "65535"
 *                "4194304" and non-pids "self" "0" "01" "1a".
 *
 * Checks, each against a reading of the rule written here: CapEff is
 * found exactly when a line (a whole line, however long) starts with
 * "CapEff:", blanks, and hex digits, and *eff is that number; the ULP list
 * has "tls" exactly when a blank-separated word is "tls"; the modules list
 * has tls exactly when a line starts with kernel/net/tls/tls.ko.  Owners:
 * a socket's owner is a pid whose fd is a link reading exactly
 * "socket:[N]" (N its inode, in decimal, and nothing else), other_owners
 * counts the other such pids, comm is the first line of that pid's comm
 * (at most 16 bytes, unprintable bytes as '?'), and a socket no pid holds
 * has none; then the "sockets" view is a valid tree (fuzz_view.h). */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/diag/sockdiag.h"
#include "core/diag/procfs.h"
#include "fuzz_view.h"

#define MAXSOCK 8
#define MAXOPS 48

static char base[256], root[300];

static void die(const char *what)
{
	fprintf(stderr, "fuzz_procfs: %s\n", what);
	abort();
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) < 0 && errno != ENOENT ? -1 : 0;
}

static void rm_tree(const char *p)
{
	if (nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		die("cannot clean the fake proc tree");
}

static void cleanup(void)
{
	rm_tree(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *b = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(base, sizeof base, "%s/ktlsctl-fuzz-procfs.XXXXXX", b ? b : "/tmp");
	if (!mkdtemp(base))
		die("mkdtemp");
	snprintf(root, sizeof root, "%s/proc", base);
	atexit(cleanup);
	return 0;
}

static FILE *mem_file(const uint8_t *p, size_t n, char **copy)
{
	/* fmemopen refuses a size of 0 on some C libraries. */
	*copy = malloc(n ? n : 1);
	if (!*copy)
		die("out of memory");
	if (n)
		memcpy(*copy, p, n);
	FILE *f = n ? fmemopen(*copy, n, "r") : fopen("/dev/null", "re");
	if (!f)
		die("fmemopen");
	return f;
}

/* Lines of [p, p + n): calls fn for each (without its '\n'). */
static bool any_line(const uint8_t *p, size_t n, bool (*fn)(const uint8_t *, size_t, void *),
		     void *ctx)
{
	while (n) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t len = nl ? (size_t)(nl - p) : n;
		if (fn(p, len, ctx))
			return true;
		p += len + (nl != NULL);
		n -= len + (nl != NULL);
	}
	return false;
}

/* ---- mode 0: CapEff ----------------------------------------------------- */

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The kernel writes "CapEff:\t%016llx".  A line read as a C string (it
 * ends at a NUL) that starts "CapEff:", then any white space, then what
 * strtoull(.., 16) takes: an optional sign, an optional 0x, hex digits
 * (saturating at 2^64 - 1), as sscanf's %llx does. */
static bool capeff_line(const uint8_t *p, size_t n, void *ctx)
{
	uint64_t *eff = ctx;
	const uint8_t *nul = memchr(p, '\0', n);
	if (nul)
		n = (size_t)(nul - p);
	if (n < 7 || memcmp(p, "CapEff:", 7) != 0)
		return false;
	size_t i = 7;
	while (i < n && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r')))
		i++;
	bool neg = false;
	if (i < n && (p[i] == '+' || p[i] == '-'))
		neg = p[i++] == '-';
	if (i + 2 < n && p[i] == '0' && (p[i + 1] | 0x20) == 'x' && hexval(p[i + 2]) >= 0)
		i += 2;
	if (i >= n || hexval(p[i]) < 0)
		return false;
	uint64_t v = 0;
	bool over = false;
	for (; i < n && hexval(p[i]) >= 0; i++) {
		if (v >> 60)
			over = true;
		v = v << 4 | (uint64_t)hexval(p[i]);
	}
	if (over)
		v = UINT64_MAX;
	else if (neg)
		v = -v;
	*eff = v;
	return true;
}

static void mode_status(const uint8_t *p, size_t n)
{
	uint64_t want = 0, got = 0x5a5a;
	bool found = any_line(p, n, capeff_line, &want);
	char *copy;
	FILE *f = mem_file(p, n, &copy);
	int rc = kc_proc_status_capeff(f, &got);
	fclose(f);
	free(copy);
	if (rc != 0 && rc != 1)
		die("kc_proc_status_capeff returned neither 0 nor 1");
	if (rc != found)
		die(found ? "a CapEff line missed" : "CapEff found where no line has one");
	if (found && got != want) {
		fprintf(stderr, "fuzz_procfs: CapEff %llx, expected %llx\n", (unsigned long long)got,
			(unsigned long long)want);
		die("CapEff value differs from the line's");
	}
}

/* ---- mode 1: tcp_available_ulp ------------------------------------------- */

static void mode_ulp(const uint8_t *p, size_t n)
{
	size_t len = strnlen((const char *)p, n);
	char *list = malloc(len + 1);
	if (!list)
		die("out of memory");
	memcpy(list, p, len);
	list[len] = '\0';
	bool want = false;
	for (size_t i = 0; i < len;) {
		while (i < len && (list[i] == ' ' || list[i] == '\t'))
			i++;
		size_t s = i;
		while (i < len && list[i] != ' ' && list[i] != '\t')
			i++;
		if (i - s == 3 && memcmp(list + s, "tls", 3) == 0)
			want = true;
	}
	if (kc_ulp_list_has(list, "tls") != want)
		die(want ? "\"tls\" in the ULP list missed" : "\"tls\" found in a ULP list without it");
	if (kc_ulp_list_has(list, "") && len > 0 && !strpbrk(list, " \t"))
		die("the empty word found in a list of one word");
	free(list);
}

/* ---- mode 2: modules.builtin / modules.dep -------------------------------- */

static bool tls_line(const uint8_t *p, size_t n, void *ctx)
{
	(void)ctx;
	return n >= 21 && memcmp(p, "kernel/net/tls/tls.ko", 21) == 0;
}

static void mode_modules(const uint8_t *p, size_t n)
{
	bool want = any_line(p, n, tls_line, NULL);
	char *copy;
	FILE *f = mem_file(p, n, &copy);
	int rc = kc_modules_list_has_tls(f);
	fclose(f);
	free(copy);
	if (rc != want)
		die(want ? "kernel/net/tls/tls.ko missed" : "tls found in a list without it");
}

/* ---- mode 3: owners -------------------------------------------------------- */

static const char *const entries[12] = {
	"1", "2", "10", "42", "300", "4242", "65535", "4194304", "self", "0", "01", "1a",
};
#define NPIDS 8   /* the first 8 entries are pids */

struct fake {
	unsigned nfd[12];
	bool made[12];
	/* per pid: the inodes its fds link to exactly, and its comm */
	bool holds[12][MAXSOCK];
	char comm[12][17];
};

static void entry_dir(struct fake *fk, unsigned e, char *path, size_t len, const char *sub)
{
	snprintf(path, len, "%s/%s", root, entries[e]);
	if (!fk->made[e]) {
		char fd[400];
		snprintf(fd, sizeof fd, "%s/fd", path);
		if (mkdir(path, 0755) < 0 || mkdir(fd, 0755) < 0)
			die("mkdir");
		fk->made[e] = true;
	}
	if (sub) {
		size_t l = strlen(path);
		snprintf(path + l, len - l, "/%s", sub);
	}
}

/* Does a link text name this inode exactly: "socket:[N]", N decimal? */
static bool names_inode(const char *t, uint32_t inode)
{
	if (strncmp(t, "socket:[", 8) != 0)
		return false;
	const char *d = t + 8;
	uint64_t v = 0;
	size_t nd = 0;
	for (; *d >= '0' && *d <= '9'; d++, nd++) {
		v = v * 10 + (uint64_t)(*d - '0');
		if (v > UINT32_MAX)
			return false;
	}
	return nd > 0 && strcmp(d, "]") == 0 && v == inode;
}

static void mode_owners(const uint8_t *p, size_t n)
{
	struct fake fk;
	struct kc_sockdiag d;
	struct kc_ktls_sock socks[MAXSOCK];
	const uint8_t *end = p + n;

	memset(&fk, 0, sizeof fk);
	memset(&d, 0, sizeof d);
	memset(socks, 0, sizeof socks);
	if (p == end)
		return;
	size_t ns = *p++ % (MAXSOCK + 1);
	for (size_t i = 0; i < ns; i++) {
		uint8_t b = p < end ? *p++ : 0;
		socks[i].inode = b == 255 ? UINT32_MAX : b;
		socks[i].family = AF_INET;
		socks[i].state_name = "ESTAB";
		snprintf(socks[i].ulp, sizeof socks[i].ulp, "tls");
	}

	if (mkdir(root, 0755) < 0)
		die("mkdir proc");
	for (unsigned ops = 0; ops < MAXOPS && end - p >= 3; ops++) {
		unsigned e = p[0] % 12, kind = p[1] % 4;
		size_t len = p[2];
		p += 3;
		if (len > (size_t)(end - p))
			len = (size_t)(end - p);
		const uint8_t *arg = p;
		p += len;
		char path[512], fdname[16], target[300];
		snprintf(fdname, sizeof fdname, "fd/%u", fk.nfd[e]);

		switch (kind) {
		case 0:   /* a link to any text */
		case 1: { /* a link to one of the sockets */
			if (kind == 0) {
				size_t t = strnlen((const char *)arg, len);
				memcpy(target, arg, t);
				target[t] = '\0';
			} else if (ns) {
				snprintf(target, sizeof target, "socket:[%u]",
					 (unsigned)socks[len % ns].inode);
			} else {
				snprintf(target, sizeof target, "socket:[1]");
			}
			if (!target[0])
				break;   /* a link cannot be empty */
			entry_dir(&fk, e, path, sizeof path, fdname);
			if (symlink(target, path) < 0)
				die("symlink");
			fk.nfd[e]++;
			for (size_t i = 0; i < ns; i++)
				if (names_inode(target, socks[i].inode))
					fk.holds[e][i] = true;
			break;
		}
		case 2: { /* comm */
			entry_dir(&fk, e, path, sizeof path, "comm");
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0 || (len && write(fd, arg, len) != (ssize_t)len))
				die("cannot write comm");
			close(fd);
			/* What a reader of 16 bytes sees: the first line, as a
			 * C string, printable. */
			size_t c = 0;
			while (c < len && c < 16 && arg[c] != '\n' && arg[c] != '\0') {
				fk.comm[e][c] = arg[c] < 0x20 || arg[c] >= 0x7f ? '?' : (char)arg[c];
				c++;
			}
			fk.comm[e][c] = '\0';
			break;
		}
		case 3: { /* an fd that is no link */
			entry_dir(&fk, e, path, sizeof path, fdname);
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0)
				die("cannot create a plain fd entry");
			close(fd);
			fk.nfd[e]++;
			break;
		}
		}
	}

	d.socks = socks;
	d.n = d.socks_cap = ns;
	kc_sockdiag_find_owners(&d, root);
	if (d.owners_denied != 0 || (geteuid() == 0 && d.owner_note[0]))
		die("owners denied in a tree that is ours");
	for (size_t i = 0; i < ns; i++) {
		const struct kc_ktls_sock *s = &socks[i];
		unsigned holders = 0;
		for (unsigned e = 0; e < NPIDS; e++)
			holders += fk.holds[e][i] && socks[i].inode;
		if (!holders) {
			if (s->pid || s->comm[0] || s->other_owners) {
				fprintf(stderr, "fuzz_procfs: socket %zu (inode %u): pid %d\n", i,
					(unsigned)s->inode, (int)s->pid);
				die("an owner found for a socket no pid holds");
			}
			continue;
		}
		unsigned e = 0;
		while (e < NPIDS && (strtol(entries[e], NULL, 10) != s->pid || !fk.holds[e][i]))
			e++;
		if (e == NPIDS) {
			fprintf(stderr, "fuzz_procfs: socket %zu (inode %u): pid %d\n", i,
				(unsigned)s->inode, (int)s->pid);
			die("the owner found does not hold the socket");
		}
		if (s->other_owners != holders - 1)
			die("other_owners is not the number of other pids holding the socket");
		if (strcmp(s->comm, fk.comm[e]) != 0) {
			fprintf(stderr, "fuzz_procfs: comm '%s', expected '%s'\n", s->comm, fk.comm[e]);
			die("comm differs from the file's first line");
		}
	}
	struct kc_view *v = kc_view_new();
	struct kc_err err = { 0 };
	if (!v || kc_sockdiag_view(&d, v, &err) < 0)
		die("kc_sockdiag_view");
	fzv_check(v);
	kc_view_free(v);
	rm_tree(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: mode_status(data + 1, size - 1); break;
	case 1: mode_ulp(data + 1, size - 1); break;
	case 2: mode_modules(data + 1, size - 1); break;
	case 3: mode_owners(data + 1, size - 1); break;
	}
	return 0;
}
