// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The update: PREPARE every subscriber, wait for every READY, then write
 * the manifest, sync and kexec. Anything else on the way aborts it, and an
 * abort leaves every session exactly as it was.
 *
 * The barrier is this file's alone: d->waiting is the number of clients
 * with in_barrier (subscribed, PREPARE sent, not ready yet) plus the
 * client ids awaited (owners of outgoing sessions not connected). Only
 * the functions below change them, and the reboot comes only at zero.
 */
#include <inttypes.h>
#include <stdarg.h>

#include "daemon.h"
#include "log.h"
#include "luo.h"
#include "notify.h"

const char *phase_name(enum update_phase p)
{
	switch (p) {
	case PHASE_IDLE:
		return "idle";
	case PHASE_PREPARING:
		return "preparing";
	case PHASE_REBOOTING:
		return "rebooting";
	}
	return "?";
}

static struct json_object *absent_json(struct daemon *d);

static void progress(struct daemon *d, const char *phase, const char *client,
		     const char *reason)
{
	for (struct client *c = d->clients; c; c = c->next) {
		struct json_object *e;

		if (c->dead || !c->waits_kexec)
			continue;
		e = proto_event("PROGRESS");
		proto_add(&e, "phase", json_object_new_string(phase));
		if (client)
			proto_add(&e, "client", json_object_new_string(client));
		if (reason)
			proto_add(&e, "reason", json_object_new_string(reason));
		if (streq(phase, "prepare")) {
			proto_add(&e, "clients",
				  json_object_new_int((int)d->waiting));
			proto_add(&e, "absent", absent_json(d));
		}
		if (streq(phase, "ready"))
			proto_add(&e, "remaining",
				  json_object_new_int((int)d->waiting));
		client_send(d, c, e, NULL, 0);
	}
}

/*
 * READYs handled in one loop turn make one PROGRESS "ready" with the last
 * of them: with 1000 clients, one event per READY cost luod more than the
 * READYs themselves and flooded luoctl.
 */
void update_progress_flush(struct daemon *d)
{
	if (!d->progress_ready[0])
		return;
	progress(d, "ready", d->progress_ready, NULL);
	d->progress_ready[0] = 0;
}

static void arm_timer(struct daemon *d, uint64_t us)
{
	timer_arm(d->timer.fd, us);
}

static void finish_requester(struct daemon *d, const char *code,
			     const char *msg)
{
	for (struct client *c = d->clients; c; c = c->next) {
		if (c->dead || !c->waits_kexec)
			continue;
		if (code)
			client_send(d, c,
				    proto_reply_error("KEXEC", c->kexec_request,
						      code, "%s", msg),
				    NULL, 0);
		else {
			struct json_object *r =
				proto_reply_ok("KEXEC", c->kexec_request);

			proto_add(&r, "rebooting", json_object_new_boolean(1));
			client_send(d, c, r, NULL, 0);
			c->told_rebooting = true;
		}
		c->waits_kexec = false;
		if (c->kexec_request)
			json_object_put(c->kexec_request);
		c->kexec_request = NULL;
	}
}

/*
 * The barrier is every subscriber, and every owner of an outgoing session
 * it has not left (LEAVE, or READY and gone): an owner that is not
 * connected when the update starts (luod restarted and it is reconnecting,
 * or it went away) is waited for like a subscriber, under its client id.
 */
static bool session_holds_update(const struct session *s)
{
	return s->state == SESSION_OUTGOING && !s->left;
}

static bool connected(const struct client_id *ci)
{
	return ci->subscriber && !ci->subscriber->dead;
}

/* Into an array others hold: a failure loses this entry only. */
void json_array_add_id(struct json_object *arr, const char *id)
{
	struct json_object *v = json_object_new_string(id);

	if (v && json_object_array_add(arr, v) < 0)
		json_object_put(v);
}

static void unawait(struct daemon *d, struct client_id *ci, void *data)
{
	ci->awaited = false;
}

