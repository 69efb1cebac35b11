/* core/buf.h: a fixed buffer of bytes queued in order, for the loops that
 * move data between two sides (core/pump.c, core/serve.c). */
#ifndef KC_BUF_H
#define KC_BUF_H

#include <stddef.h>
#include <string.h>

struct kc_buf {
	unsigned char *p;
	size_t cap;
	size_t off, len;     /* bytes p[off .. off+len) are queued */
};

/* Free bytes at the tail, moving queued bytes to the front when that is
 * the only way to make room (rare: the queue usually drains to empty). */
static inline size_t kc_buf_space(struct kc_buf *b)
{
	if (b->len == 0)
		b->off = 0;
	else if (b->off + b->len == b->cap && b->off > 0) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	return b->cap - (b->off + b->len);
}

static inline unsigned char *kc_buf_tail(struct kc_buf *b)
{
	return b->p + b->off + b->len;
}

static inline void kc_buf_consumed(struct kc_buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
}

#endif
