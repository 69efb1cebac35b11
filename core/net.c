/* core/net.c: TCP connect, listen and accept. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/net.h"

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kc_sockaddr_str(const void *sa, char desc[KC_ADDRSTR_MAX])
{
	const struct sockaddr *s = sa;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (s->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
		snprintf(desc, KC_ADDRSTR_MAX, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else if (s->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
		snprintf(desc, KC_ADDRSTR_MAX, "%s:%u", ip, ntohs(s4->sin_port));
	} else {
		snprintf(desc, KC_ADDRSTR_MAX, "(unknown address family %d)", s->sa_family);
	}
}

int kc_set_nonblocking(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int kc_tcp_resolve(const struct kc_hostport *hp, bool passive, struct addrinfo **res,
		   struct kc_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP };
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
	if (hp->host_is_ip)
		hints.ai_flags |= AI_NUMERICHOST;
	int rc = getaddrinfo(hp->host[0] ? hp->host : NULL, hp->port, &hints, res);
	if (rc == EAI_SERVICE)
		return kc_err_set(err, KC_E_USAGE, "unknown service name '%s': use a port number",
				  hp->port);
	if (rc != 0)
		return kc_err_set(err, KC_E_CONNECT, "cannot resolve '%s': %s",
				  hp->host, gai_strerror(rc));
	return 0;
}

/* Non-blocking connect bounded by deadline; returns 0 or an errno. */
static int connect_one(int fd, const struct addrinfo *ai, long long deadline)
{
	if (kc_set_nonblocking(fd, 1) < 0)
		return errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return kc_set_nonblocking(fd, 0) < 0 ? errno : 0;
	if (errno != EINPROGRESS)
		return errno;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			return EINTR;
		if (n < 0)
			return errno;
		if (n == 0)
			continue;
		int soerr = 0;
		socklen_t len = sizeof soerr;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			return errno;
		if (soerr)
			return soerr;
		return kc_set_nonblocking(fd, 0) < 0 ? errno : 0;
	}
}

int kc_tcp_connect(const struct kc_hostport *hp, unsigned timeout_ms,
		   char desc[KC_ADDRSTR_MAX], struct kc_err *err)
{
	struct addrinfo *res = NULL;
	int last = 0;
	char tried[KC_ADDRSTR_MAX] = "";

	if (kc_tcp_resolve(hp, false, &res, err) < 0)
		return -1;
	long long deadline = now_ms() + timeout_ms;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		kc_sockaddr_str(ai->ai_addr, tried);
		last = connect_one(fd, ai, deadline);
		if (last == 0) {
			snprintf(desc, KC_ADDRSTR_MAX, "%s", tried);
			freeaddrinfo(res);
			return fd;
		}
		close(fd);
		if (last == ETIMEDOUT || last == EINTR)
			break;
	}
	freeaddrinfo(res);
	if (last == ETIMEDOUT)
		return kc_err_set(err, KC_E_TIMEOUT,
				  "connecting to %s:%s timed out after %u ms: check the address "
				  "or raise --connect-timeout", hp->host, hp->port, timeout_ms);
	return kc_err_errno(err, KC_E_CONNECT, last, "cannot connect to %s:%s (%s)",
			    hp->host, hp->port, tried[0] ? tried : "no address");
}

int kc_tcp_listen(const struct kc_hostport *hp, char desc[KC_ADDRSTR_MAX],
		  struct kc_err *err)
{
	struct addrinfo *res = NULL;
	int last = 0;

	if (kc_tcp_resolve(hp, true, &res, err) < 0)
		return -1;
	/* With no host, getaddrinfo lists 0.0.0.0 before ::; prefer the IPv6
	 * wildcard, which also takes IPv4 (v6only off). */
	for (int pass = 0; pass < 2; pass++) {
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			if (!hp->host[0] && (pass == 0) != (ai->ai_family == AF_INET6))
				continue;
			if (hp->host[0] && pass == 1)
				continue;
			int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
					ai->ai_protocol);
			if (fd < 0) {
				last = errno;
				continue;
			}
			int one = 1, zero = 0;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
			if (ai->ai_family == AF_INET6 && !hp->host[0])
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 256) < 0) {
				last = errno;
				close(fd);
				if (last == EADDRINUSE)
					goto fail;
				continue;
			}
			struct sockaddr_storage ss;
			socklen_t len = sizeof ss;
			getsockname(fd, (struct sockaddr *)&ss, &len);
			kc_sockaddr_str(&ss, desc);
			freeaddrinfo(res);
			return fd;
		}
	}
fail:
	freeaddrinfo(res);
	if (last == EADDRINUSE)
		return kc_err_set(err, KC_E_CONNECT,
				  "cannot listen on %s:%s: the port is already in use; "
				  "choose another port or stop the other server",
				  hp->host[0] ? hp->host : "*", hp->port);
	return kc_err_errno(err, KC_E_CONNECT, last, "cannot listen on %s:%s",
			    hp->host[0] ? hp->host : "*", hp->port);
}

int kc_tcp_accept(int lfd, int stop_fd, char desc[KC_ADDRSTR_MAX], struct kc_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	/* Poll rather than block in accept: a stop request that lands just
	 * before the wait must still end it (the signal handler writes to
	 * stop_fd; a flag alone could be missed). */
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
	for (;;) {
		int n = poll(p, stop_fd >= 0 ? 2 : 1, -1);
		if (n < 0 && errno != EINTR)
			return kc_err_errno(err, KC_E_CONNECT, errno, "waiting for a connection failed");
		if (n > 0 && stop_fd >= 0 && p[1].revents)
			return kc_err_errno(err, KC_E_IO, EINTR, "accept failed");
		if (n > 0 && p[0].revents)
			break;
	}
	int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return kc_err_errno(err, errno == EINTR ? KC_E_IO : KC_E_CONNECT, errno,
				    "accept failed");
	kc_sockaddr_str(&ss, desc);
	return fd;
}

int kc_tcp_connect_start(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
		return fd;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

int kc_tcp_connect_result(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return errno;
	return soerr;
}
