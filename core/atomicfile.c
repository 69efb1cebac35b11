/* core/atomicfile.c: write, sync, rename (see atomicfile.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomicfile.h"

int kc_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Make the rename itself durable.  Best effort: once rename() has
 * succeeded the new file is in place, and failing now would wrongly tell
 * the user it was not written. */
static void sync_dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return;
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(copy);
}

int kc_atomic_write(const char *path, const void *text, size_t len, mode_t mode,
		    const char *what, struct kc_err *err)
{
	size_t tlen = strlen(path) + sizeof ".XXXXXX";
	char *tmp = malloc(tlen);
	if (!tmp)
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	snprintf(tmp, tlen, "%s.XXXXXX", path);

	int e, fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		kc_err_errno(err, KC_E_IO, e, "cannot %s %s: cannot create a file in its directory",
			     what, path);
		free(tmp);
		return -1;
	}
	/* Before the first byte: a secret is never readable by others. */
	const char *step = "chmod";
	if (fchmod(fd, mode) < 0)
		goto fail;
	step = "writing";
	if (kc_write_all(fd, text, len) < 0)
		goto fail;
	step = "fsync";
	if (fsync(fd) < 0)
		goto fail;
	step = "closing";
	int c = close(fd);
	fd = -1;
	if (c < 0)
		goto fail;
	step = "rename from";
	if (rename(tmp, path) < 0)
		goto fail;
	sync_dir_of(path);
	free(tmp);
	return 0;

fail:
	e = errno;
	kc_err_errno(err, KC_E_IO, e, "cannot %s %s: %s %s", what, path, step, tmp);
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}