static void add_awaited(struct daemon *d, struct client_id *ci, void *data)
{
	struct json_object *arr = data;

	if (ci->awaited)
		json_array_add_id(arr, ci->id);
}

/* The owners the update waits for that are not connected. */
static struct json_object *absent_json(struct daemon *d)
{
	struct json_object *arr = json_object_new_array();

	if (arr)
		client_ids_foreach(d, add_awaited, arr);
	return arr;
}

struct names {
	char buf[1024];
	size_t len;
	unsigned n;
};

static void names_add(struct names *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void names_add(struct names *w, const char *fmt, ...)
{
	va_list ap;

	w->n++;
	if (w->len >= sizeof(w->buf))
		return;
	if (w->len)
		w->len += (size_t)snprintf(w->buf + w->len,
					   sizeof(w->buf) - w->len, ", ");
	if (w->len >= sizeof(w->buf))
		return;
	va_start(ap, fmt);
	w->len += (size_t)vsnprintf(w->buf + w->len, sizeof(w->buf) - w->len,
				    fmt, ap);
	va_end(ap);
}

static void name_awaited(struct daemon *d, struct client_id *ci, void *data)
{
	if (ci->awaited)
		names_add(data, "%s (not connected)", ci->id);
}

void update_abort(struct daemon *d, const char *code, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	if (d->phase == PHASE_IDLE)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);

	log_warning("update %" PRIu64
		    " aborted: %s; every session is kept as it was",
		    d->update_id, reason);
	notify_status("idle; update %" PRIu64 " aborted: %s", d->update_id,
		      reason);
	arm_timer(d, 0);
	d->phase = PHASE_IDLE;
	client_ids_foreach(d, unawait, NULL);
	for (struct client *c = d->clients; c; c = c->next) {
		struct json_object *e;
		bool told = c->told_rebooting;

		c->ready = false;
		c->in_barrier = false;
		c->told_rebooting = false;
		/* The reply "rebooting" goes out before the syscall, so a
		 * kernel that refuses it is reported to the requester here. */
		if (c->dead || (!c->subscribed && !told))
			continue;
		e = proto_event("ABORTED");
		proto_add(&e, "update", json_object_new_uint64(d->update_id));
		proto_add(&e, "reason", json_object_new_string(reason));
		client_send(d, c, e, NULL, 0);
	}
	finish_requester(d, code, reason);
	if (d->timeline)
		json_object_put(d->timeline);
	d->timeline = NULL;
}

/* The session a PREPARE or START_PRESERVATION hands to a client with none. */
static struct session *default_session(struct daemon *d, struct client *c,
				       bool *created)
{
	struct session *s;

	*created = false;
	for (s = sessions_of(d, c->id); s; s = s->next_of_id)
		if (s->state == SESSION_OUTGOING)
			return s;
	if (session_create(d, c->id, "default", c->uid, &s) < 0)
		return NULL;
	*created = true;
	return s;
}

/*
 * While update_start sends PREPARE to every subscriber: each client's
 * outgoing session names, from one pass over the sessions. Looking them up
 * per client was O(clients x sessions): half of the barrier's first READY
 * at N = 1000 in bench/.
 */
static struct json_object *fanout_names;

static struct json_object *names_by_client(struct daemon *d)
{
	struct json_object *map = json_object_new_object(), *names;

	/* NULL when out of memory: PREPARE then looks each client up. */
	for (struct session *s = d->sessions; map && s; s = s->next) {
		struct json_object *v;

		if (s->state != SESSION_OUTGOING)
			continue;
		if (!json_object_object_get_ex(map, s->client, &names)) {
			names = json_object_new_array();
			if (!proto_add(&map, s->client, names))
				break;
		}
		v = json_object_new_string(s->name);
		if (!v || json_object_array_add(names, v) < 0) {
			if (v)
				json_object_put(v);
			json_object_put(map);
			map = NULL;
		}
	}
	return map;
}

