/* core/ctl.c: the session control socket and its client (see ctl.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/ctl.h"
#include "core/diag/view_json.h"

#define PROTO_VERSION "2"
#define PROTO "KTLSCTL/" PROTO_VERSION
#define PROTO_V1 "KTLSCTL/1"   /* refused, in its own words */
#define REQUEST_MAX 256
#define CLIENTS (KC_CTL_MAX_FDS - 1)
#define CLIENT_TIMEOUT_MS 2000

struct ctl_client {
	int fd;                       /* -1: free slot */
	bool denied;                  /* another user: answer ERR, nothing else */
	unsigned long long since;     /* accept order, to evict the oldest */
	char in[REQUEST_MAX + 1];
	size_t in_len;
	char *out;                    /* response being written */
	size_t out_len, out_off;
};

struct kc_ctl_server {
	int lfd;
	unsigned long long accepted;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_client c[CLIENTS];
};

int kc_ctl_dir(char *buf, size_t len, bool create, struct kc_err *err)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	int n = rt && rt[0] == '/' ? snprintf(buf, len, "%s/ktlsctl", rt)
				   : snprintf(buf, len, "/tmp/ktlsctl-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)   /* a socket path has ~108 bytes */
		return kc_err_set(err, KC_E_IO,
				  "XDG_RUNTIME_DIR is too long for a control socket path");
	if (create && mkdir(buf, 0700) < 0 && errno != EEXIST)
		return kc_err_errno(err, KC_E_IO, errno, "cannot create %s", buf);
	if (lstat(buf, &st) < 0)
		return kc_err_errno(err, KC_E_IO, errno, "cannot use %s", buf);
	/* Someone else's directory, or one others can enter, would let them
	 * plant or reach our sockets. */
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return kc_err_set(err, KC_E_IO,
				  "refusing %s: it must be a directory of ours with mode 0700", buf);
	return 0;
}

static void client_drop(struct ctl_client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->out);
	memset(cl, 0, sizeof *cl);
	cl->fd = -1;
}

static bool pid_alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* Remove sockets whose process is gone (a crashed session). */
static void clean_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (pid > 0 && strcmp(end, ".sock") == 0 && !pid_alive((pid_t)pid))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

int kc_ctl_server_open(struct kc_ctl_server **out, struct kc_err *err)
{
	char name[32];
	snprintf(name, sizeof name, "%d.sock", (int)getpid());
	return kc_ctl_server_open_as(name, out, err);
}

