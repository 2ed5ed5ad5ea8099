// SPDX-License-Identifier: GPL-2.0-or-later
/* Client connections: accept, read lines, queue replies, drop. */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

static void client_io(struct daemon *d, struct watch *w, uint32_t events);

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

void client_accept(struct daemon *d, struct watch *w, uint32_t events)
{
	for (;;) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct client *c;
		int fd = accept4(w->fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_errno(-errno, "accept");
			return;
		}
		if (d->n_clients >= d->cfg.max_clients) {
			/* Best effort: the client learns why before the close. */
			struct json_object *e = proto_reply_error(
				NULL, NULL, PROTO_E_BUSY,
				"luod serves %u connections already; retry later",
				d->cfg.max_clients);
			const char *s = json_object_to_json_string_ext(
				e, JSON_C_TO_STRING_PLAIN);

			if (send(fd, s, strlen(s),
				 MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
				(void)!send(fd, "\n", 1,
					    MSG_DONTWAIT | MSG_NOSIGNAL);
			json_object_put(e);
			close(fd);
			log_warning(
				"refused a connection: at the limit of %u; raise --max-clients if this is expected",
				d->cfg.max_clients);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			log_errno(-errno, "SO_PEERCRED");
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
		c->admin = peer_is_admin(d, fd, cred.uid);
		if (daemon_watch(d, &c->watch, EPOLLIN | EPOLLRDHUP) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = d->clients;
		d->clients = c;
		d->n_clients++;
		log_debug("connection from pid %d uid %u", (int)c->pid,
			  (unsigned)c->uid);
	}
}

static const char *client_name(const struct client *c)
{
	return c->id[0] ? c->id : "(anonymous)";
}

/* Dropped since the last reap. Most loop turns drop none, and walking
 * every client on each turn showed in bench/'s profile at N = 1000. */
static unsigned n_dropped;

void client_drop(struct daemon *d, struct client *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	n_dropped++;
	/* READY, then gone: what it preserved is complete, and the next
	 * update (should this one be aborted) must not wait for it. */
	if (c->ready && c->id[0])
		sessions_left_by(d, c->id);
	if (c->subscribed) {
		struct client_id *ci = client_id_find(d, c->id);

		if (ci && ci->subscriber == c) {
			ci->subscriber = NULL;
			client_id_gc(d, ci);
		}
	}
	log_debug("dropping client %s (pid %d): %s", client_name(c),
		  (int)c->pid, why);
	epoll_ctl(d->epoll_fd, EPOLL_CTL_DEL, c->watch.fd, NULL);
	c->watch.fd = safe_close(c->watch.fd);
	update_client_gone(d, c);
}

/* Freed only here, after the epoll batch, so no handler sees a freed client. */
void clients_reap(struct daemon *d)
{
	struct client **pp = &d->clients;

	if (!n_dropped)
		return;
	n_dropped = 0;
	while (*pp) {
		struct client *c = *pp;

		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		d->n_clients--;
		proto_reader_free(&c->in);
		proto_writer_free(&c->out);
		if (c->kexec_request)
			json_object_put(c->kexec_request);
		free(c);
	}
}

static void client_flush(struct daemon *d, struct client *c)
{
	int r = proto_writer_flush(&c->out, c->watch.fd);

	if (r == -EAGAIN) {
		if (c->out.queued_bytes > LUOD_MAX_QUEUED_BYTES) {
			log_warning(
				"client %s (pid %d) does not read its socket (%zu bytes queued); disconnecting it",
				client_name(c), (int)c->pid,
				c->out.queued_bytes);
			client_drop(d, c, "output queue full");
			return;
		}
		daemon_rewatch(d, &c->watch, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
	} else if (r < 0) {
		client_drop(d, c, strerror(-r));
	} else {
		daemon_rewatch(d, &c->watch, EPOLLIN | EPOLLRDHUP);
	}
}

void client_send(struct daemon *d, struct client *c, struct json_object *msg,
		 const int *fds, size_t n_fds)
{
	int r;

	if (!msg && !c->dead) {
		/* Out of memory building it: a client left waiting for a
		 * reply that never comes is worse than a closed connection. */
		log_error(
			"out of memory building a message for client %s (pid %d); closing its connection so "
			"that it does not wait for it (it may connect again)",
			client_name(c), (int)c->pid);
		client_drop(d, c, "out of memory");
		return;
	}
	if (!c->dead) {
		r = proto_writer_queue(&c->out, msg, fds, n_fds);
		if (r == -EMSGSIZE) {
			/* Say so rather than leave the client waiting. */
			struct json_object *e = proto_reply_error(
				proto_get_string(msg, "reply"), msg,
				PROTO_E_INTERNAL,
				"the reply would be longer than %d bytes",
				PROTO_MAX_REPLY);

			r = proto_writer_queue(&c->out, e, NULL, 0);
			json_object_put(e);
		}
		if (r < 0) {
			/* A message lost would leave the client waiting. */
			log_errno(r,
				  "cannot queue a message for client %s (pid %d); closing its connection so that it "
				  "does not wait for it (it may connect again)",
				  client_name(c), (int)c->pid);
			client_drop(d, c, "message lost");
		} else {
			client_flush(d, c);
		}
	}
	json_object_put(msg);
}

static void client_read(struct daemon *d, struct client *c)
{
	/* Bounded per wakeup so one busy client cannot starve the rest. */
	for (int round = 0; round < 16 && !c->dead; round++) {
		struct proto_msg m;
		int r = proto_reader_fill(&c->in, c->watch.fd);

		if (r == -EAGAIN || r == -EINTR)
			break;
		if (r == 0) {
			client_drop(d, c, "connection closed");
			return;
		}
		if (r < 0) {
			client_drop(d, c, strerror(-r));
			return;
		}
		while (!c->dead && (r = proto_reader_next(&c->in, &m)) != 0) {
			if (r == -EMSGSIZE) {
				client_send(
					d, c,
					proto_reply_error(
						NULL, NULL, PROTO_E_BAD_REQUEST,
						"line longer than %d bytes; closing the connection",
						PROTO_MAX_LINE),
					NULL, 0);
				client_flush(d, c);
				client_drop(d, c, "line too long");
				return;
			}
			if (r == -EBADMSG) {
				client_send(
					d, c,
					proto_reply_error(
						NULL, NULL, PROTO_E_BAD_REQUEST,
						"not a JSON object on one line; see docs/PROTOCOL.md"),
					NULL, 0);
				continue;
			}
			if (r == -EBADF) {
				client_send(
					d, c,
					proto_reply_error(
						NULL, NULL, PROTO_E_BAD_REQUEST,
						"the fds sent do not match the message's \"fds\" count; "
						"all were closed"),
					NULL, 0);
				continue;
			}
			command_dispatch(d, c, &m);
			proto_msg_clear(&m);
		}
	}
}

static void client_io(struct daemon *d, struct watch *w, uint32_t events)
{
	struct client *c = (struct client *)w;

	if (c->dead)
		return;
	if (events & EPOLLOUT)
		client_flush(d, c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
		client_read(d, c);
}
