// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Client connections: accept, read lines, dispatch, and what follows when
 * one fails (clients_gc); output.c queues the replies. And the fair
 * share of the socket every local user may connect to (limits.h): per-uid
 * and reserved connections, idle anonymous connections, requests a second.
 */
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

/* Refusals, throttling and idle closes: one log line per burst, and one
 * summary per window while it lasts. */
#define LIMITS_LOG_WINDOW_US (10 * 1000000ULL)
/* Accepted per wakeup: a flood of connections must not starve the rest of
 * the loop; the listener stays readable for the next turn. */
#define ACCEPT_BATCH 64

#define client_of(ptr, member) \
	((struct client *)((char *)(ptr)-offsetof(struct client, member)))

static void client_io(struct daemon *d, struct watch *w, uint32_t events);
static void limits_arm(struct daemon *d);

static bool peer_is_admin(struct daemon *d, int fd, uid_t uid)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (uid == 0)
		return true;
	if (!d->cfg.have_admin_gid)
		return false;
	/* SO_PEERGROUPS gives the supplementary groups at connect time. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == d->cfg.admin_gid)
			return true;
	return false;
}

/* Best effort, before the close: the client learns why. */
__attribute__((format(printf, 2, 3))) static void refuse(int fd,
							 const char *fmt, ...)
{
	struct json_object *e;
	const char *s;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = proto_reply_error(NULL, NULL, PROTO_E_BUSY, "%s", msg);
	s = json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN);
	if (send(fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		(void)!send(fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	json_object_put(e);
}

/* The first refusal of a burst is logged in full and the rest are summed
 * up by limits_tick(): a user opening thousands of connections is a few
 * lines, not thousands. */
static void refuse_connection(struct daemon *d, int fd, enum admit a,
			      const struct ucred *cred, unsigned n_uid)
{
	const struct config *cfg = &d->cfg;
	uint64_t now = now_mono_us();

	switch (a) {
	case ADMIT_FULL:
		refuse(fd,
		       "luod serves %u connections already, its limit; retry later",
		       cfg->max_clients);
		if (burst_log_event(&d->log_full, now, LIMITS_LOG_WINDOW_US))
			log_warning(
				"refused a connection: at the limit of %u connections; raise max_clients "
				"(luod.conf or --max-clients) if this is expected",
				cfg->max_clients);
		break;
	case ADMIT_RESERVED:
		refuse(fd,
		       "luod keeps its last %u of %u connections for root and the admin group, "
		       "and the others are in use; retry later",
		       cfg->reserved_clients, cfg->max_clients);
		if (burst_log_event(&d->log_reserved, now,
				    LIMITS_LOG_WINDOW_US))
			log_warning(
				"refused a connection from uid %u: the last %u of %u connections are kept for "
				"root and the admin group (reserved_clients); raise max_clients in luod.conf "
				"if this many users need luod at once",
				(unsigned)cred->uid, cfg->reserved_clients,
				cfg->max_clients);
		break;
	case ADMIT_UID:
		refuse(fd,
		       "uid %u holds %u connections to luod, the limit for one user "
		       "(max_clients_per_uid); close some and retry",
		       (unsigned)cred->uid, n_uid);
		if (burst_log_event(&d->log_uid, now, LIMITS_LOG_WINDOW_US))
			log_warning(
				"refused a connection from uid %u (pid %d): it holds %u, the limit for one "
				"user; raise max_clients_per_uid in luod.conf if that user runs that many clients",
				(unsigned)cred->uid, (int)cred->pid, n_uid);
		break;
	case ADMIT_OK:
		break;
	}
}

void client_accept(struct daemon *d, struct watch *w, uint32_t events)
{
	const struct admit_limits lim = {
		.max_clients = d->cfg.max_clients,
		.reserved = d->cfg.reserved_clients,
		.per_uid = d->cfg.max_clients_per_uid,
	};

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct client *c;
		unsigned n_uid = 0;
		enum admit a;
		bool admin;
		int fd = accept4(w->fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_errno(-errno, "accept");
			break;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			log_errno(-errno, "SO_PEERCRED");
			close(fd);
			continue;
		}
		admin = peer_is_admin(d, fd, cred.uid);
		if (!admin)
			n_uid = uid_table_get(&d->uids, cred.uid);
		a = limits_admit(&lim, d->n_clients, n_uid, admin);
		if (a != ADMIT_OK) {
			refuse_connection(d, fd, a, &cred, n_uid);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->watch.fd = fd;
		c->watch.handler = client_io;
		/* STATUS and LIST grow with the clients and sessions. */
		c->out.max_line = PROTO_MAX_REPLY;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->pid = cred.pid;
		c->admin = admin;
		if (!admin && uid_table_add(&d->uids, cred.uid) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->counted = !admin;
		c->events = EPOLLIN | EPOLLRDHUP;
		if (daemon_watch(d, &c->watch, c->events) < 0) {
			if (c->counted)
				uid_table_del(&d->uids, c->uid);
			close(fd);
			free(c);
			continue;
		}
		if (!admin) {
			uint64_t now = now_mono_us();

			bucket_init(&c->bucket, d->cfg.request_rate, now);
			/* Until it names a client id it may be closed when
			 * idle (root and the admin group never are). */
			if (d->cfg.idle_timeout_s)
				idle_list_touch(&d->idle, &c->idle, now);
		}
		c->next = d->clients;
		d->clients = c;
		d->n_clients++;
		log_debug("connection from pid %d uid %u", (int)c->pid,
			  (unsigned)c->uid);
	}
	limits_arm(d);
}

/*
 * What follows from a connection that failed, in one place, after the
 * event in which it failed (systemd's gc queue): the update it held, its
 * subscription, its share of the socket. Freed only after the batch, in
 * clients_reap(), so no handler in the batch sees a freed client.
 */
static void client_gone(struct daemon *d, struct client *c)
{
	/* READY, then gone: what it preserved is complete, and the next
	 * update (should this one be aborted) must not wait for it. */
	if (c->ready && c->id[0])
		sessions_leave(d, c->id);
	if (c->subscribed) {
		struct client_id *ci = client_id_find(d, c->id);

		if (ci && ci->subscriber == c) {
			ci->subscriber = NULL;
			client_id_gc(d, ci);
		}
	}
	idle_list_remove(&d->idle, &c->idle);
	idle_list_remove(&d->throttled, &c->throttle);
	c->throttled = false;
	if (c->counted) {
		uid_table_del(&d->uids, c->uid);
		c->counted = false;
	}
	log_debug("dropping client %s (pid %d): %s", client_name(c),
		  (int)c->pid, c->gone_why);
	epoll_ctl(d->epoll_fd, EPOLL_CTL_DEL, c->watch.fd, NULL);
	c->watch.fd = safe_close(c->watch.fd);
	update_client_gone(d, c);
}

void clients_gc(struct daemon *d)
{
	struct client *c;

	/* What follows may fail more connections: they join the queue. */
	while ((c = d->gc_head)) {
		d->gc_head = c->gc_next;
		if (!d->gc_head)
			d->gc_tail = &d->gc_head;
		client_gone(d, c);
	}
}

void clients_reap(struct daemon *d)
{
	static size_t freed; /* since the last trim */
	struct client **pp = &d->clients;

	/* Most loop turns fail none, and walking every client on each turn
	 * showed in bench/'s profile at N = 1000. */
	clients_gc(d);
	if (!d->n_dead)
		return;
	d->n_dead = 0;
	while (*pp) {
		struct client *c = *pp;

		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		d->n_clients--;
		freed += sizeof(*c) + c->out.queued_bytes + c->in.cap;
		proto_reader_free(&c->in);
		proto_writer_free(&c->out);
		if (c->kexec_request)
			json_object_put(c->kexec_request);
		free(c);
	}
	/* A flood of connections, or a client that never read, leaves
	 * megabytes free in the heap; give them back, so luod's RSS stays
	 * its working size. */
	if (freed >= 256 * 1024) {
		malloc_trim(0);
		log_debug("%zu bytes of dropped clients freed: heap trimmed", freed);
		freed = 0;
	}
}

/*
 * Root and the admin group ask as they like. Anyone else gets request_rate
 * requests a second per connection; past that luod stops reading the
 * connection until it may ask again, so its requests wait in its socket
 * and none is refused.
 */
static bool may_ask(struct daemon *d, struct client *c, uint64_t now)
{
	if (c->admin || bucket_take(&c->bucket, d->cfg.request_rate, now))
		return true;
	c->throttled = true;
	idle_list_touch(&d->throttled, &c->throttle,
			bucket_ready_at(&c->bucket, d->cfg.request_rate, now));
	client_rewatch(d, c, !proto_writer_empty(&c->out));
	if (burst_log_event(&d->log_throttle, now, LIMITS_LOG_WINDOW_US))
		log_warning(
			"throttling client %s (pid %d uid %u): it asks more than %u requests a second; "
			"its requests wait, none is refused (request_rate in luod.conf)",
			client_name(c), (int)c->pid, (unsigned)c->uid,
			d->cfg.request_rate);
	limits_arm(d);
	return false;
}

/* Serves the complete lines buffered, as far as the client may ask. */
static void client_serve(struct daemon *d, struct client *c)
{
	while (!c->dead && !c->throttled) {
		uint64_t now = c->admin ? 0 : now_mono_us();
		struct proto_msg m;
		int r;

		if (proto_reader_has_line(&c->in) && !may_ask(d, c, now))
			return;
		r = proto_reader_next(&c->in, &m);
		if (r == 0)
			return;
		if (r == -EMSGSIZE) {
			client_send(
				d, c,
				proto_reply_error(
					NULL, NULL, PROTO_E_BAD_REQUEST,
					"line longer than %d bytes; closing the connection",
					PROTO_MAX_LINE),
				NULL, 0);
			client_flush(d, c);
			client_fail(d, c, "line too long");
			return;
		}
		if (r == -EBADMSG) {
			client_send(
				d, c,
				proto_reply_error(
					NULL, NULL, PROTO_E_BAD_REQUEST,
					"not a JSON object on one line; see docs/PROTOCOL.md"),
				NULL, 0);
		} else if (r == -EBADF) {
			client_send(
				d, c,
				proto_reply_error(
					NULL, NULL, PROTO_E_BAD_REQUEST,
					"the fds sent do not match the message's \"fds\" count; "
					"all were closed"),
				NULL, 0);
		} else {
			command_dispatch(d, c, &m);
			proto_msg_clear(&m);
		}
		/* A connection that named its client id (every subscriber
		 * has) is never closed for being idle; one that did not is,
		 * once it goes quiet. */
		if (!c->dead && idle_linked(&c->idle)) {
			if (c->id[0])
				idle_list_remove(&d->idle, &c->idle);
			else
				idle_list_touch(&d->idle, &c->idle, now);
		}
	}
}

static void client_read_lines(struct daemon *d, struct client *c)
{
	/* Lines left over from a pause for the rate limit first: no new
	 * byte may come to wake luod for them. */
	client_serve(d, c);
	/* Bounded per wakeup so one busy client cannot starve the rest. */
	for (int round = 0; round < 16 && !c->dead && !c->throttled; round++) {
		int r = proto_reader_fill(&c->in, c->watch.fd);

		if (r == -EAGAIN || r == -EINTR)
			break;
		if (r <= 0) {
			/* A peer that shut its side down still reads its
			 * replies. */
			client_flush(d, c);
			client_fail(d, c, r == 0 ? "connection closed" :
						   strerror(-r));
			return;
		}
		client_serve(d, c);
		/* Nothing more was there: epoll says when there is, which
		 * saves a read that would only say EAGAIN per request. */
		if (c->in.short_read)
			break;
	}
}

/* The replies to what one wakeup read go out together: a client that
 * sends several requests at once (libluod's luod_connect_subscribed)
 * gets them in one write, not one each. */
static void client_read(struct daemon *d, struct client *c)
{
	c->corked = true;
	client_read_lines(d, c);
	c->corked = false;
	client_flush(d, c);
}

static void client_io(struct daemon *d, struct watch *w, uint32_t events)
{
	struct client *c = (struct client *)w;

	if (c->dead)
		return;
	/* Not read while throttled, but a peer that hung up is gone. */
	if (c->throttled && (events & (EPOLLHUP | EPOLLERR))) {
		client_fail(d, c, "connection closed");
		return;
	}
	if (events & EPOLLOUT)
		client_flush(d, c);
	if (!c->dead && !c->throttled &&
	    (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
		client_read(d, c);
}

static void resume(struct daemon *d, struct client *c)
{
	idle_list_remove(&d->throttled, &c->throttle);
	c->throttled = false;
	client_rewatch(d, c, !proto_writer_empty(&c->out));
	client_read(d, c);
}

static void log_summary(struct burst_log *b, uint64_t now, const char *what)
{
	unsigned n = burst_log_flush(b, now, LIMITS_LOG_WINDOW_US);

	if (n)
		log_warning("%s %u more times in the last %llu s", what, n,
			    LIMITS_LOG_WINDOW_US / 1000000ULL);
}

void limits_tick(struct daemon *d, struct watch *w, uint32_t events)
{
	uint64_t ticks, now = now_mono_us();
	uint64_t idle_us = (uint64_t)d->cfg.idle_timeout_s * 1000000ULL;
	struct client *due = NULL;
	struct idle_link *e;

	(void)!read(w->fd, &ticks, sizeof(ticks));
	d->limits_armed_us = 0;

	/* Gathered first: serving one may drop another, which unlinks it;
	 * dropped clients are freed only after the epoll batch. */
	for (e = d->throttled.head.next; e != &d->throttled.head; e = e->next)
		if (e->since_us <= now) {
			struct client *c = client_of(e, throttle);

			c->resume_next = due;
			due = c;
		}
	while (due) {
		struct client *c = due;

		due = c->resume_next;
		if (!c->dead && c->throttled)
			resume(d, c);
	}

	while (idle_us && (e = idle_list_due(&d->idle, now, idle_us))) {
		struct client *c = client_of(e, idle);

		idle_list_remove(&d->idle, e);
		if (burst_log_event(&d->log_idle, now, LIMITS_LOG_WINDOW_US))
			log_notice(
				"closed an idle connection of pid %d uid %u: it named no client id and "
				"asked nothing for %u s (idle_timeout in luod.conf)",
				(int)c->pid, (unsigned)c->uid,
				d->cfg.idle_timeout_s);
		client_send(
			d, c,
			proto_reply_error(
				NULL, NULL, PROTO_E_BUSY,
				"closing this connection: it asked nothing for %u s and named no "
				"client id; reconnect when needed, or send HELLO with an \"id\" to stay",
				d->cfg.idle_timeout_s),
			NULL, 0);
		client_fail(d, c, "idle");
	}

	log_summary(&d->log_full, now,
		    "refused a connection at the limit of max_clients");
	log_summary(
		&d->log_reserved, now,
		"refused a connection to the share kept for root and the admin group");
	log_summary(&d->log_uid, now,
		    "refused a connection over max_clients_per_uid");
	log_summary(&d->log_throttle, now, "throttled a client");
	log_summary(&d->log_idle, now, "closed an idle connection");
	limits_arm(d);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* One timer for every limit, armed for the earliest thing due. A timer
 * that fires early finds nothing to do and is armed again. */
static void limits_arm(struct daemon *d)
{
	uint64_t t = UINT64_MAX;
	struct itimerspec its = { 0 };

	if (d->cfg.idle_timeout_s)
		t = idle_list_deadline(
			&d->idle, (uint64_t)d->cfg.idle_timeout_s * 1000000ULL);
	for (struct idle_link *e = d->throttled.head.next;
	     e != &d->throttled.head; e = e->next)
		t = min_u64(t, e->since_us);
	t = min_u64(t, burst_log_deadline(&d->log_full));
	t = min_u64(t, burst_log_deadline(&d->log_reserved));
	t = min_u64(t, burst_log_deadline(&d->log_uid));
	t = min_u64(t, burst_log_deadline(&d->log_throttle));
	t = min_u64(t, burst_log_deadline(&d->log_idle));
	if (t == UINT64_MAX || (d->limits_armed_us && d->limits_armed_us <= t))
		return;
	if (!t)
		t = 1;
	its.it_value.tv_sec = (time_t)(t / 1000000ULL);
	its.it_value.tv_nsec = (long)(t % 1000000ULL) * 1000;
	if (timerfd_settime(d->limits_timer.fd, TFD_TIMER_ABSTIME, &its, NULL) <
	    0) {
		log_errno(-errno, "timerfd_settime");
		return;
	}
	d->limits_armed_us = t;
}

int limits_init(struct daemon *d)
{
	idle_list_init(&d->idle);
	idle_list_init(&d->throttled);
	d->limits_timer.fd =
		timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->limits_timer.fd < 0)
		return log_errno(-errno, "timerfd");
	d->limits_timer.handler = limits_tick;
	if (daemon_watch(d, &d->limits_timer, EPOLLIN) < 0)
		return log_errno(-errno, "epoll_ctl");
	return 0;
}
