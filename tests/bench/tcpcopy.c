/* tcpcopy: plain TCP over loopback with no TLS, the copy limit of `make bench`
 * (tests/bench/README.md).
 *
 *   tcpcopy listen PORT MODE      accept one connection on 127.0.0.1:PORT
 *                                 (0: any free port; says which on stderr)
 *   tcpcopy connect PORT MODE     connect to 127.0.0.1:PORT
 *
 *   tcpcopy sink PORT discard|crc the proxy scenario's backend (tests/bench/
 *                                 proxy.py): every connection at once, one
 *                                 epoll loop; it can also be a source of
 *                                 data: see sink() below
 *   tcpcopy drain discard|crc     the proxy scenario's download counter:
 *                                 reads stdin to EOF, see drain() below
 *
 * MODE one-way: the connecting side sends its stdin, the listening side
 * writes what it receives to stdout.  MODE both: each side does both at
 * once.  MODE receive (connect only): the connecting side writes what it
 * receives to stdout and sends nothing, the plain TCP download client of
 * the proxy scenario.  Data moves without passing through user space where the kernel
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
 * the moment the last byte was received.
 *
 * For downloads, commands on stdin (a pipe; one line each) make it a
 * source for the connections accepted from then on:
 *   send FILE   each new connection is sent the whole of FILE (sendfile,
 *               non-blocking), then a FIN; what it sends is still read
 *               and dropped until it closes.  Its end line counts the
 *               bytes sent, T_LAST the moment the last of them was queued.
 *               Answers "mode send BYTES".
 *   recv        back to receiving only.  Answers "mode recv".
 * The answer comes once the mode has changed, so that a client started
 * after it meets the new mode. */

struct sconn {
	unsigned long id;
	int fd;
	int src;                        /* the file to send, or -1: receive only */
	off_t off, size;                /* how much of it is sent, its size */
	int got_eof;
	unsigned long long bytes;       /* received, or sent when src >= 0 */
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

static struct sconn ctl_tag;            /* epoll's mark for stdin */
static int send_src = -1;               /* the source file of "send", or -1 */
static off_t send_size;

/* One command line from stdin; returns 0 at EOF (no more commands). */
static int command(void)
{
	static char line[4096];
	static size_t have;
	ssize_t r = read(0, line + have, sizeof(line) - 1 - have);

	if (r <= 0)
		return r < 0 && errno == EINTR;
	have += (size_t)r;
	for (char *nl; (nl = memchr(line, '\n', have));) {
		size_t len = (size_t)(nl - line) + 1;
		struct stat st;

		*nl = '\0';
		if (!strncmp(line, "send ", 5)) {
			int fd = open(line + 5, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || fstat(fd, &st) < 0)
				die(line + 5);
			/* Connections still sending keep their own descriptor. */
			if (send_src >= 0)
				close(send_src);
			send_src = fd;
			send_size = st.st_size;
			printf("mode send %lld\n", (long long)send_size);
		} else if (!strcmp(line, "recv")) {
			if (send_src >= 0)
				close(send_src);
			send_src = -1;
			printf("mode recv\n");
		} else {
			fprintf(stderr, "tcpcopy: unknown command \"%s\"\n", line);
			exit(1);
		}
		memmove(line, line + len, have - len);
		have -= len;
	}
	if (have == sizeof(line) - 1) {
		fprintf(stderr, "tcpcopy: command line too long\n");
		exit(1);
	}
	return 1;
}

static void end_conn(struct sconn *c, int with_crc, int reset)
{
	if (with_crc && c->src < 0)
		printf("end %lu %llu %08x %.6f%s\n", c->id, c->bytes, (unsigned)c->crc,
		       c->t_last, reset ? " reset" : "");
	else
		printf("end %lu %llu - %.6f%s\n", c->id, c->bytes, c->t_last,
		       reset ? " reset" : "");
	close(c->fd);
	if (c->src >= 0)
		close(c->src);
	free(c);
}

/* Send what the socket takes now; 0, 1 when all is sent, -1 on an error. */
static int send_some(struct sconn *c)
{
	/* At most 4 MiB a turn, so that one connection does not starve the rest. */
	for (int turns = 0; c->off < c->size && turns < 4; turns++) {
		ssize_t w = sendfile(c->fd, c->src, &c->off, (size_t)(c->size - c->off));

		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		if (w == 0)
			return -1;      /* the file shrank */
		c->bytes += (unsigned long long)w;
		c->t_last = now();
	}
	return c->off >= c->size;
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
	/* Commands come from a pipe; /dev/null or a file (EPERM) has none. */
	ev.data.ptr = &ctl_tag;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0 && errno != EPERM)
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

