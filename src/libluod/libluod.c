// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libluod: a blocking client of the luod protocol (docs/PROTOCOL.md).
 *
 * Requests are answered in order, and each reply carries its request's
 * "seq": one request is in flight at a time, except in
 * luod_connect_subscribed(), which sends three before it reads a reply;
 * events that arrive before a reply are queued with their fds for
 * luod_next_event(). Because a call may read events ahead, the socket alone
 * cannot say "an event is waiting": luod_fd() is an epoll fd watching the
 * socket and an eventfd that is kept readable while the queue is not empty.
 *
 * A client is not thread-safe: use it from one thread at a time.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <time.h>

#include "config.h"
#include "luo.h"
#include "luod.h"
#include "proto.h"
#include "util.h"

struct queued_event {
	struct queued_event *next;
	struct proto_msg msg;
};

struct luod_client {
	int sock;
	int epfd; /* what luod_fd() hands out */
	int evfd; /* readable while events are queued */
	bool ev_signalled;
	int dead; /* -errno once the stream is lost */
	struct proto_reader reader;
	struct queued_event *head, *tail;
	int64_t seq;
	unsigned in_flight; /* requests sent and not answered */
	uint64_t generation;
	char *id;
	char *path;
	bool subscribed;
	/* Sessions this client got from luod and may have to hand back to a
	 * restarted luod (luod_reconnect). The fds are the caller's. */
	struct known_session {
		char name[PROTO_ID_MAX + 1];
		char kernel_name[64];
		int fd;
	} * known;
	size_t n_known;
	char error[32];
	char message[1024];
};

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static void sync_event_signal(struct luod_client *c)
{
	uint64_t v = 1;

	/* The eventfd is non-blocking; a failed write or read only costs a
	 * spurious or a missed wake-up of a poll on luod_fd(). */
	if (c->head && !c->ev_signalled)
		c->ev_signalled = write(c->evfd, &v, sizeof(v)) == sizeof(v);
	else if (!c->head && c->ev_signalled)
		c->ev_signalled = read(c->evfd, &v, sizeof(v)) != sizeof(v);
}

static int queue_event(struct luod_client *c, struct proto_msg *m)
{
	struct queued_event *q = calloc(1, sizeof(*q));

	if (!q) {
		proto_msg_clear(m);
		return -ENOMEM;
	}
	q->msg = *m;
	*m = (struct proto_msg){ 0 };
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	return 0;
}

static bool reply_is_for(struct json_object *obj, struct json_object *seq)
{
	struct json_object *got;

	if (!json_object_object_get_ex(obj, "reply", NULL) &&
	    !json_object_object_get_ex(obj, "ok", NULL))
		return false;
	/* Replies come in order: one without "seq" answers the oldest
	 * request, and only one is ever in flight. */
	if (!json_object_object_get_ex(obj, "seq", &got))
		return true;
	return json_object_equal(got, seq);
}

/*
 * Take every complete line out of the reader: events go to the queue, the
 * reply to `seq` (if any) to *reply, stale replies are dropped. *bad gets
 * the error of a line that could not be decoded.
 */
static int drain(struct luod_client *c, struct json_object *seq,
		 struct proto_msg *reply, int *bad)
{
	/* Replies to requests sent after seq stay in the reader for them. */
	while (!(reply && reply->obj && c->in_flight > 0)) {
		struct proto_msg m;
		int r = proto_reader_next(&c->reader, &m);

		if (r == 0)
			break;
		if (r == -EBADMSG || r == -EBADF) {
			*bad = r;
			continue;
		}
		if (r < 0) {
			c->dead = r;
			break;
		}
		if (json_object_object_get_ex(m.obj, "event", NULL)) {
			r = queue_event(c, &m);
			if (r < 0)
				return r;
		} else if (seq && !reply->obj && reply_is_for(m.obj, seq)) {
			*reply = m;
			c->in_flight--;
		} else {
			proto_msg_clear(&m);
		}
	}
	sync_event_signal(c);
	return c->dead;
}

static int fill(struct luod_client *c)
{
	int r = proto_reader_fill(&c->reader, c->sock);

	if (r == 0)
		c->dead = -ECONNRESET;
	else if (r < 0 && r != -EINTR && r != -EAGAIN)
		c->dead = r;
	return c->dead;
}