static void prepare_client(struct daemon *d, struct client *c)
{
	struct json_object *e, *names;
	struct session *s;
	size_t n_names;
	uint64_t now;
	bool created;

	if (!c->hello) {
		/* luo-agent's flow: the session fd comes with the event. */
		s = default_session(d, c, &created);
		if (!s) {
			update_abort(d, PROTO_E_KERNEL,
				     "cannot create a session for client %s",
				     c->id);
			return;
		}
		e = proto_event("START_PRESERVATION");
		proto_add(&e, "update", json_object_new_uint64(d->update_id));
		client_send(d, c, e, &s->fd, 1);
		return;
	}

	e = proto_event("PREPARE");
	proto_add(&e, "update", json_object_new_uint64(d->update_id));
	/* A late subscriber may come after the deadline, in the same loop
	 * turn as the timer: 0 left, not an unsigned wrap to 584,000 years. */
	now = now_mono_us();
	proto_add(&e, "timeout_ms",
		  json_object_new_uint64(d->deadline_us > now ?
						 (d->deadline_us - now) / 1000 :
						 0));
	if (fanout_names &&
	    json_object_object_get_ex(fanout_names, c->id, &names)) {
		json_object_get(names);
	} else {
		names = json_object_new_array();
		for (s = fanout_names ? NULL : d->sessions; s; s = s->next)
			if (streq(s->client, c->id) &&
			    s->state == SESSION_OUTGOING)
				proto_append(&names,
					     json_object_new_string(s->name));
	}
	n_names = names ? json_object_array_length(names) : 0;
	proto_add(&e, "sessions", names);
	if (n_names == 0) {
		s = default_session(d, c, &created);
		if (!s) {
			json_object_put(e);
			update_abort(d, PROTO_E_KERNEL,
				     "cannot create a session for client %s",
				     c->id);
			return;
		}
		proto_add(&e, "new_session", json_object_new_string(s->name));
		client_send(d, c, e, &s->fd, 1);
		return;
	}
	client_send(d, c, e, NULL, 0);
}

/* systemctl kexec carries only what is in systemd's fd store. */
static int unstored(struct daemon *d, char *err, size_t len)
{
	for (struct session *s = d->sessions; s; s = s->next)
		if (s->state == SESSION_OUTGOING && !s->in_fdstore) {
			snprintf(err, len,
				 "session %s/%s (%s) is not in systemd's fd store, so systemctl kexec would lose it; "
				 "raise FileDescriptorStoreMax= in luod.service or set reboot_mode = direct",
				 s->client, s->name, s->kernel_name);
			return -ENOSPC;
		}
	return 0;
}

/* Sent before the connections end, so that luoctl can tell a connection
 * cut by the kexec from a luod that died. */
static void tell_rebooting(struct daemon *d)
{
	update_progress_flush(d);
	progress(d, "reboot", NULL, NULL);
	finish_requester(d, NULL, NULL);
	/* The replies waiting to go out together go now. */
	for (struct client *c = d->clients; c; c = c->next)
		if (c->corked)
			client_flush(d, c);
}