int kc_ctl_server_open_as(const char *name, struct kc_ctl_server **out, struct kc_err *err)
{
	char dir[KC_CTL_DIR_MAX];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kc_ctl_server *s;

	if (kc_ctl_dir(dir, sizeof dir, true, err) < 0)
		return -1;
	clean_stale(dir);
	if (!(s = calloc(1, sizeof *s)))
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	for (int i = 0; i < CLIENTS; i++)
		s->c[i].fd = -1;
	snprintf(s->path, sizeof s->path, "%s/%s", dir, name);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->path);
	unlink(s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0177);   /* the socket file is 0600 from the start */
	int rc = s->lfd < 0 ? -1 : bind(s->lfd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(s->lfd, 4) < 0) {
		kc_err_errno(err, KC_E_IO, errno, "cannot serve the control socket %s", s->path);
		if (s->lfd >= 0)
			close(s->lfd);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void kc_ctl_server_close(struct kc_ctl_server *s)
{
	if (!s)
		return;
	for (int i = 0; i < CLIENTS; i++)
		client_drop(&s->c[i]);
	close(s->lfd);
	unlink(s->path);
	free(s);
}

void kc_ctl_server_drop(struct kc_ctl_server *s)
{
	if (!s)
		return;
	for (int i = 0; i < CLIENTS; i++)
		client_drop(&s->c[i]);
	close(s->lfd);
	free(s);
}

const char *kc_ctl_server_path(const struct kc_ctl_server *s)
{
	return s->path;
}

int kc_ctl_server_fds(struct kc_ctl_server *s, struct pollfd *fds, int max)
{
	int n = 0;
	if (max < 1)
		return 0;
	fds[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
	for (int i = 0; i < CLIENTS && n < max; i++)
		if (s->c[i].fd >= 0)
			fds[n++] = (struct pollfd){ .fd = s->c[i].fd,
						    .events = s->c[i].out ? POLLOUT : POLLIN };
	return n;
}

/* What a control socket reports on: one session, or a serving
 * process's many. */
struct target {
	struct kc_conn *conn;
	const struct kc_session_info *info;
	const struct kc_ctl_many *many;
	const struct kc_ctl_workers *workers;
};

static int exchange(const char *path, const char *request, char **answer, size_t *len);
static const char *first_line(const char *s, size_t len, char *buf, size_t size);

/* A growing response buffer, up to KC_CTL_RESPONSE_MAX. */
struct out {
	char *p;
	size_t len;
	bool overflow;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->overflow)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *p = n >= 0 && (size_t)n < KC_CTL_RESPONSE_MAX - o->len
		? realloc(o->p, o->len + (size_t)n + 1) : NULL;
	if (!p) {
		o->overflow = true;
		return;
	}
	o->p = p;
	va_start(ap, fmt);
	vsnprintf(o->p + o->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* A tree as an OK answer (one line of JSON), or rc's error as an ERR. */
static void put_view(struct out *o, struct kc_view *v, int rc, struct kc_err *err)
{
	char *json = rc == 0 ? kc_view_json(v, err) : NULL;
	if (json)
		put(o, PROTO " OK\n%s\n", json);
	else
		put(o, PROTO " ERR %s\n", err->msg);
	free(json);
	kc_view_free(v);
}

static void put_report(struct out *o, struct kc_conn *conn, const struct kc_session_info *info,
		       bool tickets)
{
	struct kc_err err = { 0 };
	struct kc_view *v = kc_view_new();
	int rc = !v ? kc_err_set(&err, KC_E_INTERNAL, "out of memory")
	       : tickets ? kc_tickets_view(v, conn, &err) : kc_session_view(v, conn, info, &err);
	put_view(o, v, rc, &err);
}

/* A serving process's STATS: its facts and every session's report. */
static void put_many(struct out *o, const struct kc_ctl_many *m)
{
	struct kc_err err = { 0 };
	struct kc_view *v = kc_view_new();
	struct kc_conn *conn;
	struct kc_session_info info;
	int rc = v ? 0 : kc_err_set(&err, KC_E_INTERNAL, "out of memory");

	kc_view_uint(v, "pid", NULL, (uint64_t)getpid());
	kc_view_string(v, "serving", NULL, "%s", m->mode);
	kc_view_uint(v, "accepted", NULL, m->accepted);
	struct kc_view *list = kc_view_array(v, "sessions", NULL);
	for (void *cur = NULL; rc == 0 && m->next(m->ctx, &cur, &conn, &info);)
		rc = kc_session_view(kc_view_object(list, NULL, NULL), conn, &info, &err);
	if (rc == 0)
		rc = kc_view_status(v, &err);
	put_view(o, v, rc, &err);
}

/* The ids a serving process runs, for its ERR messages: ", "-separated
 * (as many as fit, then "..."), "none" when there are none. */
#define IDS_MAX 256
static const char *ids(const struct kc_ctl_many *m, char buf[IDS_MAX])
{
	struct kc_conn *conn;
	struct kc_session_info info;
	size_t off = 0;
	for (void *cur = NULL; m->next(m->ctx, &cur, &conn, &info);) {
		if (off > IDS_MAX - 32) {
			off += (size_t)snprintf(buf + off, IDS_MAX - off, ", ...");
			break;
		}
		off += (size_t)snprintf(buf + off, IDS_MAX - off, "%s%lu", off ? ", " : "", info.id);
	}
	return off ? buf : "none";
}

/* The one session a request to a serving process names, or an ERR. */
static void *find(const struct kc_ctl_many *m, const struct kc_ctl_req *rq, struct kc_conn **conn,
		  struct kc_session_info *info, struct out *o)
{
	char list[IDS_MAX];
	if (!rq->id) {
		put(o, PROTO " ERR process %d serves many sessions: give --session ID (its "
		    "sessions: %s)\n", (int)getpid(), ids(m, list));
		return NULL;
	}
	for (void *cur = NULL; m->next(m->ctx, &cur, conn, info);)
		if (info->id == rq->id)
			return cur;
	put(o, PROTO " ERR process %d has no session %lu running (its sessions: %s)\n",
	    (int)getpid(), rq->id, ids(m, list));
	return NULL;
}

int kc_ctl_parse_request(const char *words, struct kc_ctl_req *rq)
{
	static const struct { const char *word; enum kc_ctl_op op; } ops[] = {
		{ "STATS", KC_CTL_STATS }, { "TICKETS", KC_CTL_TICKETS },
		{ "KEYUPDATE", KC_CTL_KEYUPDATE },
	};
	const char *p = NULL;
	memset(rq, 0, sizeof *rq);
	for (size_t i = 0; i < sizeof ops / sizeof ops[0] && !p; i++) {
		size_t n = strlen(ops[i].word);
		if (strncmp(words, ops[i].word, n) == 0 && (words[n] == '\0' || words[n] == ' ')) {
			rq->op = ops[i].op;
			p = words + n;
		}
	}
	if (!p)
		return -1;
	if (p[0] == ' ' && p[1] >= '1' && p[1] <= '9') {
		char *end;
		errno = 0;
		unsigned long id = strtoul(p + 1, &end, 10);
		if (errno || (*end != '\0' && *end != ' '))
			return -1;
		rq->id = id;
		p = end;
	}
	if (rq->op == KC_CTL_KEYUPDATE && strcmp(p, " request") == 0) {
		rq->request = true;
		p += strlen(p);
	}
	return *p ? -1 : 0;
}

/* ------------------------------------------------ a main process's workers */

static int by_id(const void *a, const void *b)
{
	const struct kc_view *x = kc_view_get(*(struct kc_view *const *)a, "session");
	const struct kc_view *y = kc_view_get(*(struct kc_view *const *)b, "session");
	uint64_t i = x ? x->num : 0, j = y ? y->num : 0;
	return i < j ? -1 : i > j;
}

/* An object's "pid", made ours: the workers' sessions are the main
 * process's to the user. */
static void own_pid(struct kc_view *obj)
{
	struct kc_view *pid = (struct kc_view *)kc_view_get(obj, "pid");
	if (pid && pid->kind == KC_VIEW_UINT)
		pid->num = (uint64_t)getpid();
}

/* A worker's OK answer as a tree; NULL and *err otherwise. */
static struct kc_view *ask(const struct kc_ctl_workers *w, size_t i, const char *words,
			   struct kc_err *err)
{
	static const char ok[] = PROTO " OK\n";
	char *buf;
	size_t len;
	struct kc_view *v = NULL;
	if (exchange(w->paths[i], words, &buf, &len) < 0) {
		kc_err_errno(err, KC_E_CONNECT, errno, "process %d: its worker %zu does not answer",
			     (int)getpid(), i + 1);
		return NULL;
	}
	if (len < sizeof ok - 1 || memcmp(buf, ok, sizeof ok - 1) != 0 ||
	    kc_view_from_json(buf + sizeof ok - 1, len - (sizeof ok - 1), &v, err) != 0) {
		char line[200];
		kc_err_set(err, KC_E_PROTOCOL, "process %d: its worker %zu answered '%s'",
			   (int)getpid(), i + 1, first_line(buf, len, line, sizeof line));
		kc_view_free(v);
		v = NULL;
	}
	free(buf);
	return v;
}

/* Every worker's STATS as one process's. */
static struct kc_view *merged_stats(const struct kc_ctl_workers *w, struct kc_err *err)
{
	struct kc_view *v = kc_view_new();
	struct kc_view **all = NULL;
	size_t n = 0;
	uint64_t accepted = 0;
	if (!v) {
		kc_err_set(err, KC_E_INTERNAL, "out of memory");
		return NULL;
	}
	kc_view_uint(v, "pid", NULL, (uint64_t)getpid());
	kc_view_string(v, "serving", NULL, "%s", w->mode);
	struct kc_view *acc = kc_view_uint(v, "accepted", NULL, 0);
	struct kc_view *list = kc_view_array(v, "sessions", NULL);
	for (size_t i = 0; i < w->n; i++) {
		struct kc_view *a = ask(w, i, "STATS", err);
		struct kc_view *ss = a ? (struct kc_view *)kc_view_get(a, "sessions") : NULL;
		const struct kc_view *wacc = a ? kc_view_get(a, "accepted") : NULL;
		if (!ss) {
			if (a)
				kc_err_set(err, KC_E_PROTOCOL, "process %d: its worker %zu answered "
					   "without sessions", (int)getpid(), i + 1);
			kc_view_free(a);
			goto fail;
		}
		accepted += wacc ? wacc->num : 0;
		for (struct kc_view *c = ss->first, *next; c; c = next) {
			next = c->next;
			struct kc_view **p = realloc(all, (n + 1) * sizeof *all);
			if (!p) {
				kc_view_free(a);
				kc_err_set(err, KC_E_INTERNAL, "out of memory");
				goto fail;
			}
			all = p;
			all[n++] = c;
			c->next = NULL;
			own_pid(c);
		}
		ss->first = ss->last = NULL;   /* they are the list's now */
		kc_view_free(a);
	}
	/* One chain in the order of the ids, moved under list. */
	if (n)
		qsort(all, n, sizeof *all, by_id);
	for (size_t i = 0; i < n; i++) {
		struct kc_view one = { .first = all[i], .last = all[i] };
		kc_view_move_children(list, &one);
	}
	free(all);
	if (acc)
		acc->num = accepted;
	if (kc_view_status(v, err) < 0) {
		kc_view_free(v);
		return NULL;
	}
	return v;
fail:
	/* the sessions taken out so far belong to no tree */
	for (size_t i = 0; i < n; i++) {
		struct kc_view *t = kc_view_new();
		struct kc_view one = { .first = all[i], .last = all[i] };
		kc_view_move_children(t, &one);
		kc_view_free(t);
	}
	free(all);
	kc_view_free(v);
	return NULL;
}

/* The session ids of a merged STATS, as ids() gives them. */
static const char *merged_ids(const struct kc_view *v, char buf[IDS_MAX])
{
	size_t off = 0;
	const struct kc_view *list = kc_view_get(v, "sessions");
	for (const struct kc_view *c = list ? list->first : NULL; c; c = c->next) {
		const struct kc_view *id = kc_view_get(c, "session");
		if (off > IDS_MAX - 32) {
			off += (size_t)snprintf(buf + off, IDS_MAX - off, ", ...");
			break;
		}
		off += (size_t)snprintf(buf + off, IDS_MAX - off, "%s%llu", off ? ", " : "",
					(unsigned long long)(id ? id->num : 0));
	}
	return off ? buf : "none";
}

static void respond_workers(struct out *o, const struct kc_ctl_workers *w,
			    const struct kc_ctl_req *rq, const char *words)
{
	struct kc_err err = { 0 };
	char list[IDS_MAX];
	if (!rq->id) {
		/* put_view frees the tree */
		struct kc_view *v = merged_stats(w, &err);
		if (!v) {
			put(o, PROTO " ERR %s\n", err.msg);
		} else if (rq->op == KC_CTL_STATS) {
			put_view(o, v, 0, &err);
		} else {
			put(o, PROTO " ERR process %d serves many sessions: give --session ID (its "
			    "sessions: %s)\n", (int)getpid(), merged_ids(v, list));
			kc_view_free(v);
		}
		return;
	}
	/* The worker that owns the id (its ids are i+1, i+1+n, ...). */
	size_t i = (rq->id - 1) % w->n;
	char *buf;
	size_t len;
	static const char ok[] = PROTO " OK\n", about[] = PROTO " ERR process ";
	if (exchange(w->paths[i], words, &buf, &len) < 0) {
		put(o, PROTO " ERR process %d: its worker %zu does not answer (%s)\n",
		    (int)getpid(), i + 1, strerror(errno));
		return;
	}
	struct kc_view *v = NULL;
	if (len >= sizeof ok - 1 && memcmp(buf, ok, sizeof ok - 1) == 0 &&
	    kc_view_from_json(buf + sizeof ok - 1, len - (sizeof ok - 1), &v, &err) == 0) {
		own_pid(v);
		put_view(o, v, kc_view_status(v, &err), &err);   /* frees it */
		v = NULL;
	} else if (len >= sizeof about - 1 && memcmp(buf, about, sizeof about - 1) == 0) {
		/* About which session: said in the main process's name, with
		 * the ids of all the workers. */
		struct kc_view *all = merged_stats(w, &err);
		put(o, PROTO " ERR process %d has no session %lu running (its sessions: %s)\n",
		    (int)getpid(), rq->id, all ? merged_ids(all, list) : "unknown");
		kc_view_free(all);
	} else {
		put(o, "%.*s", (int)len, buf);
	}
	kc_view_free(v);
	free(buf);
}

static void respond(struct ctl_client *cl, const struct target *t)
{
	struct out o = { 0 };
	struct kc_err err = { 0 };
	struct kc_ctl_req rq;
	struct kc_session_info many_info;
	const struct kc_session_info *info = t->info;
	struct kc_conn *conn = t->conn;
	void *cur = NULL;
	const char *req = cl->in;

	if (strncmp(req, PROTO_V1 " ", sizeof PROTO_V1) == 0) {
		/* In version 1's words, so that an older ktlsctl shows why. */
		put(&o, PROTO_V1 " ERR this session speaks " PROTO ": ask it with the ktlsctl "
			"that started it\n");
	} else if (strncmp(req, PROTO " ", sizeof PROTO) != 0) {
		put(&o, strncmp(req, "KTLSCTL/", 8) == 0
			 ? PROTO " ERR unsupported protocol version (this session speaks " PROTO ")\n"
			 : PROTO " ERR not a ktlsctl request\n");
	} else if (kc_ctl_parse_request(req + sizeof PROTO, &rq) < 0) {
		put(&o, PROTO " ERR unknown request (STATS [ID], TICKETS [ID], KEYUPDATE [ID] "
			"[request])\n");
	} else if (t->workers) {
		respond_workers(&o, t->workers, &rq, req + sizeof PROTO);
	} else if (!t->many && rq.id) {
		put(&o, PROTO " ERR process %d is a single session, not a serving process: give "
			"no --session\n", (int)getpid());
	} else if (t->many && rq.op == KC_CTL_STATS && !rq.id) {
		put_many(&o, t->many);
	} else if (t->many && !(cur = find(t->many, &rq, &conn, &many_info, &o))) {
		;   /* find said why */
	} else {
		if (t->many)
			info = &many_info;
		if (rq.op != KC_CTL_KEYUPDATE)
			put_report(&o, conn, info, rq.op == KC_CTL_TICKETS);
		else if (kc_conn_key_update(conn, rq.request, &err) < 0)
			put(&o, PROTO " ERR %s\n", err.msg);
		else
			put(&o, PROTO " OK\n{}\n");
		if (rq.op == KC_CTL_KEYUPDATE && t->many && t->many->kick)
			t->many->kick(t->many->ctx, cur);
	}
	if (o.overflow) {
		free(o.p);
		o.p = strdup(PROTO " ERR response too large\n");
		o.len = o.p ? strlen(o.p) : 0;
	}
	cl->out = o.p;
	cl->out_len = o.len;
	cl->out_off = 0;
}

static bool same_user(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	return cr.uid == geteuid() || cr.uid == 0;
}

static void accept_clients(struct kc_ctl_server *s)
{
	int fd;
	while ((fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		/* All slots busy: the oldest client gives way, so idle
		 * connections can never lock `ktlsctl stats` out. */
		struct ctl_client *slot = &s->c[0];
		for (int i = 0; i < CLIENTS; i++) {
			if (s->c[i].fd < 0) {
				slot = &s->c[i];
				break;
			}
			if (s->c[i].since < slot->since)
				slot = &s->c[i];
		}
		client_drop(slot);
		slot->fd = fd;
		slot->since = ++s->accepted;
		/* Judged by the kernel's credentials, not the file mode; the
		 * answer waits for the request, as any answer does. */
		slot->denied = !same_user(fd);
	}
}

static void serve_client(struct ctl_client *cl, const struct target *t)
{
	if (cl->out) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 || (cl->out_off += (size_t)n) == cl->out_len)
			client_drop(cl);
		return;
	}
	ssize_t n = recv(cl->fd, cl->in + cl->in_len, REQUEST_MAX - cl->in_len, MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		client_drop(cl);
		return;
	}
	cl->in_len += (size_t)n;
	cl->in[cl->in_len] = '\0';
	char *nl = memchr(cl->in, '\n', cl->in_len);
	if (!nl && cl->in_len < REQUEST_MAX)
		return;
	if (!nl) {
		cl->out = strdup(PROTO " ERR request too long\n");
		cl->out_len = cl->out ? strlen(cl->out) : 0;
		if (!cl->out)
			client_drop(cl);
		return;
	}
	/* The line is read as a C string below: "STATS\0junk" would pass for
	 * "STATS". */
	bool nul = memchr(cl->in, '\0', (size_t)(nl - cl->in)) != NULL;
	*nl = '\0';
	if (nl > cl->in && nl[-1] == '\r')
		nl[-1] = '\0';
	if (cl->denied) {
		cl->out = strdup(PROTO " ERR permission denied: another user's session\n");
		cl->out_len = cl->out ? strlen(cl->out) : 0;
	} else if (nul) {
		cl->out = strdup(PROTO " ERR not a ktlsctl request\n");
		cl->out_len = cl->out ? strlen(cl->out) : 0;
	} else {
		respond(cl, t);
	}
	if (!cl->out)
		client_drop(cl);
}

static void ready(struct kc_ctl_server *s, const struct target *t, const struct pollfd *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (!fds[i].revents)
			continue;
		if (fds[i].fd == s->lfd) {
			accept_clients(s);
			continue;
		}
		for (int j = 0; j < CLIENTS; j++)
			if (s->c[j].fd == fds[i].fd) {
				serve_client(&s->c[j], t);
				break;
			}
	}
}

void kc_ctl_server_ready(struct kc_ctl_server *s, struct kc_conn *conn,
			 const struct kc_session_info *info, const struct pollfd *fds, int n)
{
	ready(s, &(struct target){ .conn = conn, .info = info }, fds, n);
}

void kc_ctl_server_ready_many(struct kc_ctl_server *s, const struct kc_ctl_many *many,
			      const struct pollfd *fds, int n)
{
	ready(s, &(struct target){ .many = many }, fds, n);
}

void kc_ctl_server_ready_workers(struct kc_ctl_server *s, const struct kc_ctl_workers *w,
				 const struct pollfd *fds, int n)
{
	ready(s, &(struct target){ .workers = w }, fds, n);
}

/* ------------------------------------------------------------- client */

int kc_ctl_list(pid_t *pids, size_t max, size_t *n, struct kc_err *err)
{
	char dir[KC_CTL_DIR_MAX];
	*n = 0;
	if (kc_ctl_dir(dir, sizeof dir, false, err) < 0) {
		if (err && err->sys_errno == ENOENT)
			return 0;   /* no session ever ran: none to list */
		return -1;
	}
	clean_stale(dir);
	DIR *d = opendir(dir);
	if (!d)
		return kc_err_errno(err, KC_E_IO, errno, "cannot read %s", dir);
	struct dirent *e;
	while ((e = readdir(d)) && *n < max) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (pid > 0 && strcmp(end, ".sock") == 0)
			pids[(*n)++] = (pid_t)pid;
	}
	closedir(d);
	return 0;
}

