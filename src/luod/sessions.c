// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sessions luod holds for its clients, keyed by (client id, name), and
 * the copies its custodians (luod-keeper, systemd's fd store) hold of each.
 * Every change is told to the journal through d->journal_session.
 */
#include <inttypes.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "luo.h"

const char *session_state_name(enum session_state st)
{
	switch (st) {
	case SESSION_OUTGOING:
		return "outgoing";
	case SESSION_INCOMING:
		return "incoming";
	case SESSION_CLAIMED:
		return "claimed";
	}
	return "?";
}

struct session *session_find(struct daemon *d, const char *client,
			     const char *name)
{
	for (struct session *s = sessions_of(d, client); s; s = s->next_of_id)
		if (streq(s->name, name))
			return s;
	return NULL;
}

/* Kernel names are unique; only restarts and REATTACH look one up. */
struct session *session_by_kernel_name(struct daemon *d, const char *kname)
{
	for (struct session *s = d->sessions; s; s = s->next)
		if (streq(s->kernel_name, kname))
			return s;
	return NULL;
}

unsigned sessions_count(struct daemon *d, enum session_state st)
{
	unsigned n = 0;

	for (struct session *s = d->sessions; s; s = s->next)
		n += s->state == st;
	return n;
}

/*
 * Kernel names are one namespace for the whole machine and hold 63 bytes.
 * The serial makes ours unique; the rest only helps a person reading
 * /proc/PID/fd or the kernel's debug output.
 */
struct name_ctx {
	struct daemon *d;
	const char *client, *name;
};

static void next_kernel_name(char out[64], void *data)
{
	struct name_ctx *n = data;

	snprintf(out, 64, "luod.%" PRIu64 ".%s.%s", n->d->next_serial++,
		 n->client, n->name);
}

int session_create(struct daemon *d, const char *client, const char *name,
		   uid_t uid, struct session **out)
{
	struct name_ctx ctx = { d, client, name };
	struct session *s;
	int fd;

	if (session_find(d, client, name))
		return -EEXIST;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	fd = device_create_unique(d, next_kernel_name, &ctx, s->kernel_name);
	if (fd < 0) {
		free(s);
		return fd;
	}
	snprintf(s->client, sizeof(s->client), "%s", client);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->uid = uid;
	s->generation = d->generation;
	s->created_us = now_real_us();
	s->state = SESSION_OUTGOING;
	s->fd = fd;
	if (session_link(d, s) < 0) {
		close(fd); /* the kernel drops the new, empty session */
		free(s);
		return -ENOMEM;
	}
	session_hold(d, s);
	session_changed(d, s);
	log_info("session %s/%s created for uid %u as %s", client, name,
		 (unsigned)uid, s->kernel_name);
	*out = s;
	return 0;
}

/* Retrieve an incoming session from the kernel, the first time it is claimed. */
int session_claim(struct daemon *d, struct session *s)
{
	int fd;

	if (s->state != SESSION_INCOMING)
		return 0;
	/* systemd retrieved it already if it carried it across the kexec. */
	fd = s->fd >= 0 ? s->fd :
			  device_retrieve_session(d, s->kernel_name);
	if (fd < 0)
		return log_errno(
			fd,
			"cannot retrieve session %s/%s (%s) from the kernel",
			s->client, s->name, s->kernel_name);
	s->fd = fd;
	s->state = SESSION_CLAIMED;
	/* From the kernel's retrieve to here is the only moment a crash of
	 * luod can still finish the session; the keeper holds it from now. */
	session_hold(d, s);
#if LUOD_TEST_HOOKS
	if (getenv("LUOD_TEST_CRASH_AFTER_RETRIEVE"))
		abort(); /* tests: die in the middle of a CLAIM */
#endif
	session_changed(d, s);
	timeline_add(d, "claim", s->client, s->name);
	return 0;
}

void session_changed(struct daemon *d, const struct session *s)
{
	if (d->journal_session)
		d->journal_session(d, s, false);
}

static void hold_fdstore(struct session *s)
{
	int r = fdstore_hold(s->kernel_name, s->fd);

	s->in_fdstore = r > 0;
	if (r < 0)
		log_errno(r, "cannot put session %s/%s (%s) into systemd's fd store, so an update with reboot_mode = systemd is refused until it is there (luod-keeper still holds it)",
			  s->client, s->name, s->kernel_name);
}

/* Every fd luod holds has a copy with each custodian, which outlive luod. */
void session_hold(struct daemon *d, struct session *s)
{
	if (s->fd < 0)
		return;
	keeper_hold(s->kernel_name, s->fd);
	hold_fdstore(s);
}

/* The owner no longer needs to be asked: the session is complete. */
void session_set_left(struct daemon *d, struct session *s, bool left)
{
	if (s->left == left || s->state != SESSION_OUTGOING)
		return;
	s->left = left;
	session_changed(d, s);
}

void sessions_leave(struct daemon *d, const char *id)
{
	for (struct session *s = sessions_of(d, id); s; s = s->next_of_id)
		session_set_left(d, s, true);
}

/*
 * The detached session a custodian's fd is, or NULL when it is not ours to
 * serve (no record, or luod has it): then fd is closed here, and the
 * custodian's own copy stays where it is.
 */
static struct session *adoptable(struct daemon *d, const char *kname, int fd,
				 const char *unknown)
{
	struct session *s = session_by_kernel_name(d, kname);

	if (s && s->fd < 0)
		return s;
	if (!s)
		log_warning("%s %s, which luod's manifest does not know, so it stays there",
			    unknown, kname);
	close(fd);
	return NULL;
}

/* luod-keeper hands back what it held for a previous luod. */
static void adopt_from_keeper(struct daemon *d, const char *kname, int fd)
{
	struct session *s = adoptable(d, kname, fd, "luod-keeper holds");

	if (!s)
		return;
	/* Incoming in the manifest but held: luod died in the middle of a
	 * CLAIM, after the kernel's retrieve. */
	if (s->state == SESSION_INCOMING)
		s->state = SESSION_CLAIMED;
	s->fd = fd;
	hold_fdstore(s);
	session_changed(d, s);
	log_notice("re-attached session %s/%s (%s, %s) from luod-keeper",
		   s->client, s->name, kname, session_state_name(s->state));
}

/* Connect to (or start) luod-keeper, take back what it holds, and hand it
 * every session luod holds. */
void sessions_keep(struct daemon *d)
{
	if (!keeper_start(d, adopt_from_keeper))
		return;
	for (struct session *s = d->sessions; s; s = s->next)
		keeper_hold(s->kernel_name, s->fd);
}

/* After each event: a keeper lost is replaced, and given everything. */
void sessions_keeper_check(struct daemon *d)
{
	char how[128];
	unsigned n = 0;

	if (!keeper_take_lost(how, sizeof(how)))
		return;
	for (struct session *s = d->sessions; s; s = s->next)
		n += s->fd >= 0;
	log_warning("luod-keeper %s, so luod starts a new one and hands it the %u sessions it holds",
		    how, n);
	keeper_detach();
	sessions_keep(d);
}

/* Sessions systemd hands back: after a restart of luod, or those it
 * retrieved for luod across systemctl kexec (still incoming for clients). */
void sessions_adopt_fdstore(struct daemon *d)
{
	char kname[LIVEUPDATE_SESSION_NAME_LENGTH];
	int fd;

	while ((fd = fdstore_take_session(kname)) >= 0) {
		struct session *s = adoptable(
			d, kname, fd, "systemd's fd store holds session");

		if (!s)
			continue;
		s->fd = fd;
		s->in_fdstore = true;
		/* An incoming session the keeper held would read, to the next
		 * luod, as one luod died in the middle of claiming. */
		if (s->state != SESSION_INCOMING)
			keeper_hold(s->kernel_name, s->fd);
		log_notice("session %s/%s (%s, %s) handed back by systemd",
			   s->client, s->name, kname,
			   session_state_name(s->state));
	}
}

/* File a new session under its client id and in the list of all. */
int session_link(struct daemon *d, struct session *s)
{
	struct client_id *ci = client_id_get(d, s->client);

	if (!ci)
		return -ENOMEM;
	s->next_of_id = ci->sessions;
	ci->sessions = s;
	s->prev = NULL;
	s->next = d->sessions;
	if (s->next)
		s->next->prev = s;
	d->sessions = s;
	return 0;
}

static void session_unlink(struct daemon *d, struct session *s)
{
	struct client_id *ci = client_id_find(d, s->client);

	for (struct session **pp = ci ? &ci->sessions : NULL; pp && *pp;
	     pp = &(*pp)->next_of_id) {
		if (*pp == s) {
			*pp = s->next_of_id;
			break;
		}
	}
	client_id_gc(d, ci);
	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	safe_close(s->fd);
	free(s);
}

/* luod lets go of the session for good: the keeper and the saved state
 * forget it too. */
void session_forget(struct daemon *d, struct session *s)
{
	if (s->fd >= 0)
		keeper_drop(s->kernel_name);
	if (s->in_fdstore)
		fdstore_drop(s->kernel_name);
	s->in_fdstore = false;
	if (d->journal_session)
		d->journal_session(d, s, true);
	session_unlink(d, s);
}

/* luod exits: its memory goes, the keeper and the saved state keep all. */
void sessions_free(struct daemon *d)
{
	while (d->sessions)
		session_unlink(d, d->sessions);
}

/* Let go of a session; an incoming one is retrieved and finished first,
 * which is what frees its pinned memory. */
void session_release(struct daemon *d, struct session *s, const char *why)
{
	if (s->state == SESSION_INCOMING && s->fd >= 0) {
		luo_finish(s->fd); /* retrieved by systemd for luod */
	} else if (s->state == SESSION_INCOMING) {
		int fd = device_retrieve_session(d, s->kernel_name);

		if (fd >= 0) {
			luo_finish(fd);
			close(fd);
		} else {
			log_errno(fd, "retrieving %s to release it",
				  s->kernel_name);
		}
	}
	log_notice("session %s/%s (%s, %s%s, uid %u) released: %s", s->client,
		   s->name, s->kernel_name, session_state_name(s->state),
		   session_detached(s) ? ", detached" : "", (unsigned)s->uid,
		   why);
	session_forget(d, s);
}

/* When the sessions that came across the last kexec arrived: luod_up. */
static uint64_t arrival_us(struct daemon *d)
{
	uint64_t t = 0;
	int64_t v;

	for (size_t i = 0;
	     d->last_timeline && i < json_object_array_length(d->last_timeline);
	     i++) {
		struct json_object *e =
			json_object_array_get_idx(d->last_timeline, i);

		if (streq(proto_get_string(e, "event"), "luod_up") &&
		    proto_get_int64(e, "t_us", &v))
			t = (uint64_t)v;
	}
	return t ? t : now_real_us();
}

uint64_t grace_deadline_us(struct daemon *d)
{
	return arrival_us(d) + (uint64_t)d->cfg.grace_s * 1000000;
}

/* Unclaimed sessions stay pinned in memory; past the grace period nobody is
 * coming for them. The deadline is wall-clock so a restarted luod keeps it. */
void grace_arm(struct daemon *d)
{
	uint64_t deadline = grace_deadline_us(d), now = now_real_us(), left;

	if (!sessions_count(d, SESSION_INCOMING) || !d->cfg.grace_s)
		return;
	left = deadline > now ? deadline - now : 1;
	timer_arm(d->grace.fd, left);
	log_info("%u unclaimed sessions will be released in %" PRIu64
		 " s unless claimed",
		 sessions_count(d, SESSION_INCOMING), left / 1000000);
}

void grace_expired(struct daemon *d, struct watch *w, uint32_t events)
{
	uint64_t ticks;
	unsigned n = 0;

	if (read(w->fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	for (struct session *s = d->sessions, *next; s; s = next) {
		next = s->next;
		if (s->state != SESSION_INCOMING)
			continue;
		session_release(
			d, s,
			"nobody claimed it within the grace period (luod --grace-period)");
		n++;
	}
	if (n)
		log_warning(
			"released %u unclaimed sessions after the %u s grace period; their memory is freed",
			n, d->cfg.grace_s);
}
