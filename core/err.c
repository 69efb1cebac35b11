/* core/err.c: formatting of struct kc_err, and errno names. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

static void set_va(struct kc_err *e, enum kc_status status, int errnum,
		   const char *fmt, va_list ap)
{
	e->status = status;
	e->sys_errno = errnum;
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	if (errnum) {
		size_t n = strlen(e->msg);
		snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(errnum));
	}
}

int kc_err_set(struct kc_err *e, enum kc_status status, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		set_va(e, status, 0, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int kc_err_errno(struct kc_err *e, enum kc_status status, int errnum,
		 const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		set_va(e, status, errnum, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void kc_err_clear(struct kc_err *e)
{
	if (e) {
		e->status = KC_OK;
		e->sys_errno = 0;
		e->msg[0] = '\0';
	}
}

const char *kc_errno_name(int e, char *buf, size_t len)
{
	static const struct { int e; const char *name; } names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
		{ EACCES, "EACCES" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" },
		{ EINVAL, "EINVAL" }, { ENOMEM, "ENOMEM" }, { ENOPROTOOPT, "ENOPROTOOPT" },
		{ EPROTONOSUPPORT, "EPROTONOSUPPORT" }, { EOPNOTSUPP, "EOPNOTSUPP" },
		{ EAFNOSUPPORT, "EAFNOSUPPORT" }, { ENOTCONN, "ENOTCONN" },
		{ ENETUNREACH, "ENETUNREACH" }, { ECONNREFUSED, "ECONNREFUSED" },
		{ EADDRNOTAVAIL, "EADDRNOTAVAIL" }, { EMFILE, "EMFILE" }, { ENFILE, "ENFILE" },
		{ ENOBUFS, "ENOBUFS" }, { EAGAIN, "EAGAIN" }, { ENOSYS, "ENOSYS" },
		{ 524, "ENOTSUPP" },   /* kernel-internal, leaked by kernels before 5.5 */
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].e == e)
			return names[i].name;
	snprintf(buf, len, "errno %d", e);
	return buf;
}
