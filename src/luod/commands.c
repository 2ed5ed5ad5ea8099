// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One handler per protocol command (docs/PROTOCOL.md). Each command's
 * fields are read by its table in commands[] before the handler runs, so
 * a handler sees its arguments checked, in q->a.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>

#include "config.h"
#include "daemon.h"
#include "fields.h"
#include "notify.h"
#include "log.h"
#include "luo.h"

/* Every command's arguments; each reads those its table names. */
struct args {
	const char *name, *reason, *kernel, *initrd, *cmdline;
	int64_t version, timeout;
	bool reuse_cmdline, force;
};

struct request {
	struct daemon *d;
	struct client *c;
	struct proto_msg *m;
	const char *cmd;
	const char *id; /* the client id this request acts for, or NULL */
	struct args a;
};

static void reply(struct request *q, struct json_object *r, const int *fds,
		  size_t n_fds)
{
	client_send(q->d, q->c, r, fds, n_fds);
}

static void reply_ok(struct request *q)
{
	reply(q, proto_reply_ok(q->cmd, q->m->obj), NULL, 0);
}

__attribute__((format(printf, 3, 4))) static void
fail(struct request *q, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply(q, proto_reply_error(q->cmd, q->m->obj, code, "%s", msg), NULL,
	      0);
}

static bool need_id(struct request *q)
{
	if (q->id)
		return true;
	fail(q, PROTO_E_BAD_REQUEST,
	     "%s needs a client id: send \"id\", or HELLO with \"id\" first",
	     q->cmd);
	return false;
}

static bool may_touch(struct request *q, struct session *s)
{
	if (q->c->uid == s->uid || q->c->admin)
		return true;
	fail(q, PROTO_E_PERMISSION,
	     "session %s/%s belongs to uid %u; only that user, root or the admin group may %s it",
	     s->client, s->name, (unsigned)s->uid, q->cmd);
	return false;
}

/* Someone else's client id: its sessions are not yours to extend. */
static bool id_owned_by_caller(struct request *q)
{
	for (struct session *s = sessions_of(q->d, q->id); s; s = s->next_of_id)
		if (s->uid != q->c->uid && !q->c->admin) {
			fail(q, PROTO_E_PERMISSION,
			     "client id %s is used by uid %u; pick another id",
			     q->id, (unsigned)s->uid);
			return false;
		}
	return true;
}

static struct json_object *session_json(struct session *s, bool full)
{
	struct json_object *o = json_object_new_object();

	if (full)
		proto_add(&o, "client", json_object_new_string(s->client));
	proto_add(&o, "name", json_object_new_string(s->name));
	proto_add(&o, "state",
		  json_object_new_string(session_state_name(s->state)));
	proto_add(&o, "generation", json_object_new_uint64(s->generation));
	proto_add(&o, "kernel_name", json_object_new_string(s->kernel_name));
	if (session_detached(s))
		proto_add(&o, "detached", json_object_new_boolean(1));
	if (s->left && s->state == SESSION_OUTGOING)
		proto_add(&o, "left", json_object_new_boolean(1));
	if (full) {
		proto_add(&o, "uid", json_object_new_int64(s->uid));
		proto_add(&o, "created_us",
			  json_object_new_uint64(s->created_us));
	}
	return o;
}

static void cmd_hello(struct request *q)
{
	struct json_object *r;

	if (q->a.version < 1) {
		fail(q, PROTO_E_VERSION,
		     "luod speaks protocol version %d; the client asked for %" PRId64,
		     PROTO_VERSION, q->a.version);
		return;
	}
	q->c->hello = true;
	r = proto_reply_ok(q->cmd, q->m->obj);
	proto_add(&r, "version", json_object_new_int(PROTO_VERSION));
	proto_add(&r, "server", json_object_new_string("luod " LUOD_VERSION));
	proto_add(&r, "generation", json_object_new_uint64(q->d->generation));
	proto_add(&r, "uid", json_object_new_int64(q->c->uid));
	proto_add(&r, "admin", json_object_new_boolean(q->c->admin));
	reply(q, r, NULL, 0);
}

