// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Each connection's output queue. A connection that cannot take what luod
 * sends is not dropped here but failed: it goes into the gc queue, and
 * client.c's clients_gc() handles what follows once the event is over.
 */
#include <sys/epoll.h>

#include "daemon.h"
#include "log.h"

/* Past this much a corked client's replies go out before the rest. */
#define CORK_MAX_BYTES (64 * 1024)

void client_fail(struct daemon *d, struct client *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	c->gone_why = why;
	c->gc_next = NULL;
	if (!d->gc_tail)
		d->gc_tail = &d->gc_head;
	*d->gc_tail = c;
	d->gc_tail = &c->gc_next;
	d->n_dead++;
}

/* A throttled client is not read, only written to. */
void client_rewatch(struct daemon *d, struct client *c, bool out)
{
	uint32_t ev = (c->throttled ? 0 : EPOLLIN | EPOLLRDHUP) |
		      (out ? EPOLLOUT : 0);

	/* Most flushes change nothing: no epoll_ctl for them. */
	if (!c->dead && ev != c->events &&
	    daemon_rewatch(d, &c->watch, ev) == 0)
		c->events = ev;
}

void client_flush(struct daemon *d, struct client *c)
{
	int r;

	if (c->dead)
		return;
	r = proto_writer_flush(&c->out, c->watch.fd);
	if (r == -EAGAIN) {
		if (c->out.queued_bytes > LUOD_MAX_QUEUED_BYTES) {
			log_warning("client %s (pid %d) does not read its socket (%zu bytes queued), so luod disconnects it",
				    client_name(c), (int)c->pid,
				    c->out.queued_bytes);
			client_fail(d, c, "output queue full");
			return;
		}
		client_rewatch(d, c, true);
	} else if (r < 0) {
		client_fail(d, c, strerror(-r));
	} else {
		client_rewatch(d, c, false);
	}
}

void client_send(struct daemon *d, struct client *c, struct json_object *msg,
		 const int *fds, size_t n_fds)
{
	int r;

	if (c->dead) {
		json_object_put(msg);
		return;
	}
	if (!msg) {
		/* A client left waiting for a reply that never comes is worse
		 * than a closed connection. */
		log_error("out of memory building a message for client %s (pid %d), so luod closes its connection for it to connect again",
			  client_name(c), (int)c->pid);
		client_fail(d, c, "out of memory");
		return;
	}
	r = proto_writer_queue(&c->out, msg, fds, n_fds);
	if (r == -EMSGSIZE) {
		/* Say so rather than leave the client waiting. */
		struct json_object *e = proto_reply_error(
			proto_get_string(msg, "reply"), msg, PROTO_E_INTERNAL,
			"the reply would be longer than %d bytes",
			PROTO_MAX_REPLY);

		r = proto_writer_queue(&c->out, e, NULL, 0);
		json_object_put(e);
	}
	json_object_put(msg);
	if (r >= 0 && c->corked && c->out.queued_bytes < CORK_MAX_BYTES)
		return; /* client_read() flushes when it is done */
	if (r < 0) {
		log_errno(r, "cannot queue a message for client %s (pid %d), so luod closes its connection for it to connect again",
			  client_name(c), (int)c->pid);
		client_fail(d, c, "message lost");
		return;
	}
	client_flush(d, c);
}
