/* core/loop.c: one epoll loop over many file descriptors (see loop.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"

#define EVENTS_PER_TURN 128

struct kc_loop {
	int epfd;
	struct kc_loop_item *timed;            /* items with a deadline */
	struct kc_loop_item *again_head, *again_tail;
	unsigned long turn;
	/* The events of the turn being dispatched, so that forgetting an
	 * item drops the ones it has not seen yet. */
	struct epoll_event ev[EVENTS_PER_TURN];
	int ev_n, ev_i;
};

long long kc_loop_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kc_loop_new(struct kc_loop **out, struct kc_err *err)
{
	struct kc_loop *l = calloc(1, sizeof *l);
	if (!l)
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = errno;
		free(l);
		return kc_err_errno(err, KC_E_INTERNAL, e, "cannot create an epoll instance");
	}
	*out = l;
	return 0;
}

void kc_loop_free(struct kc_loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l);
}

void kc_loop_item_init(struct kc_loop_item *item, int fd, kc_loop_fn fn, void *ctx)
{
	*item = (struct kc_loop_item){ .fd = fd, .fn = fn, .ctx = ctx };
}

int kc_loop_watch(struct kc_loop *l, struct kc_loop_item *item, uint32_t events)
{
	if (item->in_epoll && item->watched == events)
		return 0;
	struct epoll_event ev = { .events = events, .data.ptr = item };
	if (epoll_ctl(l->epfd, item->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, item->fd, &ev) < 0)
		return -1;
	item->in_epoll = true;
	item->watched = events;
	return 0;
}

void kc_loop_unwatch(struct kc_loop *l, struct kc_loop_item *item)
{
	if (item->in_epoll)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, item->fd, NULL);
	item->in_epoll = false;
	item->watched = 0;
	for (int i = l->ev_i; i < l->ev_n; i++)
		if (l->ev[i].data.ptr == item)
			l->ev[i].data.ptr = NULL;
}

static void untime(struct kc_loop *l, struct kc_loop_item *item)
{
	if (!item->deadline)
		return;
	if (item->t_prev)
		item->t_prev->t_next = item->t_next;
	else
		l->timed = item->t_next;
	if (item->t_next)
		item->t_next->t_prev = item->t_prev;
	item->t_prev = item->t_next = NULL;
	item->deadline = 0;
}

void kc_loop_deadline(struct kc_loop *l, struct kc_loop_item *item, long long ms)
{
	untime(l, item);
	if (ms < 0)
		return;
	item->deadline = kc_loop_now() + ms;
	if (!item->deadline)
		item->deadline = 1;
	item->t_next = l->timed;
	if (l->timed)
		l->timed->t_prev = item;
	l->timed = item;
}

void kc_loop_again(struct kc_loop *l, struct kc_loop_item *item)
{
	if (item->again)
		return;
	item->again = true;
	item->again_turn = l->turn + 1;
	item->a_next = NULL;
	item->a_prev = l->again_tail;
	if (l->again_tail)
		l->again_tail->a_next = item;
	else
		l->again_head = item;
	l->again_tail = item;
}

static void unagain(struct kc_loop *l, struct kc_loop_item *item)
{
	if (!item->again)
		return;
	if (item->a_prev)
		item->a_prev->a_next = item->a_next;
	else
		l->again_head = item->a_next;
	if (item->a_next)
		item->a_next->a_prev = item->a_prev;
	else
		l->again_tail = item->a_prev;
	item->a_prev = item->a_next = NULL;
	item->again = false;
}

void kc_loop_forget(struct kc_loop *l, struct kc_loop_item *item)
{
	kc_loop_unwatch(l, item);
	untime(l, item);
	unagain(l, item);
}

static int wait_ms(struct kc_loop *l, int max_ms)
{
	if (l->again_head)
		return 0;
	long long until = -1;
	for (struct kc_loop_item *t = l->timed; t; t = t->t_next)
		if (until < 0 || t->deadline < until)
			until = t->deadline;
	if (until < 0)
		return max_ms;
	long long left = until - kc_loop_now();
	if (left < 0)
		left = 0;
	if (max_ms >= 0 && left > max_ms)
		left = max_ms;
	return left > 1000000 ? 1000000 : (int)left;
}

int kc_loop_turn(struct kc_loop *l, int max_ms, struct kc_err *err)
{
	int n = epoll_wait(l->epfd, l->ev, EVENTS_PER_TURN, wait_ms(l, max_ms));
	if (n < 0 && errno != EINTR)
		return kc_err_errno(err, KC_E_INTERNAL, errno, "epoll_wait failed");
	l->turn++;
	l->ev_n = n < 0 ? 0 : n;
	for (l->ev_i = 0; l->ev_i < l->ev_n;) {
		struct epoll_event *e = &l->ev[l->ev_i++];
		struct kc_loop_item *item = e->data.ptr;
		if (item)
			item->fn(item, e->events);
	}
	l->ev_n = l->ev_i = 0;
	/* Deadlines: one at a time, since each call may change the list. */
	for (;;) {
		long long now = kc_loop_now();
		struct kc_loop_item *t = l->timed;
		while (t && t->deadline > now)
			t = t->t_next;
		if (!t)
			break;
		untime(l, t);
		t->fn(t, KC_LOOP_TIMER);
	}
	while (l->again_head && l->again_head->again_turn <= l->turn) {
		struct kc_loop_item *a = l->again_head;
		unagain(l, a);
		a->fn(a, KC_LOOP_AGAIN);
	}
	return 0;
}