static void cmd_subscribe(struct request *q)
{
	struct client_id *ci;
	struct client *o;

	if (!need_id(q) || !id_owned_by_caller(q))
		return;
	ci = client_id_find(q->d, q->id);
	o = ci ? ci->subscriber : NULL;
	if (o && o != q->c && !o->dead) {
		fail(q, PROTO_E_EXISTS,
		     "client %s is already subscribed on another connection (pid %d)",
		     q->id, (int)o->pid);
		return;
	}
	if (q->d->phase == PHASE_REBOOTING) {
		fail(q, PROTO_E_BUSY,
		     "the machine is rebooting into the new kernel");
		return;
	}
	if (q->c->subscribed) {
		/* Counted in the barrier once, however often it asks. */
		if (q->c->hello)
			reply_ok(q);
		return;
	}
	ci = client_id_get(q->d, q->id);
	if (!ci) {
		fail(q, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	ci->subscriber = q->c;
	q->c->subscribed = true;
	log_info("client %s (pid %d, uid %u) subscribed", q->id, (int)q->c->pid,
		 (unsigned)q->c->uid);
	if (q->c->hello)
		reply_ok(q);
	/* Late subscribers join the barrier of the update in progress. */
	update_client_subscribed(q->d, q->c);
}

/*
 * A client that leaves its sessions behind, complete (preserved, nothing
 * more to write), says so: updates then go on without it. It also ends the
 * connection's subscription, and counts as its READY if one is waited for.
 */
static void cmd_leave(struct request *q)
{
	struct daemon *d = q->d;
	struct client *c = q->c;
	struct client_id *ci;
	unsigned n = 0;

	if (!need_id(q) || !id_owned_by_caller(q))
		return;
	if (d->phase == PHASE_REBOOTING) {
		fail(q, PROTO_E_BUSY,
		     "the machine is rebooting into the new kernel");
		return;
	}
	for (struct session *s = sessions_of(d, q->id); s; s = s->next_of_id)
		n += s->state == SESSION_OUTGOING;
	sessions_leave(d, q->id);
	log_info("client %s (pid %d) left its %u outgoing sessions, so updates no longer wait for it",
		 q->id, (int)c->pid, n);
	reply_ok(q);
	ci = client_id_find(d, q->id);
	if (c->subscribed) {
		c->subscribed = false;
		if (ci && ci->subscriber == c)
			ci->subscriber = NULL;
	}
	update_client_left(d, c);
	client_id_gc(d, client_id_find(d, q->id));
}

static void cmd_create_session(struct request *q)
{
	const char *name = q->a.name;
	struct json_object *r;
	struct session *s;
	int e;

	if (!need_id(q) || !id_owned_by_caller(q))
		return;
	if (q->d->phase == PHASE_REBOOTING ||
	    (q->d->phase == PHASE_PREPARING && q->c->ready)) {
		fail(q, PROTO_E_STATE,
		     "too late to create a session: this client already said READY");
		return;
	}
	e = session_create(q->d, q->id, name, q->c->uid, &s);
	if (e == -EEXIST) {
		fail(q, PROTO_E_EXISTS,
		     "client %s already has a session named %s; CLAIM gives it back, or pick another name",
		     q->id, name);
		return;
	}
	if (e < 0) {
		fail(q, PROTO_E_KERNEL,
		     "LIVEUPDATE_IOCTL_CREATE_SESSION failed: %s",
		     strerror(-e));
		return;
	}
	r = proto_reply_ok(q->cmd, q->m->obj);
	proto_add(&r, "session", session_json(s, false));
	reply(q, r, &s->fd, 1);
}

static bool in_update(struct request *q)
{
	if (q->d->phase == PHASE_PREPARING && q->c->subscribed)
		return true;
	fail(q, PROTO_E_STATE,
	     q->c->subscribed ? "no update is being prepared" :
				"this connection has not subscribed");
	return false;
}

static void cmd_ready(struct request *q)
{
	if (!in_update(q))
		return;
	if (q->c->hello)
		reply_ok(q);
	update_client_ready(q->d, q->c);
}

static void cmd_not_ready(struct request *q)
{
	if (!in_update(q))
		return;
	reply_ok(q);
	update_client_not_ready(q->d, q->c,
				q->a.reason ? q->a.reason : "no reason given");
}

static void cmd_claim(struct request *q)
{
	const char *name = q->a.name;
	struct json_object *r, *arr;
	int fds[PROTO_MAX_FDS];
	size_t n = 0;

	if (!need_id(q))
		return;
	for (struct session *s = sessions_of(q->d, q->id); s;
	     s = s->next_of_id) {
		if (name && !streq(s->name, name))
			continue;
		if (!may_touch(q, s))
			return;
		if (session_detached(s)) {
			fail(q, PROTO_E_STATE,
			     "session %s/%s is detached: luod restarted and lost its copy; the process that holds it "
			     "must REATTACH it (libluod: luod_reconnect)",
			     s->client, s->name);
			return;
		}
		n++;
	}
	if (n == 0) {
		fail(q, PROTO_E_NOT_FOUND,
		     "luod holds no session %s%s%s; luoctl list shows what it holds",
		     q->id, name ? "/" : "", name ? name : "");
		return;
	}
	if (n > PROTO_MAX_FDS) {
		fail(q, PROTO_E_BAD_REQUEST,
		     "client %s has %zu sessions; claim them by name, %d at most at once",
		     q->id, n, PROTO_MAX_FDS);
		return;
	}
	arr = json_object_new_array();
	n = 0;
	for (struct session *s = sessions_of(q->d, q->id); s;
	     s = s->next_of_id) {
		int e;

		if (name && !streq(s->name, name))
			continue;
		e = session_claim(q->d, s);
		if (e < 0) {
			json_object_put(arr);
			fail(q, PROTO_E_KERNEL,
			     "cannot retrieve session %s/%s (%s) from the kernel: %s",
			     s->client, s->name, s->kernel_name, strerror(-e));
			return;
		}
		/* A restarted client takes its session back, to write more. */
		session_set_left(q->d, s, false);
		fds[n++] = s->fd;
		proto_append(&arr, session_json(s, false));
		log_info("client %s (pid %d) claimed session %s (%s)", q->id,
			 (int)q->c->pid, s->name, session_state_name(s->state));
	}
	r = proto_reply_ok(q->cmd, q->m->obj);
	proto_add(&r, "sessions", arr);
	reply(q, r, fds, n);
	if (q->c->hello)
		return;
	/* luo-agent's flow has no FINISHED: a legacy client takes the session
	 * over outright, as it would from luo-agent. The reply holds its own
	 * copies of the fds until they are sent. */
	for (struct session *s = sessions_of(q->d, q->id), *next; s; s = next) {
		next = s->next_of_id;
		if ((!name || streq(s->name, name)) &&
		    s->state == SESSION_CLAIMED)
			session_forget(q->d, s);
	}
}

static struct session *target_session(struct request *q)
{
	const char *name = q->a.name;
	struct session *s;

	if (!need_id(q))
		return NULL;
	s = session_find(q->d, q->id, name);
	if (!s) {
		fail(q, PROTO_E_NOT_FOUND,
		     "luod holds no session %s/%s; luoctl list shows what it holds",
		     q->id, name);
		return NULL;
	}
	return may_touch(q, s) ? s : NULL;
}

static void cmd_finished(struct request *q)
{
	struct session *s = target_session(q);

	if (!s)
		return;
	if (s->state != SESSION_CLAIMED) {
		fail(q, PROTO_E_STATE,
		     "session %s/%s is %s, not claimed: CLAIM it first%s",
		     s->client, s->name, session_state_name(s->state),
		     s->state == SESSION_OUTGOING ?
			     " (a session created this boot is dropped with RELEASE)" :
			     "");
		return;
	}
	timeline_add(q->d, "finished", s->client, s->name);
	log_info("client %s finished session %s; luod lets go of it", s->client,
		 s->name);
	session_forget(q->d, s);
	reply_ok(q);
}

static void cmd_release(struct request *q)
{
	struct session *s = target_session(q);
	char why[64];

	if (!s)
		return;
	if (q->d->phase != PHASE_IDLE && s->state == SESSION_OUTGOING) {
		fail(q, PROTO_E_STATE,
		     "an update is in progress; release %s/%s after it, or ABORT it first",
		     s->client, s->name);
		return;
	}
	snprintf(why, sizeof(why), "RELEASE by uid %u (pid %d)",
		 (unsigned)q->c->uid, (int)q->c->pid);
	session_release(q->d, s, why);
	reply_ok(q);
}

/*
 * A restarted luod lost its copies of the sessions it had created (and of
 * those it had handed out after the kexec); their clients still hold them
 * and send them back. The kernel's own name for the fd proves which
 * session it is.
 */
static void cmd_reattach(struct request *q)
{
	const char *name = q->a.name;
	char kname[LIVEUPDATE_SESSION_NAME_LENGTH];
	struct session *s;
	int r, fd;

	if (!need_id(q) || !id_owned_by_caller(q))
		return;
	if (q->m->n_fds != 1) {
		fail(q, PROTO_E_BAD_REQUEST,
		     "REATTACH needs the session's fd (\"fds\":1)");
		return;
	}
	r = luo_get_name(q->m->fds[0], kname);
	if (r < 0) {
		fail(q, PROTO_E_BAD_REQUEST,
		     "the fd sent is not a LUO session (LIVEUPDATE_SESSION_GET_NAME: %s)",
		     strerror(-r));
		return;
	}
	s = session_find(q->d, q->id, name);
	if (s && !streq(s->kernel_name, kname)) {
		fail(q, PROTO_E_PERMISSION,
		     "session %s/%s is %s in luod's manifest, but the fd sent is %s",
		     q->id, name, s->kernel_name, kname);
		return;
	}
	if (s && !may_touch(q, s))
		return;
	if (s && !session_detached(s)) {
		reply_ok(q); /* luod has it already: nothing to do */
		return;
	}
	if (!s) {
		struct session *o = session_by_kernel_name(q->d, kname);

		if (o) {
			fail(q, PROTO_E_PERMISSION,
			     "%s is luod's session %s/%s, not %s/%s", kname,
			     o->client, o->name, q->id, name);
			return;
		}
	}
	fd = fcntl(q->m->fds[0], F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		fail(q, PROTO_E_INTERNAL,
		     "cannot keep a copy of the session: %s", strerror(errno));
		return;
	}
	if (!s) {
		/* Not in the manifest (its copy was lost): adopt it as the
		 * caller's. Only luod can create sessions, so it came from us. */
		s = calloc(1, sizeof(*s));
		if (!s) {
			close(fd);
			fail(q, PROTO_E_INTERNAL, "out of memory");
			return;
		}
		snprintf(s->client, sizeof(s->client), "%s", q->id);
		snprintf(s->name, sizeof(s->name), "%s", name);
		snprintf(s->kernel_name, sizeof(s->kernel_name), "%s", kname);
		s->uid = q->c->uid;
		s->generation = q->d->generation;
		s->created_us = now_real_us();
		s->state = SESSION_OUTGOING;
		if (session_link(q->d, s) < 0) {
			free(s);
			close(fd);
			fail(q, PROTO_E_INTERNAL, "out of memory");
			return;
		}
	}
	s->fd = fd;
	s->left = false; /* its holder is back */
	session_hold(q->d, s);
	session_changed(q->d, s);
	log_notice("client %s (pid %d) re-attached session %s (%s, %s)", q->id,
		   (int)q->c->pid, name, kname, session_state_name(s->state));
	reply_ok(q);
}

static struct json_object *last_update_json(struct daemon *d)
{
	struct json_object *o;
	uint64_t reboot = 0, up = 0;
	int64_t v;

	if (!d->last_timeline)
		return NULL;
	o = json_object_new_object();
	proto_add(&o, "generation", json_object_new_uint64(d->generation));
	proto_add(&o, "timeline", json_object_get(d->last_timeline));
	for (size_t i = 0; i < json_object_array_length(d->last_timeline);
	     i++) {
		struct json_object *e =
			json_object_array_get_idx(d->last_timeline, i);
		const char *ev = proto_get_string(e, "event");

		if (!proto_get_int64(e, "t_us", &v))
			continue;
		if (streq(ev, "reboot"))
			reboot = (uint64_t)v;
		else if (streq(ev, "luod_up"))
			up = (uint64_t)v;
	}
	if (reboot && up >= reboot)
		proto_add(&o, "blackout_us",
			  json_object_new_uint64(up - reboot));
	return o;
}

static void add_awaited_status(struct daemon *d, struct client_id *ci,
			       void *data)
{
	if (ci->awaited)
		json_array_add_id(data, ci->id);
}

static void cmd_status(struct request *q)
{
	struct daemon *d = q->d;
	struct json_object *r = proto_reply_ok(q->cmd, q->m->obj),
			   *clients = json_object_new_array();
	struct json_object *counts = json_object_new_object(), *lu;
	unsigned subscribed = 0;

	proto_add(&r, "phase", json_object_new_string(phase_name(d->phase)));
	proto_add(&r, "generation", json_object_new_uint64(d->generation));
	proto_add(&r, "kernel_loaded", json_object_new_boolean(kexec_loaded()));
	proto_add(&r, "reboot_mode",
		  json_object_new_string(reboot_mode_name(d->cfg.reboot_mode)));
	proto_add(&r, "reboot_mode_why",
		  json_object_new_string(d->cfg.reboot_mode_why));
	for (struct client *c = d->clients; c; c = c->next) {
		struct json_object *co;

		if (c->dead || !c->id[0])
			continue;
		subscribed += c->subscribed;
		co = json_object_new_object();
		proto_add(&co, "id", json_object_new_string(c->id));
		proto_add(&co, "pid", json_object_new_int(c->pid));
		proto_add(&co, "uid", json_object_new_int64(c->uid));
		proto_add(&co, "subscribed",
			  json_object_new_boolean(c->subscribed));
		proto_add(&co, "ready", json_object_new_boolean(c->ready));
		proto_append(&clients, co);
	}
	proto_add(&r, "clients", clients);
	proto_add(&r, "subscribed", json_object_new_int((int)subscribed));
	for (int st = SESSION_OUTGOING; st <= SESSION_CLAIMED; st++)
		proto_add(&counts, session_state_name(st),
			  json_object_new_int((int)sessions_count(
				  d, (enum session_state)st)));
	proto_add(&r, "sessions", counts);
	if (sessions_count(d, SESSION_INCOMING) && d->cfg.grace_s)
		proto_add(&r, "unclaimed_release_at_us",
			  json_object_new_uint64(grace_deadline_us(d)));
	if (d->phase == PHASE_PREPARING) {
		struct json_object *u = json_object_new_object(),
				   *w = json_object_new_array();
		uint64_t now = now_mono_us();

		proto_add(&u, "id", json_object_new_uint64(d->update_id));
		proto_add(&u, "ms_left",
			  json_object_new_uint64(
				  d->deadline_us > now ?
					  (d->deadline_us - now) / 1000 :
					  0));
		for (struct client *c = d->clients; c; c = c->next)
			if (!c->dead && c->subscribed && !c->ready)
				proto_append(&w, json_object_new_string(c->id));
		client_ids_foreach(d, add_awaited_status, w);
		proto_add(&u, "waiting_for", w);
		w = json_object_new_array();
		client_ids_foreach(d, add_awaited_status, w);
		proto_add(&u, "not_connected", w);
		proto_add(&r, "update", u);
	} else {
		proto_add_nullable(&r, "update", NULL);
	}
	lu = last_update_json(d);
	proto_add_nullable(&r, "last_update", lu);
	reply(q, r, NULL, 0);
}

static void cmd_list(struct request *q)
{
	struct json_object *r = proto_reply_ok(q->cmd, q->m->obj),
			   *arr = json_object_new_array();

	for (struct session *s = q->d->sessions; s; s = s->next)
		if (q->c->admin || s->uid == q->c->uid)
			proto_append(&arr, session_json(s, true));
	proto_add(&r, "sessions", arr);
	reply(q, r, NULL, 0);
}

static bool idle(struct request *q)
{
	if (q->d->phase == PHASE_IDLE)
		return true;
	fail(q, PROTO_E_STATE, "an update is %s; wait for it or ABORT it",
	     phase_name(q->d->phase));
	return false;
}

static void cmd_load(struct request *q)
{
	const char *kernel = q->a.kernel, *initrd = q->a.initrd;
	const char *cmdline = q->a.cmdline;
	_cleanup_free_ char *proc = NULL;
	bool reuse = q->a.reuse_cmdline;
	char err[512];
	int r;

	if (!idle(q))
		return;
	if (!!cmdline == reuse) {
		fail(q, PROTO_E_BAD_REQUEST,
		     "give exactly one of \"cmdline\" and \"reuse_cmdline\":true");
		return;
	}
	if (reuse) {
		_cleanup_close_ int fd =
			open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
		size_t len = 0;

		r = fd < 0 ? -errno : read_all_fd(fd, 65536, &proc, &len);
		if (r < 0) {
			fail(q, PROTO_E_INTERNAL,
			     "cannot read /proc/cmdline: %s", strerror(-r));
			return;
		}
		while (len && (proc[len - 1] == '\n' || proc[len - 1] == ' '))
			proc[--len] = '\0';
		cmdline = proc;
	}
	r = kexec_load(kernel, initrd, cmdline, err, sizeof(err));
	if (r < 0) {
		fail(q, PROTO_E_KERNEL, "%s", err);
		return;
	}
	log_notice("kernel %s loaded (initrd %s) with command line: %s", kernel,
		   initrd ? initrd : "none", cmdline);
	reply_ok(q);
}

static void cmd_unload(struct request *q)
{
	int r;

	if (!idle(q))
		return;
	r = kexec_unload();
	if (r < 0) {
		fail(q, PROTO_E_KERNEL, "unloading the kexec kernel failed: %s",
		     strerror(-r));
		return;
	}
	log_notice("kexec kernel unloaded");
	reply_ok(q);
}

static void cmd_kexec(struct request *q)
{
	struct daemon *d = q->d;
	int64_t timeout = q->a.timeout ? q->a.timeout : d->cfg.timeout_s;
	bool force = q->a.force;
	char left[512] = "";
	size_t len = 0;

	if (!idle(q))
		return;
	if (!kexec_loaded()) {
		fail(q, PROTO_E_NO_KERNEL,
		     "no kernel is loaded for kexec; load one with: luoctl load KERNEL --initrd "
		     "INITRD --reuse-cmdline");
		return;
	}
	/* Sessions from the last update cannot be preserved again: a kexec now
	 * would free them. Say which, unless the operator insists. */
	for (struct session *s = d->sessions; s && !force; s = s->next) {
		if (s->state == SESSION_OUTGOING)
			continue;
		if (len < sizeof(left))
			len += (size_t)snprintf(left + len, sizeof(left) - len,
						"%s%s/%s (%s)", len ? ", " : "",
						s->client, s->name,
						session_state_name(s->state));
	}
	if (len) {
		fail(q, PROTO_E_STATE,
		     "sessions from the last update are still held and would be lost (%s); let their clients claim "
		     "and finish them, release them (luoctl release) or force the update (luoctl kexec --force)",
		     left);
		return;
	}
	/* luod's own reboot skips systemd-shutdown, which is what carries the
	 * other units' fd stores across the kexec. */
	if (d->cfg.reboot_mode == REBOOT_DIRECT && !force &&
	    systemd_version() >= 261 &&
	    systemd_preserved_units(left, sizeof(left)) > 0) {
		fail(q, PROTO_E_STATE,
		     "reboot_mode = direct skips systemd-shutdown, so units %s would lose the fd stores systemd "
		     "preserves for them; set reboot_mode = auto in luod.conf or force the update (luoctl kexec --force)",
		     left);
		return;
	}
	q->c->kexec_request = json_object_get(q->m->obj);
	update_start(d, q->c, (unsigned)timeout, force);
}

static void cmd_abort(struct request *q)
{
	if (q->d->phase != PHASE_PREPARING) {
		fail(q, PROTO_E_STATE, "no update is being prepared");
		return;
	}
	reply_ok(q);
	update_abort(q->d, PROTO_E_ABORTED, "aborted by uid %u (pid %d)",
		     (unsigned)q->c->uid, (int)q->c->pid);
}

#define ARG(f) offsetof(struct args, f)
#define F(name, type, flags, member) { name, type, flags, ARG(member), 0, 0 }

static const struct field no_fields[] = { FIELDS_END };
static const struct field hello_fields[] = {
	{ "version", FIELD_INT, 0, ARG(version), INT64_MIN, INT64_MAX },
	FIELDS_END
};
static const struct field name_fields[] = {
	F("name", FIELD_NAME, FIELD_MANDATORY, name),
	FIELDS_END
};
static const struct field claim_fields[] = {
	F("name", FIELD_NAME, 0, name),
	FIELDS_END
};
static const struct field not_ready_fields[] = {
	F("reason", FIELD_STRING, 0, reason),
	FIELDS_END
};
static const struct field load_fields[] = {
	F("kernel", FIELD_PATH, FIELD_MANDATORY, kernel),
	F("initrd", FIELD_PATH, 0, initrd),
	F("cmdline", FIELD_STRING, 0, cmdline),
	F("reuse_cmdline", FIELD_BOOL, 0, reuse_cmdline),
	FIELDS_END
};
static const struct field kexec_fields[] = {
	{ "timeout", FIELD_INT, 0, ARG(timeout), 1, 86400 },
	F("force", FIELD_BOOL, 0, force),
	FIELDS_END
};
/* Every request's: "cmd" was read to find the command. */
static const struct field common_fields[] = {
	{ "id", FIELD_NAME, 0, 0, 0, 0 },
	FIELDS_END
};

static const struct command {
	const char *name;
	void (*run)(struct request *q);
	const struct field *fields;
	bool admin;
	bool binds_id; /* "id" names this connection's client, not a target */
} commands[] = {
	{ "HELLO", cmd_hello, hello_fields, false, true },
	{ "SUBSCRIBE", cmd_subscribe, no_fields, false, true },
	{ "CREATE_SESSION", cmd_create_session, name_fields, false, true },
	{ "READY", cmd_ready, no_fields, false, true },
	{ "NOT_READY", cmd_not_ready, not_ready_fields, false, true },
	{ "CLAIM", cmd_claim, claim_fields, false, true },
	{ "FINISHED", cmd_finished, name_fields, false, true },
	{ "RELEASE", cmd_release, name_fields, false, false },
	{ "REATTACH", cmd_reattach, name_fields, false, true },
	{ "LEAVE", cmd_leave, no_fields, false, true },
	{ "STATUS", cmd_status, no_fields, false, false },
	{ "LIST", cmd_list, no_fields, false, false },
	{ "LOAD", cmd_load, load_fields, true, false },
	{ "UNLOAD", cmd_unload, no_fields, true, false },
	{ "KEXEC", cmd_kexec, kexec_fields, true, false },
	{ "ABORT", cmd_abort, no_fields, true, false },
};

/* Tests: luod dies as a request comes, or once handled with its reply
 * still queued: the variable says CMD, or CMD:ID for one client's. */
static void test_crash(const char *var, const char *cmd, const char *id)
{
	const char *v = LUOD_TEST_HOOKS ? getenv(var) : NULL;
	const char *colon = v ? strchr(v, ':') : NULL;
	size_t n = colon ? (size_t)(colon - v) : (v ? strlen(v) : 0);

	if (!v || !cmd || strlen(cmd) != n || strncmp(v, cmd, n))
		return;
	if (!colon || (id && streq(colon + 1, id)))
		abort();
}

void command_dispatch(struct daemon *d, struct client *c, struct proto_msg *m)
{
	struct request q = { .d = d,
			     .c = c,
			     .m = m,
			     .cmd = proto_get_string(m->obj, "cmd"),
			     .a = { .version = PROTO_VERSION } };
	const struct command *cmd = NULL;
	const char *id = NULL;
	char err[256];

	for (size_t i = 0; q.cmd && !cmd && i < ARRAY_SIZE(commands); i++)
		if (streq(commands[i].name, q.cmd))
			cmd = &commands[i];
	if (!q.cmd) {
		q.cmd = NULL;
		fail(&q, PROTO_E_BAD_REQUEST,
		     "no \"cmd\" string in the request");
		return;
	}
	if (!cmd) {
		fail(&q, PROTO_E_UNKNOWN_COMMAND,
		     "unknown command '%.64s'; see docs/PROTOCOL.md", q.cmd);
		return;
	}
	if (fields_dispatch(m->obj, common_fields, &id, err, sizeof(err)) < 0) {
		fail(&q, PROTO_E_BAD_REQUEST, "%s", err);
		return;
	}
	if (cmd->admin && !c->admin) {
		fail(&q, PROTO_E_PERMISSION,
		     "%s is for root or the admin group; uid %u is neither",
		     q.cmd, (unsigned)c->uid);
		return;
	}
	if (fields_dispatch(m->obj, cmd->fields, &q.a, err, sizeof(err)) < 0) {
		fail(&q, PROTO_E_BAD_REQUEST, "%s: %s", q.cmd, err);
		return;
	}
	if (cmd->binds_id) {
		if (id && c->id[0] && !streq(id, c->id)) {
			fail(&q, PROTO_E_BAD_REQUEST,
			     "this connection speaks for client %s; open another connection for %s",
			     c->id, id);
			return;
		}
		if (id && !c->id[0])
			snprintf(c->id, sizeof(c->id), "%s", id);
		q.id = c->id[0] ? c->id : NULL;
	} else {
		q.id = id ? id : (c->id[0] ? c->id : NULL);
	}
	test_crash("LUOD_TEST_CRASH_ON", q.cmd, q.id);
	cmd->run(&q);
	test_crash("LUOD_TEST_CRASH_AFTER", q.cmd, q.id);
}