static int refused(struct luod_client *c, struct json_object *reply)
{
	copy_str(c->error, sizeof(c->error), proto_get_string(reply, "error"));
	copy_str(c->message, sizeof(c->message),
		 proto_get_string(reply, "message"));
	if (!c->error[0])
		copy_str(c->error, sizeof(c->error), PROTO_E_INTERNAL);
	return -EPROTO;
}

/* Send req (not consumed); *seq is its "seq", which the reply carries. */
static int send_request(struct luod_client *c, struct json_object *req,
			const int *fds, size_t n_fds, struct json_object **seq)
{
	int r;

	if (!req)
		return -ENOMEM;
	if (c->dead)
		return c->dead;
	if (!json_object_object_get_ex(req, "seq", seq)) {
		*seq = json_object_new_int64(++c->seq);
		json_object_object_add(req, "seq", *seq);
	}
	r = proto_send(c->sock, req, fds, n_fds);
	/* luod may have closed with a reason already (a connection limit):
	 * read it rather than report a broken pipe. */
	if (r == -EPIPE || r == -ECONNRESET)
		r = 0;
	if (r == 0)
		c->in_flight++;
	return r;
}

/*
 * The reply to seq: 0 with *reply filled, -EPROTO when luod refused (the
 * code and message are kept), or -errno.
 */
static int await_reply(struct luod_client *c, struct json_object *seq,
		       struct proto_msg *reply)
{
	bool ok = false;
	int bad = 0, r = 0;

	*reply = (struct proto_msg){ 0 };
	while (r == 0) {
		r = drain(c, seq, reply, &bad);
		if (r < 0 || reply->obj)
			break;
		/* A line we could not decode may have been our reply: fail
		 * rather than wait forever. A late reply is dropped by seq. */
		r = bad;
		if (r == 0)
			r = fill(c);
	}
	if (!reply->obj) {
		if (c->in_flight)
			c->in_flight--; /* a late reply is dropped by its seq */
		return r < 0 ? r : -EIO;
	}
	if (!proto_get_bool(reply->obj, "ok", &ok) || !ok) {
		r = refused(c, reply->obj);
		proto_msg_clear(reply);
		return r;
	}
	return 0;
}

/* Send req (consumed) and wait for its reply, as await_reply(). */
static int call_fds(struct luod_client *c, struct json_object *req,
		    const int *fds, size_t n_fds, struct proto_msg *reply)
{
	struct json_object *seq = NULL;
	int r = send_request(c, req, fds, n_fds, &seq);

	*reply = (struct proto_msg){ 0 };
	if (r == 0)
		r = await_reply(c, seq, reply);
	json_object_put(req);
	return r;
}

static int call(struct luod_client *c, struct json_object *req,
		struct proto_msg *reply)
{
	return call_fds(c, req, NULL, 0, reply);
}

static struct json_object *request(struct luod_client *c, const char *cmd,
				   bool with_id)
{
	struct json_object *o = proto_request(cmd);

	if (o && with_id && c->id)
		json_object_object_add(o, "id", json_object_new_string(c->id));
	return o;
}

static void add_string(struct json_object *o, const char *key, const char *v)
{
	if (o && v)
		json_object_object_add(o, key, json_object_new_string(v));
}

/* A request whose reply carries nothing the caller wants. */
static int simple_call(struct luod_client *c, struct json_object *req)
{
	struct proto_msg reply;
	int r = call(c, req, &reply);

	proto_msg_clear(&reply);
	return r;
}

static void remember(struct luod_client *c, const char *name,
		     const char *kernel_name, int fd)
{
	struct known_session *k = NULL;

	for (size_t i = 0; i < c->n_known; i++)
		if (streq(c->known[i].name, name))
			k = &c->known[i];
	if (!k) {
		struct known_session *n =
			realloc(c->known, (c->n_known + 1) * sizeof(*c->known));

		/* Without memory only the re-attach after a luod restart is
		 * lost, not the session. */
		if (!n)
			return;
		c->known = n;
		k = &c->known[c->n_known++];
	}
	copy_str(k->name, sizeof(k->name), name);
	copy_str(k->kernel_name, sizeof(k->kernel_name), kernel_name);
	k->fd = fd;
}

static void forget(struct luod_client *c, const char *name)
{
	for (size_t i = 0; i < c->n_known; i++)
		if (streq(c->known[i].name, name)) {
			c->known[i] = c->known[--c->n_known];
			return;
		}
}

