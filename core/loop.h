/* core/loop.h: one epoll loop over many file descriptors, with a
 * deadline per item and "run me again" turns.
 *
 * An item is embedded in its owner (a listener, one side of a session)
 * and names one fd.  Its function is called with the epoll events that
 * came (level-triggered), with KC_LOOP_TIMER when its deadline passed, or
 * with KC_LOOP_AGAIN on the turn after kc_loop_again.  An item's function
 * may forget any item, its own included, and free its owner: the loop
 * never touches a forgotten item again, not even for events it already
 * collected in the same turn.  Nothing here blocks except kc_loop_turn's
 * wait, and nothing prints. */
#ifndef KC_LOOP_H
#define KC_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "core/err.h"

#define KC_LOOP_TIMER 0x00100000u
#define KC_LOOP_AGAIN 0x00200000u

struct kc_loop;
struct kc_loop_item;

typedef void (*kc_loop_fn)(struct kc_loop_item *item, uint32_t events);

struct kc_loop_item {
	int fd;                      /* -1: a timer only */
	kc_loop_fn fn;
	void *ctx;                   /* the owner, for fn */
	/* The loop's own bookkeeping. */
	uint32_t watched;            /* events registered with epoll */
	bool in_epoll;
	long long deadline;          /* ms (kc_loop_now), 0: none */
	struct kc_loop_item *t_prev, *t_next;   /* items with a deadline */
	bool again;
	unsigned long again_turn;
	struct kc_loop_item *a_prev, *a_next;   /* items to run again */
};

int kc_loop_new(struct kc_loop **out, struct kc_err *err);
void kc_loop_free(struct kc_loop *l);

/* Set up item for fd (-1: none) and fn; not yet watched. */
void kc_loop_item_init(struct kc_loop_item *item, int fd, kc_loop_fn fn, void *ctx);

/* Watch item's fd for events (EPOLLIN, EPOLLOUT; 0: for nothing, though
 * errors and hangups still come).  Cheap when nothing changes.  -1 with
 * errno when epoll refuses. */
int kc_loop_watch(struct kc_loop *l, struct kc_loop_item *item, uint32_t events);
/* Stop watching the fd at all (before closing it). */
void kc_loop_unwatch(struct kc_loop *l, struct kc_loop_item *item);
/* Call item's function with KC_LOOP_TIMER at kc_loop_now() + ms; a
 * negative ms clears the deadline. */
void kc_loop_deadline(struct kc_loop *l, struct kc_loop_item *item, long long ms);
/* Call item's function with KC_LOOP_AGAIN in the next turn. */
void kc_loop_again(struct kc_loop *l, struct kc_loop_item *item);
/* All of the above undone: the loop forgets item (before it is freed). */
void kc_loop_forget(struct kc_loop *l, struct kc_loop_item *item);

/* Wait for what comes first (an event, a deadline, max_ms when >= 0) and
 * dispatch everything that is due.  -1 with *err when epoll fails. */
int kc_loop_turn(struct kc_loop *l, int max_ms, struct kc_err *err);

/* Monotonic milliseconds. */
long long kc_loop_now(void);

#endif