/* One request line (words after the protocol) to the socket at path,
 * and all of its answer (up to KC_CTL_RESPONSE_MAX) in *answer (free
 * it): -1 with errno when nothing can be asked. */
static int exchange(const char *path, const char *request, char **answer, size_t *alen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = 0, cap = 16384;
	char *buf = malloc(cap);
	if (!buf)
		return -1;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		free(buf);
		errno = e;
		return -1;
	}
	struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_MS / 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	/* A signal (no SA_RESTART: the cli's SIGINT/SIGTERM, or an embedding
	 * program's) must not cut the request or the answer short: an answer
	 * cut by EINTR read as "incomplete", or none at all. */
	char line[REQUEST_MAX + 2];
	int ll = snprintf(line, sizeof line, PROTO " %s\n", request);
	size_t off = 0, want = ll < 0 ? 0 : (size_t)ll < sizeof line ? (size_t)ll : sizeof line - 1;
	while (off < want) {
		ssize_t w = send(fd, line + off, want - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	while (len < KC_CTL_RESPONSE_MAX) {
		if (len == cap) {
			char *p = realloc(buf, cap * 2);
			if (!p)
				break;   /* read as cut short */
			buf = p;
			cap *= 2;
		}
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*answer = buf;
	*alen = len;
	return 0;
}

int kc_ctl_request(pid_t pid, const char *request, struct kc_view **answer,
		   struct kc_err *err)
{
	char dir[KC_CTL_DIR_MAX], path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *buf;
	size_t len;

	*answer = NULL;
	if (kc_ctl_dir(dir, sizeof dir, false, err) < 0) {
		if (err && err->sys_errno == ENOENT)
			return kc_err_set(err, KC_E_CONNECT,
					  "no ktlsctl session with pid %d answers (no session has "
					  "run as this user)", (int)pid);
		return -1;
	}
	snprintf(path, sizeof path, "%s/%d.sock", dir, (int)pid);
	if (exchange(path, request, &buf, &len) < 0) {
		if (errno == ENOMEM)
			return kc_err_set(err, KC_E_INTERNAL, "out of memory");
		return kc_err_errno(err, KC_E_CONNECT, errno,
				    "no ktlsctl session with pid %d answers (%s)", (int)pid, path);
	}
	int rc = kc_ctl_parse_response(buf, len, pid, answer, err);
	free(buf);
	return rc;
}

/* The first line of s[0..len), up to a line end or NUL, as printable
 * ASCII in buf. */
static const char *first_line(const char *s, size_t len, char *buf, size_t size)
{
	size_t n = 0;
	while (n < len && n + 1 < size && s[n] != '\n' && s[n] != '\0') {
		buf[n] = s[n];
		n++;
	}
	buf[n] = '\0';
	kc_view_printable(buf);
	return buf;
}

int kc_ctl_parse_response(const char *answer, size_t len, pid_t pid, struct kc_view **out,
			  struct kc_err *err)
{
	static const char ok[] = PROTO " OK\n", refused[] = PROTO " ERR ";
	char line[sizeof err->msg];
	struct kc_err jerr = { 0 };

	*out = NULL;
	if (len > KC_CTL_RESPONSE_MAX)
		len = KC_CTL_RESPONSE_MAX;
	bool answered = len >= sizeof ok - 1 && memcmp(answer, ok, sizeof ok - 1) == 0;
	if (answered) {
		int rc = kc_view_from_json(answer + sizeof ok - 1, len - (sizeof ok - 1), out, &jerr);
		if (rc == 0)
			return 0;
		if (rc != KC_VIEW_JSON_TRUNCATED && jerr.status != KC_E_PROTOCOL)
			return kc_err_set(err, jerr.status, "%s", jerr.msg);
		if (rc != KC_VIEW_JSON_TRUNCATED)
			return kc_err_set(err, KC_E_PROTOCOL, "session %d sent a malformed answer: %s",
					  (int)pid, jerr.msg);
	}
	/* Cut short, even inside the OK line: the session may have ended. */
	if (answered || (len > 0 && len < sizeof ok - 1 && memcmp(answer, ok, len) == 0))
		return kc_err_set(err, KC_E_PROTOCOL, "session %d sent an incomplete answer "
				  "(it may have just ended)", (int)pid);
	first_line(answer, len, line, sizeof line);
	/* About which session: the message names the process itself. */
	char self[32];
	snprintf(self, sizeof self, "%sprocess %d ", refused, (int)pid);
	if (strncmp(line, self, strlen(self)) == 0)
		return kc_err_set(err, KC_E_CONNECT, "%s", line + sizeof refused - 1);
	if (strncmp(line, refused, sizeof refused - 1) == 0)
		return kc_err_set(err, KC_E_PROTOCOL, "session %d: %s", (int)pid,
				  line + sizeof refused - 1);
	if (strncmp(line, "KTLSCTL/", 8) == 0) {
		const char *version = line + 8;
		size_t v = strcspn(version, " ");
		if (v != strlen(PROTO_VERSION) || strncmp(version, PROTO_VERSION, v) != 0)
			/* A ktlsctl of another version started it. */
			return kc_err_set(err, KC_E_PROTOCOL, "session %d speaks control protocol "
					  "KTLSCTL/%.*s, this ktlsctl " PROTO ": ask it with the "
					  "ktlsctl that started it", (int)pid, (int)(v < 16 ? v : 16),
					  version);
		return kc_err_set(err, KC_E_PROTOCOL, "session %d sent a malformed answer: neither "
				  "OK nor ERR", (int)pid);
	}
	return kc_err_set(err, KC_E_PROTOCOL,
			  "session %d gave no answer (it may have just ended)", (int)pid);
}