static void free_client(struct luod_client *c)
{
	while (c->head) {
		struct queued_event *q = c->head;

		c->head = q->next;
		proto_msg_clear(&q->msg);
		free(q);
	}
	proto_reader_free(&c->reader);
	safe_close(c->sock);
	safe_close(c->epfd);
	safe_close(c->evfd);
	free(c->id);
	free(c->path);
	free(c->known);
	free(c);
}

void luod_disconnect(struct luod_client *c)
{
	if (c)
		free_client(c);
}

static void luod_disconnectp(struct luod_client **c)
{
	luod_disconnect(*c);
}

static int open_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return take_fd(&fd);
}

static int setup_poll_fd(struct luod_client *c)
{
	struct epoll_event ev = { .events = EPOLLIN };

	c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->evfd < 0)
		return -errno;
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0)
		return -errno;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->sock, &ev) < 0 ||
	    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &ev) < 0)
		return -errno;
	return 0;
}

static int hello(struct luod_client *c);

/* HELLO has no client to keep luod's refusal on: say it with errno. */
static int hello_errno(const struct luod_client *c)
{
	if (streq(c->error, PROTO_E_VERSION))
		return -EPROTONOSUPPORT;
	if (streq(c->error, PROTO_E_BUSY))
		return -EBUSY;
	if (streq(c->error, PROTO_E_PERMISSION))
		return -EACCES;
	if (streq(c->error, PROTO_E_BAD_REQUEST) ||
	    streq(c->error, PROTO_E_EXISTS))
		return -EINVAL;
	return -EPROTO;
}


static int hello_request(struct luod_client *c, struct json_object **req)
{
	*req = request(c, "HELLO", true);
	if (*req)
		json_object_object_add(*req, "version",
				       json_object_new_int(PROTO_VERSION));
	return *req ? 0 : -ENOMEM;
}

static int hello_reply(struct luod_client *c, int r, struct proto_msg *reply)
{
	int64_t v;

	if (r == -EPROTO)
		return hello_errno(c);
	if (r < 0)
		return r;
	if (proto_get_int64(reply->obj, "version", &v) && v != PROTO_VERSION) {
		proto_msg_clear(reply);
		return -EPROTONOSUPPORT;
	}
	if (proto_get_int64(reply->obj, "generation", &v) && v >= 0)
		c->generation = (uint64_t)v;
	proto_msg_clear(reply);
	return 0;
}

static int hello(struct luod_client *c)
{
	struct json_object *req;
	struct proto_msg reply = { 0 };
	int r = hello_request(c, &req);

	if (r == 0)
		r = call(c, req, &reply);
	return hello_reply(c, r, &reply);
}

/* A connected client that has not said HELLO yet. */
static int client_open(const char *path, const char *id,
		       struct luod_client **out)
{
	_cleanup_(luod_disconnectp) struct luod_client *c = NULL;
	int r;

	if (!out || (id && !proto_valid_name(id)))
		return -EINVAL;
	if (!path || !*path)
		path = secure_getenv("LUOD_SOCKET");
	if (!path || !*path)
		path = LUOD_SOCKET_PATH;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = c->epfd = c->evfd = -1;
	/* luod's replies may be longer than what it accepts from us. */
	c->reader.max_line = PROTO_MAX_REPLY;
	if (id) {
		c->id = strdup(id);
		if (!c->id)
			return -ENOMEM;
	}
	c->sock = open_socket(path);
	if (c->sock < 0)
		return c->sock;
	r = setup_poll_fd(c);
	if (r < 0)
		return r;
	c->path = strdup(path);
	if (!c->path)
		return -ENOMEM;
	*out = take_ptr(c);
	return 0;
}

int luod_connect(const char *path, const char *id, struct luod_client **out)
{
	_cleanup_(luod_disconnectp) struct luod_client *c = NULL;
	int r = client_open(path, id, &c);

	if (r == 0)
		r = hello(c);
	if (r < 0)
		return r;
	*out = take_ptr(c);
	return 0;
}

static int session_reply(struct luod_client *c, const char *name, int r,
			 struct proto_msg *reply, int *session_fd);

/* The client is gone with luod's message: its refusal as errno. */
static int refusal_errno(const struct luod_client *c, int r)
{
	if (r != -EPROTO)
		return r;
	if (streq(c->error, PROTO_E_EXISTS))
		return -EEXIST;
	if (streq(c->error, PROTO_E_BUSY) || streq(c->error, PROTO_E_STATE))
		return -EBUSY;
	if (streq(c->error, PROTO_E_PERMISSION))
		return -EACCES;
	if (streq(c->error, PROTO_E_KERNEL))
		return -EIO;
	return r;
}

