/* tcpcopy: plain TCP over loopback with no TLS, the copy limit of `make bench`
 * (tests/bench/README.md).
 *
 *   tcpcopy listen PORT MODE      accept one connection on 127.0.0.1:PORT
 *                                 (0: any free port; says which on stderr)
 *   tcpcopy connect PORT MODE     connect to 127.0.0.1:PORT
 *
 *   tcpcopy sink PORT discard|crc the proxy scenario's backend (tests/bench/
 *                                 proxy.py): every connection at once, one
 *                                 epoll loop, see sink() below
 *
 * MODE one-way: the connecting side sends its stdin, the listening side
 * writes what it receives to stdout.  MODE both: each side does both at
 * once.  Data moves without passing through user space where the kernel
 * allows it: sendfile from a regular file, splice from a pipe into the
 * socket, splice from the socket into a pipe.  Pipes on stdin and stdout
 * are grown to 1 MiB first (F_SETPIPE_SZ, up to /proc/sys/fs/pipe-max-size),
 * as any program may do: splice into a pipe of the default 64 KiB moves at
 * most 16 buffers per call, often small ones on loopback, which costs
 * about half again as much CPU.  Exit status 0, or 1 with a message on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* splice, accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define CHUNK (1 << 20)

static int sock = -1;
static char send_error[256];

static void die(const char *what)
{
	fprintf(stderr, "tcpcopy: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int fd_is(int fd, mode_t type)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static void grow_pipe(int fd)
{
	if (fd_is(fd, S_IFIFO))
		(void)fcntl(fd, F_SETPIPE_SZ, CHUNK);   /* best effort */
}

/* stdin to the socket, then a FIN.  Returns 0, or -1 with send_error set. */
static int send_all(void)
{
	static char buf[CHUNK];
	ssize_t n;

	if (fd_is(0, S_IFREG)) {
		while ((n = sendfile(sock, 0, NULL, CHUNK)) > 0)
			;
	} else if (fd_is(0, S_IFIFO)) {
		while ((n = splice(0, NULL, sock, NULL, CHUNK, SPLICE_F_MOVE)) > 0)
			;
	} else {
		while ((n = read(0, buf, sizeof(buf))) > 0) {
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(sock, buf + off, (size_t)(n - off));
				if (w < 0)
					goto fail;
				off += w;
			}
		}
	}
	if (n < 0)
		goto fail;
	if (shutdown(sock, SHUT_WR) < 0)
		goto fail;
	return 0;
fail:
	snprintf(send_error, sizeof(send_error), "sending: %s", strerror(errno));
	return -1;
}

static void *sender(void *arg)
{
	(void)arg;
	return send_all() < 0 ? (void *)1 : NULL;
}

/* The socket to stdout until EOF. */
static void recv_all(void)
{
	static char buf[CHUNK];
	ssize_t n;

	if (fd_is(1, S_IFIFO)) {
		while ((n = splice(sock, NULL, 1, NULL, CHUNK, SPLICE_F_MOVE)) > 0)
			;
	} else {
		while ((n = read(sock, buf, sizeof(buf))) > 0) {
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(1, buf + off, (size_t)(n - off));
				if (w < 0)
					die("writing stdout");
				off += w;
			}
		}
	}
	if (n < 0)
		die("receiving");
}

/* Wait for the peer's FIN before closing, so that nothing is reset. */
static void drain(void)
{
	static char buf[65536];
	ssize_t n;

	while ((n = read(sock, buf, sizeof(buf))) > 0)
		;
	if (n < 0)
		die("waiting for the peer to close");
}


/* ---- sink: the backend of the proxy scenario ----
 *
 * Accepts every connection on 127.0.0.1:PORT and reads each to EOF in one
 * epoll loop, writing nothing back.  discard: recv with MSG_TRUNC, which on
 * TCP drops the data in the kernel without copying it, so the backend costs
 * next to nothing; crc: reads it and keeps a CRC-32 (zlib's), for the
 * warm-up round's check.  One line per event on stdout (line buffered):
 *   open ID T
 *   end ID BYTES CRC T_LAST     (CRC "-" with discard; T_LAST 0: no data)
 * with T in seconds of CLOCK_MONOTONIC (Python's time.monotonic()), T_LAST
 * the moment the last byte was received. */

