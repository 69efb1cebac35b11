/* core/net.h: TCP connect, listen and accept. */
#ifndef KC_NET_H
#define KC_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/addr.h"
#include "core/err.h"

#define KC_ADDRSTR_MAX 80   /* "[v6addr]:port" */

/* Resolve and connect, trying each address in turn within timeout_ms
 * overall.  Returns a blocking connected socket; *desc gets "addr:port". */
int kc_tcp_connect(const struct kc_hostport *hp, unsigned timeout_ms,
		   char desc[KC_ADDRSTR_MAX], struct kc_err *err);

struct addrinfo;

/* Resolve hp for connect (passive: for bind); freeaddrinfo(*res) after. */
int kc_tcp_resolve(const struct kc_hostport *hp, bool passive, struct addrinfo **res,
		   struct kc_err *err);

/* Start connecting a non-blocking socket to ai: the socket (connected or
 * in progress: wait for it to be writable, then kc_tcp_connect_result),
 * or -1 with errno. */
int kc_tcp_connect_start(const struct addrinfo *ai);
/* 0 when fd connected, else the errno that failed it. */
int kc_tcp_connect_result(int fd);

/* Bind and listen.  An empty host means every address (IPv6 with IPv4
 * mapped, or IPv4 only when IPv6 is unavailable).  *desc gets the bound
 * address with the actual port (useful with port 0). */
int kc_tcp_listen(const struct kc_hostport *hp, char desc[KC_ADDRSTR_MAX],
		  struct kc_err *err);

/* Accept one connection, waiting until one comes or stop_fd (-1: none)
 * becomes readable; a stop gives an error with sys_errno EINTR. */
int kc_tcp_accept(int lfd, int stop_fd, char desc[KC_ADDRSTR_MAX], struct kc_err *err);

/* "addr:port" / "[v6]:port" for a socket address. */
void kc_sockaddr_str(const void *sa, char desc[KC_ADDRSTR_MAX]);

int kc_set_nonblocking(int fd, int on);

#endif