/*
 * HELLO, CREATE_SESSION and SUBSCRIBE go out together, and the replies are
 * read after: one round trip where luod_connect(), luod_create_session()
 * and luod_subscribe() take three. luod serves a connection's requests in
 * order, so the session exists before the subscription counts.
 */
int luod_connect_subscribed(const char *path, const char *id, const char *name,
			    int *session_fd, struct luod_client **out)
{
	_cleanup_(luod_disconnectp) struct luod_client *c = NULL;
	struct json_object *req[3] = { NULL }, *seq[3] = { NULL };
	struct proto_msg reply[3] = { { 0 } };
	int r, rs[3];

	if (!id || !session_fd || !proto_valid_name(name))
		return -EINVAL;
	r = client_open(path, id, &c);
	if (r < 0)
		return r;
	r = hello_request(c, &req[0]);
	req[1] = request(c, "CREATE_SESSION", true);
	add_string(req[1], "name", name);
	req[2] = request(c, "SUBSCRIBE", true);
	for (int i = 0; i < 3 && r == 0; i++)
		r = send_request(c, req[i], NULL, 0, &seq[i]);
	for (int i = 0; i < 3; i++) {
		/* Every reply is read, so that none is left for a later call. */
		rs[i] = r < 0 ? r : await_reply(c, seq[i], &reply[i]);
		json_object_put(req[i]);
	}
	r = hello_reply(c, rs[0], &reply[0]);
	if (r == 0)
		r = refusal_errno(c, session_reply(c, name, rs[1], &reply[1],
						   session_fd));
	else
		proto_msg_clear(&reply[1]);
	if (r == 0 && rs[2] < 0) {
		close(*session_fd); /* luod holds it: CLAIM gives it back */
		*session_fd = -1;
		r = refusal_errno(c, rs[2]);
	}
	proto_msg_clear(&reply[2]);
	if (r < 0)
		return r;
	c->subscribed = true;
	*out = take_ptr(c);
	return 0;
}

int luod_reattach(struct luod_client *c, const char *name, int session_fd)
{
	struct json_object *req;
	struct proto_msg reply;
	char kernel_name[64];
	int r;

	if (!c || !proto_valid_name(name) || session_fd < 0)
		return -EINVAL;
	r = luod_session_get_name(session_fd, kernel_name);
	if (r < 0)
		return r;
	req = request(c, "REATTACH", true);
	add_string(req, "name", name);
	r = call_fds(c, req, &session_fd, 1, &reply);
	proto_msg_clear(&reply);
	if (r == 0)
		remember(c, name, kernel_name, session_fd);
	return r;
}

/* Connect, HELLO, re-attach and re-subscribe once. */
static int reconnect_once(struct luod_client *c)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int r;

	if (c->sock >= 0)
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->sock, NULL);
	c->sock = safe_close(c->sock);
	proto_reader_free(&c->reader);
	c->reader.max_line = PROTO_MAX_REPLY;
	c->dead = 0;
	c->sock = open_socket(c->path);
	if (c->sock < 0)
		return c->sock;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->sock, &ev) < 0)
		return -errno;
	r = hello(c);
	if (r < 0)
		return r;
	/* Hand back what this process still holds; luod checks each fd's
	 * kernel name against its manifest. */
	for (size_t i = 0; i < c->n_known;) {
		struct known_session k = c->known[i];
		char kn[64];

		if (luod_session_get_name(k.fd, kn) < 0 ||
		    !streq(kn, k.kernel_name)) {
			forget(c, k.name); /* the caller closed it */
			continue;
		}
		r = luod_reattach(c, k.name, k.fd);
		if (r < 0)
			return r;
		i++;
	}
	return c->subscribed ? luod_subscribe(c) : 0;
}

int luod_reconnect(struct luod_client *c, int timeout_ms)
{
	struct timespec start, now;

	if (!c)
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int r = reconnect_once(c);
		long ms;

		/* luod may still be starting (no socket yet, or a stale one)
		 * or go away again half-way: try again until the deadline.
		 * A refusal from a live luod is final. */
		if (r == 0 || (r != -ENOENT && r != -ECONNREFUSED &&
			       r != -ECONNRESET && r != -EPIPE && r != -EIO))
			return r;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (now.tv_sec - start.tv_sec) * 1000 +
		     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (timeout_ms >= 0 && ms >= timeout_ms)
			return r;
		usleep(100 * 1000);
	}
}