static void reboot_now(struct daemon *d)
{
	_cleanup_close_ int state_fd = -1;
	_cleanup_free_ char *text = NULL;
	bool via_systemd = d->cfg.reboot_mode == REBOOT_SYSTEMD;
	char stored[FDNAME_MAX + 1], err[512];
	int r;

	d->phase = PHASE_REBOOTING;
	arm_timer(d, 0);
	timeline_add(d, "reboot", NULL, NULL);
	text = state_kexec_manifest(d);
	if (!text)
		r = -ENOMEM;
	else if (via_systemd) {
		r = unstored(d, err, sizeof(err));
		if (r == 0)
			r = fdstore_store_manifest(text, stored, sizeof(stored),
						   err, sizeof(err));
	} else
		r = state_preserve(d, text, &state_fd);
	if (r < 0) {
		if (!via_systemd || !text)
			snprintf(err, sizeof(err),
				 "cannot preserve luod's manifest (%s)",
				 strerror(-r));
		update_abort(d, PROTO_E_KERNEL, "%s; nothing was rebooted",
			     err);
		return;
	}
	log_notice("update %" PRIu64
		   ": all clients ready; %u sessions go across; %s",
		   d->update_id, sessions_count(d, SESSION_OUTGOING),
		   via_systemd ? "handing them to systemd for systemctl kexec" :
				 "calling reboot(KEXEC)");
	notify_status("update %" PRIu64 ": rebooting", d->update_id);
	/* The reboot syscall does not return, so the requester hears of it
	 * before; systemctl does, so only once systemd took the kexec: a
	 * luod killed before that is not taken for a reboot. */
	if (!via_systemd || d->cfg.no_reboot)
		tell_rebooting(d);
	sync();
	if (d->cfg.no_reboot) {
		log_notice("--no-reboot: stopping before %s",
			   via_systemd ? "systemctl kexec" :
					 "the reboot syscall");
		d->quit = true;
		/* The state session must outlive us for a test to inspect it. */
		take_fd(&state_fd);
		return;
	}
	if (via_systemd) {
		/* systemd now stops every service, luod included, and
		 * systemd-shutdown does the kexec. */
		if (fdstore_kexec(stored, err, sizeof(err)) == 0) {
			tell_rebooting(d);
			return;
		}
		/* The requester, not told "rebooting" yet, gets an abort. */
		update_abort(d, PROTO_E_ABORTED, "%s", err);
		return;
	}
	r = kexec_reboot();
	/* Only a failure comes back here. */
	update_abort(
		d, PROTO_E_KERNEL,
		"the kernel refused the kexec (reboot(LINUX_REBOOT_CMD_KEXEC): %s); see dmesg and luod(8), UPDATES",
		strerror(-r));
}

static void check_barrier(struct daemon *d)
{
	if (d->phase == PHASE_PREPARING && d->waiting == 0)
		reboot_now(d);
}

struct await_ctx {
	struct names *absent, *skipped;
};

static void await_owner(struct daemon *d, struct client_id *ci, void *data)
{
	struct await_ctx *ctx = data;
	bool holds = false;

	for (struct session *s = ci->sessions; s && !holds; s = s->next_of_id)
		holds = session_holds_update(s);
	if (!holds || ci->awaited || connected(ci))
		return;
	if (d->force) {
		names_add(ctx->skipped, "%s", ci->id);
		return;
	}
	ci->awaited = true;
	d->waiting++;
	names_add(ctx->absent, "%s", ci->id);
}

void update_start(struct daemon *d, struct client *requester,
		  unsigned timeout_s, bool force)
{
	struct names absent = { 0 }, skipped = { 0 };
	unsigned subscribers = 0;

	d->phase = PHASE_PREPARING;
	d->update_id++;
	d->deadline_us = now_mono_us() + (uint64_t)timeout_s * 1000000;
	d->waiting = 0;
	d->force = force;
	if (d->timeline)
		json_object_put(d->timeline);
	d->timeline = json_object_new_array();
	arm_timer(d, (uint64_t)timeout_s * 1000000);
	requester->waits_kexec = true;

	for (struct client *c = d->clients; c; c = c->next) {
		c->ready = false;
		c->in_barrier = !c->dead && c->subscribed;
		d->waiting += c->in_barrier;
	}
	subscribers = d->waiting;
	client_ids_foreach(d, await_owner,
			   &(struct await_ctx){ &absent, &skipped });
	if (absent.n)
		log_notice(
			"update %" PRIu64
			" started: waiting up to %u s for %u subscribers and for %u session owners that "
			"are not connected: %s",
			d->update_id, timeout_s, subscribers, absent.n,
			absent.buf);
	else
		log_notice("update %" PRIu64
			   " started: waiting up to %u s for %u subscribers",
			   d->update_id, timeout_s, d->waiting);
	if (skipped.n)
		log_warning(
			"update %" PRIu64
			": not waiting for %s, which own sessions but are not connected (forced): "
			"their sessions go across as they are now",
			d->update_id, skipped.buf);
	notify_status("update %" PRIu64 ": waiting for %u clients",
		      d->update_id, d->waiting);
	timeline_add(d, "prepare", NULL, NULL);
	progress(d, "prepare", NULL, NULL);
	fanout_names = names_by_client(d);
	for (struct client *c = d->clients; c && d->phase == PHASE_PREPARING;
	     c = c->next)
		if (c->in_barrier)
			prepare_client(d, c);
	json_object_put(fanout_names);
	fanout_names = NULL;
	check_barrier(d);
}