struct sconn {
	unsigned long id;
	unsigned long long bytes;
	uint32_t crc;
	double t_last;
};

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static _Noreturn void sink(int ls, int with_crc)
{
	static unsigned char buf[CHUNK];
	struct epoll_event ev = { .events = EPOLLIN }, evs[256];
	unsigned long next_id = 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		die("epoll_create1");
	crc_init();
	setvbuf(stdout, NULL, _IOLBF, 0);
	ev.data.ptr = NULL;                     /* NULL: the listening socket */
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) < 0)
		die("epoll_ctl");
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (fd < 0) {
					if (errno == EMFILE || errno == ENFILE)
						die("accept");
					continue;
				}
				c = calloc(1, sizeof(*c) + sizeof(int));
				if (!c)
					die("calloc");
				c->id = next_id++;
				*(int *)(c + 1) = fd;
				ev.data.ptr = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
					die("epoll_ctl");
				printf("open %lu %.6f\n", c->id, now());
				continue;
			}
			int fd = *(int *)(c + 1);
			for (;;) {
				if (with_crc) {
					r = recv(fd, buf, sizeof(buf), 0);
					if (r > 0)
						c->crc = crc_update(c->crc, buf, (size_t)r);
				} else {
					r = recv(fd, NULL, CHUNK, MSG_TRUNC);
				}
				if (r > 0) {
					c->bytes += (unsigned long long)r;
					c->t_last = now();
					continue;
				}
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					break;
				/* EOF, or an error (a reset): the connection ends. */
				if (with_crc)
					printf("end %lu %llu %08x %.6f%s\n", c->id, c->bytes,
					       (unsigned)c->crc, c->t_last, r < 0 ? " reset" : "");
				else
					printf("end %lu %llu - %.6f%s\n", c->id, c->bytes,
					       c->t_last, r < 0 ? " reset" : "");
				close(fd);
				free(c);
				break;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int listening, both, one = 1;

	if (argc == 4 && !strcmp(argv[1], "sink") &&
	    (!strcmp(argv[3], "discard") || !strcmp(argv[3], "crc"))) {
		int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (ls < 0)
			die("socket");
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = htons((unsigned short)atoi(argv[2]));
		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("bind");
		if (listen(ls, 4096) < 0 || getsockname(ls, (struct sockaddr *)&sa, &len) < 0)
			die("listen");
		fprintf(stderr, "tcpcopy: listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
		sink(ls, !strcmp(argv[3], "crc"));
	}
	if (argc != 4 || (strcmp(argv[1], "listen") && strcmp(argv[1], "connect")) ||
	    (strcmp(argv[3], "one-way") && strcmp(argv[3], "both"))) {
		fprintf(stderr, "usage: tcpcopy listen|connect PORT one-way|both\n"
				"       tcpcopy sink PORT discard|crc\n");
		return 2;
	}
	grow_pipe(0);
	grow_pipe(1);
	listening = !strcmp(argv[1], "listen");
	both = !strcmp(argv[3], "both");
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)atoi(argv[2]));

	if (listening) {
		int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ls < 0)
			die("socket");
		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("bind");
		if (listen(ls, 1) < 0 || getsockname(ls, (struct sockaddr *)&sa, &len) < 0)
			die("listen");
		fprintf(stderr, "tcpcopy: listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
		sock = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0)
			die("accept");
		close(ls);
	} else {
		sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (sock < 0)
			die("socket");
		if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect");
	}

	if (both) {
		pthread_t t;
		void *res;

		if (pthread_create(&t, NULL, sender, NULL) != 0) {
			fprintf(stderr, "tcpcopy: cannot start a thread\n");
			return 1;
		}
		recv_all();
		pthread_join(t, &res);
		if (res) {
			fprintf(stderr, "tcpcopy: %s\n", send_error);
			return 1;
		}
	} else if (listening) {
		recv_all();
	} else {
		if (send_all() < 0) {
			fprintf(stderr, "tcpcopy: %s\n", send_error);
			return 1;
		}
		drain();
	}
	close(sock);
	return 0;
}