int luod_fd(const struct luod_client *c)
{
	return c ? c->epfd : -EINVAL;
}

uint64_t luod_generation(const struct luod_client *c)
{
	return c ? c->generation : 0;
}

const char *luod_last_error(const struct luod_client *c)
{
	return c ? c->error : "";
}

const char *luod_last_error_message(const struct luod_client *c)
{
	return c ? c->message : "";
}

int luod_subscribe(struct luod_client *c)
{
	int r;

	if (!c)
		return -EINVAL;
	r = simple_call(c, request(c, "SUBSCRIBE", true));
	if (r == 0)
		c->subscribed = true;
	return r;
}

static int session_reply(struct luod_client *c, const char *name, int r,
			 struct proto_msg *reply, int *session_fd)
{
	struct json_object *so = NULL;

	if (r < 0)
		return r;
	if (reply->n_fds != 1) {
		proto_msg_clear(reply);
		return -EBADMSG;
	}
	*session_fd = reply->fds[0];
	reply->n_fds = 0;
	json_object_object_get_ex(reply->obj, "session", &so);
	remember(c, name, proto_get_string(so, "kernel_name"), *session_fd);
	proto_msg_clear(reply);
	return 0;
}

int luod_create_session(struct luod_client *c, const char *name,
			int *session_fd)
{
	struct json_object *req;
	struct proto_msg reply = { 0 };
	int r;

	if (!c || !session_fd || !proto_valid_name(name))
		return -EINVAL;
	req = request(c, "CREATE_SESSION", true);
	add_string(req, "name", name);
	r = call(c, req, &reply);
	return session_reply(c, name, r, &reply, session_fd);
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
	int64_t v;

	return proto_get_int64(o, key, &v) && v > 0 ? (uint64_t)v : 0;
}

/* Fill ev from m; fds not handed to the caller are closed. */
static void event_from_msg(struct proto_msg *m, struct luod_event *ev)
{
	const char *name = proto_get_string(m->obj, "event");

	*ev = (struct luod_event){ .type = LUOD_EVENT_OTHER,
				   .new_session_fd = -1 };
	copy_str(ev->name, sizeof(ev->name), name);
	/* START_PRESERVATION is what a legacy client gets; treat it alike so
	 * the caller sees one kind of "preserve now". */
	if (streq(name, "PREPARE") || streq(name, "START_PRESERVATION")) {
		ev->type = LUOD_EVENT_PREPARE;
		ev->update = get_u64(m->obj, "update");
		ev->timeout_ms = get_u64(m->obj, "timeout_ms");
		copy_str(ev->new_session, sizeof(ev->new_session),
			 proto_get_string(m->obj, "new_session"));
		if (m->n_fds == 1) {
			ev->new_session_fd = m->fds[0];
			m->n_fds = 0;
		}
	} else if (streq(name, "ABORTED")) {
		ev->type = LUOD_EVENT_ABORTED;
		copy_str(ev->reason, sizeof(ev->reason),
			 proto_get_string(m->obj, "reason"));
	}
	proto_msg_clear(m);
}

static int pop_event(struct luod_client *c, struct luod_event *ev)
{
	struct queued_event *q = c->head;

	c->head = q->next;
	if (!c->head)
		c->tail = NULL;
	event_from_msg(&q->msg, ev);
	free(q);
	sync_event_signal(c);
	return 1;
}

int luod_next_event(struct luod_client *c, struct luod_event *ev,
		    int timeout_ms)
{
	uint64_t deadline = 0;

	if (!c || !ev)
		return -EINVAL;
	if (timeout_ms > 0)
		deadline = now_mono_us() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
		int bad = 0, wait = timeout_ms < 0 ? -1 : 0, r;

		/* Undecodable lines are dropped: an event luod botched must
		 * not take the caller's event loop down. */
		r = drain(c, NULL, NULL, &bad);
		if (c->head)
			return pop_event(c, ev);
		if (r < 0)
			return r;

		if (deadline) {
			uint64_t now = now_mono_us();

			wait = now >= deadline ?
				       0 :
				       (int)((deadline - now + 999) / 1000);
		}
		r = poll(&pfd, 1, wait);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0)
			return 0;
		if (r > 0) {
			r = fill(c);
			if (r < 0)
				return r;
		}
	}
}

int luod_ready(struct luod_client *c)
{
	if (!c)
		return -EINVAL;
	return simple_call(c, request(c, "READY", false));
}