/* SUBSCRIBE while preparing: the client joins the barrier, or takes the
 * place its id had in it as an owner not connected. Once per client,
 * however often it subscribes. */
void update_client_subscribed(struct daemon *d, struct client *c)
{
	struct client_id *ci = client_id_find(d, c->id);

	if (d->phase != PHASE_PREPARING || c->in_barrier || c->ready ||
	    c->dead)
		return;
	c->in_barrier = true;
	if (ci && ci->awaited) {
		ci->awaited = false; /* its place in waiting is the client's now */
		log_info("update %" PRIu64
			 ": client %s, waited for, is back and subscribed",
			 d->update_id, c->id);
		update_progress_flush(d);
		progress(d, "subscribed", c->id, NULL);
	} else {
		d->waiting++;
	}
	prepare_client(d, c);
}

static void barrier_leave(struct daemon *d, const char *id)
{
	d->waiting--;
	timeline_add(d, "ready", id, NULL);
	snprintf(d->progress_ready, sizeof(d->progress_ready), "%s", id);
	check_barrier(d);
}

void update_client_ready(struct daemon *d, struct client *c)
{
	if (!c->in_barrier)
		return;
	c->in_barrier = false;
	c->ready = true;
	log_info("update %" PRIu64 ": client %s ready, %u to go", d->update_id,
		 c->id, d->waiting - 1);
	barrier_leave(d, c->id);
}

/* LEAVE: the client's sessions are complete, which is as good as READY;
 * an owner waited for under its id no longer is. */
void update_client_left(struct daemon *d, struct client *c)
{
	struct client_id *ci = client_id_find(d, c->id);

	if (d->phase != PHASE_PREPARING)
		return;
	if (c->in_barrier) {
		update_client_ready(d, c);
	} else if (ci && ci->awaited) {
		ci->awaited = false;
		barrier_leave(d, c->id);
	}
}

void update_client_not_ready(struct daemon *d, struct client *c,
			     const char *reason)
{
	update_progress_flush(d);
	progress(d, "not_ready", c->id, reason);
	update_abort(d, PROTO_E_ABORTED, "client %s is not ready: %s", c->id,
		     reason);
}

/* From clients_gc(): a client counted in the barrier is gone before READY. */
void update_client_gone(struct daemon *d, struct client *c)
{
	if (d->phase != PHASE_PREPARING || !c->in_barrier)
		return;
	update_abort(d, PROTO_E_ABORTED,
		     "client %s (pid %d) disconnected before it was ready",
		     c->id, (int)c->pid);
}

void update_timer(struct daemon *d, struct watch *w, uint32_t events)
{
	uint64_t ticks;

	if (read(w->fd, &ticks, sizeof(ticks)) == sizeof(ticks))
		update_timeout(d);
}

void update_timeout(struct daemon *d)
{
	struct names who = { 0 };
	bool absent;

	if (d->phase != PHASE_PREPARING)
		return;
	for (struct client *c = d->clients; c; c = c->next)
		if (c->in_barrier)
			names_add(&who, "%s (pid %d)", c->id, (int)c->pid);
	client_ids_foreach(d, name_awaited, &who);
	absent = strstr(who.buf, "(not connected)") != NULL;
	update_abort(
		d, PROTO_E_ABORTED,
		"timed out waiting for %u client(s) to become ready (%s); %s",
		d->waiting, who.buf,
		absent ? "start those not connected again, release their sessions (luoctl release) or update without them "
			 "(luoctl kexec --force); see luod(8), UPDATES" :
			 "check those clients, or give them longer with luoctl kexec --timeout");
}