			if (c == &ctl_tag) {
				if (!command())
					(void)epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
				continue;
			}
			if (!c) {
				int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (fd < 0) {
					if (errno == EMFILE || errno == ENFILE)
						die("accept");
					continue;
				}
				c = calloc(1, sizeof(*c));
				if (!c)
					die("calloc");
				c->id = next_id++;
				c->fd = fd;
				c->src = -1;
				if (send_src >= 0) {
					/* Its own descriptor: "send" or "recv" may close the shared one. */
					c->src = fcntl(send_src, F_DUPFD_CLOEXEC, 0);
					if (c->src < 0)
						die("dup");
					c->size = send_size;
				}
				ev.data.ptr = c;
				ev.events = c->src >= 0 ? EPOLLIN | EPOLLOUT : EPOLLIN;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
					die("epoll_ctl");
				ev.events = EPOLLIN;
				printf("open %lu %.6f\n", c->id, now());
				continue;
			}
			if (c->src >= 0 && c->off < c->size &&
			    (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
				int done = send_some(c);

				if (done < 0) {
					end_conn(c, with_crc, 1);
					continue;
				}
				if (done) {
					/* All sent: a FIN, then wait for the peer's. */
					struct epoll_event in = { .events = EPOLLIN, .data.ptr = c };

					if (shutdown(c->fd, SHUT_WR) < 0 ||
					    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &in) < 0) {
						end_conn(c, with_crc, 1);
						continue;
					}
					if (c->got_eof) {
						end_conn(c, with_crc, 0);
						continue;
					}
				}
			}
			if (c->got_eof)
				continue;
			if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			for (;;) {
				if (with_crc && c->src < 0) {
					r = recv(c->fd, buf, sizeof(buf), 0);
					if (r > 0)
						c->crc = crc_update(c->crc, buf, (size_t)r);
				} else {
					r = recv(c->fd, NULL, CHUNK, MSG_TRUNC);
				}
				if (r > 0) {
					if (c->src < 0) {
						c->bytes += (unsigned long long)r;
						c->t_last = now();
					}
					continue;
				}
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					break;
				/* EOF, or an error (a reset): the connection ends,
				 * unless it is still being sent data after an EOF (a
				 * half-close: the peer may still read). */
				if (r == 0 && c->src >= 0 && c->off < c->size) {
					struct epoll_event out = { .events = EPOLLOUT, .data.ptr = c };

					c->got_eof = 1;
					if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &out) < 0)
						end_conn(c, with_crc, 1);
					break;
				}
				end_conn(c, with_crc, r < 0);
				break;
			}
		}
	}
}

/* ---- drain: the proxy scenario's download counter ----
 *
 * Reads stdin (a download client's stdout) to EOF and prints one line,
 *   BYTES CRC T_LAST
 * CRC "-" with discard (splice to /dev/null from a pipe: no copy), T_LAST
 * the CLOCK_MONOTONIC moment the last byte was read (0: none). */
static int drain_stdin(int with_crc)
{
	static unsigned char buf[CHUNK];
	unsigned long long bytes = 0;
	uint32_t crc = 0;
	double t_last = 0;
	int null = -1;
	ssize_t r;

	crc_init();
	grow_pipe(0);
	if (!with_crc && fd_is(0, S_IFIFO))
		null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	for (;;) {
		if (null >= 0)
			r = splice(0, NULL, null, NULL, CHUNK, SPLICE_F_MOVE);
		else
			r = read(0, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("reading stdin");
		if (r == 0)
			break;
		if (null < 0 && with_crc)
			crc = crc_update(crc, buf, (size_t)r);
		bytes += (unsigned long long)r;
		t_last = now();
	}
	if (with_crc)
		printf("%llu %08x %.6f\n", bytes, (unsigned)crc, t_last);
	else
		printf("%llu - %.6f\n", bytes, t_last);
	return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int listening, both, receive, one = 1;

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
	if (argc == 3 && !strcmp(argv[1], "drain") &&
	    (!strcmp(argv[2], "discard") || !strcmp(argv[2], "crc")))
		return drain_stdin(!strcmp(argv[2], "crc"));
	if (argc != 4 || (strcmp(argv[1], "listen") && strcmp(argv[1], "connect")) ||
	    (strcmp(argv[3], "one-way") && strcmp(argv[3], "both") &&
	     (strcmp(argv[3], "receive") || strcmp(argv[1], "connect")))) {
		fprintf(stderr, "usage: tcpcopy listen|connect PORT one-way|both\n"
				"       tcpcopy connect PORT receive\n"
				"       tcpcopy sink PORT discard|crc\n"
				"       tcpcopy drain discard|crc\n");
		return 2;
	}
	grow_pipe(0);
	grow_pipe(1);
	listening = !strcmp(argv[1], "listen");
	both = !strcmp(argv[3], "both");
	receive = !strcmp(argv[3], "receive");
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
	} else if (listening || receive) {
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