int luod_leave(struct luod_client *c)
{
	int r;

	if (!c)
		return -EINVAL;
	r = simple_call(c, request(c, "LEAVE", true));
	if (r == 0)
		c->subscribed = false;
	return r;
}

int luod_not_ready(struct luod_client *c, const char *reason)
{
	struct json_object *req;

	if (!c)
		return -EINVAL;
	req = request(c, "NOT_READY", false);
	add_string(req, "reason", reason);
	return simple_call(c, req);
}

void luod_sessions_free(struct luod_session *sessions, size_t n)
{
	if (!sessions)
		return;
	for (size_t i = 0; i < n; i++)
		safe_close(sessions[i].fd);
	free(sessions);
}

static int sessions_from_reply(struct proto_msg *reply,
			       struct luod_session **sessions, size_t *n)
{
	struct json_object *arr;
	struct luod_session *s;
	size_t len;

	if (!json_object_object_get_ex(reply->obj, "sessions", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return -EBADMSG;
	len = json_object_array_length(arr);
	/* One fd per session, in array order. */
	if (len != reply->n_fds)
		return -EBADMSG;
	if (len == 0)
		return -ENOENT;
	s = calloc(len, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		copy_str(s[i].name, sizeof(s[i].name),
			 proto_get_string(e, "name"));
		copy_str(s[i].kernel_name, sizeof(s[i].kernel_name),
			 proto_get_string(e, "kernel_name"));
		s[i].generation = get_u64(e, "generation");
		s[i].claimed = streq(proto_get_string(e, "state"), "claimed");
		s[i].fd = reply->fds[i];
	}
	reply->n_fds = 0;
	*sessions = s;
	*n = len;
	return 0;
}

int luod_claim(struct luod_client *c, const char *name,
	       struct luod_session **sessions, size_t *n)
{
	struct json_object *req;
	struct proto_msg reply;
	int r;

	if (!c || !sessions || !n || (name && !proto_valid_name(name)))
		return -EINVAL;
	req = request(c, "CLAIM", true);
	add_string(req, "name", name);
	r = call(c, req, &reply);
	if (r == -EPROTO && streq(c->error, PROTO_E_NOT_FOUND))
		return -ENOENT;
	if (r < 0)
		return r;
	r = sessions_from_reply(&reply, sessions, n);
	proto_msg_clear(&reply);
	for (size_t i = 0; r == 0 && i < *n; i++)
		remember(c, (*sessions)[i].name, (*sessions)[i].kernel_name,
			 (*sessions)[i].fd);
	return r;
}

int luod_finished(struct luod_client *c, const char *name)
{
	struct json_object *req;

	if (!c || !proto_valid_name(name))
		return -EINVAL;
	req = request(c, "FINISHED", false);
	add_string(req, "name", name);
	forget(c, name);
	return simple_call(c, req);
}

int luod_release(struct luod_client *c, const char *id, const char *name)
{
	struct json_object *req;

	if (!c || !proto_valid_name(id) || !proto_valid_name(name))
		return -EINVAL;
	/* Here "id" names the session's owner, not this connection. */
	req = request(c, "RELEASE", false);
	add_string(req, "id", id);
	add_string(req, "name", name);
	if (streq(id, c->id))
		forget(c, name);
	return simple_call(c, req);
}

int luod_call_json(struct luod_client *c, const char *request_json,
		   char **reply_json)
{
	struct json_object *req;
	struct proto_msg reply;
	const char *text;
	int r;

	if (!c || !request_json || !reply_json)
		return -EINVAL;
	req = json_tokener_parse(request_json);
	if (!req || !json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return -EINVAL;
	}
	r = call(c, req, &reply);
	if (r < 0)
		return r;
	text = json_object_to_json_string_ext(
		reply.obj,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	*reply_json = text ? strdup(text) : NULL;
	proto_msg_clear(&reply);
	return *reply_json ? 0 : -ENOMEM;
}

int luod_session_preserve_fd(int session_fd, int fd, uint64_t token)
{
	return luo_preserve_fd(session_fd, fd, token);
}

int luod_session_retrieve_fd(int session_fd, uint64_t token)
{
	return luo_retrieve_fd(session_fd, token);
}

int luod_session_finish(int session_fd)
{
	return luo_finish(session_fd);
}

int luod_session_get_name(int session_fd, char name[64])
{
	return luo_get_name(session_fd, name);
}
