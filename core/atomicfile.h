/* core/atomicfile.h: replace a file's contents all at once, so that a
 * reader (resumption, node_exporter's textfile collector) sees the old
 * file or the new one, never a part; and the plain write of a whole
 * buffer that it rests on.  Nothing here prints or exits. */
#ifndef KC_ATOMICFILE_H
#define KC_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

/* Writes text to a new file next to path (path.XXXXXX, so a collector
 * that looks for *.prom skips it) with mode set before the first byte,
 * syncs it and renames it over path.  On failure path is untouched and
 * *err says "cannot <what> PATH: ..." (KC_E_IO). */
int kc_atomic_write(const char *path, const void *text, size_t len, mode_t mode,
		    const char *what, struct kc_err *err);

/* Writes all n bytes to fd, going on after short writes and EINTR:
 * 0, or -1 with errno. */
int kc_write_all(int fd, const void *buf, size_t n);

#endif
