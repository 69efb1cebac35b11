/* core/err.c: formatting of struct kc_err. */
#include "config.h"

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
