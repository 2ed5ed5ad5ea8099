// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Where luod's memory lives: across a kexec in a memfd preserved in its own
 * LUO session, and across a restart of luod within one boot in a copy under
 * the state directory (the kernel hands a session out only once per boot).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "daemon.h"
#include "log.h"
#include "luo.h"
#include "manifest.h"
#include "notify.h"

static void session_to_manifest(const struct session *s,
				struct manifest_session *ms)
{
	snprintf(ms->client, sizeof(ms->client), "%s", s->client);
	snprintf(ms->name, sizeof(ms->name), "%s", s->name);
	snprintf(ms->kernel_name, sizeof(ms->kernel_name), "%s",
		 s->kernel_name);
	ms->uid = s->uid;
	ms->generation = s->generation;
	ms->created_us = s->created_us;
	ms->incoming = s->state != SESSION_OUTGOING;
	ms->claimed = s->state == SESSION_CLAIMED;
	ms->left = s->left;
}

/* -ENOMEM, never an empty manifest: written over the good copy or carried
 * across the kexec, that would lose every session. */
static int manifest_from_daemon(struct daemon *d, struct manifest *m,
				bool outgoing_only)
{
	size_t n = 0;

	for (struct session *s = d->sessions; s; s = s->next)
		n++;
	*m = (struct manifest){ .generation = d->generation,
				.next_serial = d->next_serial };
	m->sessions = calloc(n ? n : 1, sizeof(*m->sessions));
	if (!m->sessions)
		return -ENOMEM;
	for (struct session *s = d->sessions; s; s = s->next)
		if (!outgoing_only || s->state == SESSION_OUTGOING)
			session_to_manifest(s, &m->sessions[m->n_sessions++]);
	return 0;
}

static int manifest_to_daemon(struct daemon *d, const struct manifest *m,
			      bool across_kexec)
{
	for (size_t i = 0; i < m->n_sessions; i++) {
		const struct manifest_session *ms = &m->sessions[i];
		struct session *s;

		s = calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		snprintf(s->client, sizeof(s->client), "%s", ms->client);
		snprintf(s->name, sizeof(s->name), "%s", ms->name);
		snprintf(s->kernel_name, sizeof(s->kernel_name), "%s",
			 ms->kernel_name);
		s->uid = ms->uid;
		s->generation = ms->generation;
		s->created_us = ms->created_us;
		/* After a restart of luod, what it had created or handed out
		 * lives on only in its clients: detached until they REATTACH. */
		s->state = across_kexec || (ms->incoming && !ms->claimed) ?
				   SESSION_INCOMING :
			   ms->claimed ? SESSION_CLAIMED :
					 SESSION_OUTGOING;
		s->fd = -1;
		s->left = ms->left && s->state == SESSION_OUTGOING;
		if (session_link(d, s) < 0) {
			free(s);
			return -ENOMEM;
		}
	}
	return 0;
}

/* The copy on disk and its journal stay as they are: the next loop turn
 * tries again (state_dirty). */
static int log_oom_keep(const char *path)
{
	log_error("out of memory writing luod's state%s%s: the copy there and its journal are kept, and luod tries again",
		  path ? " to " : "", path ? path : "");
	return -ENOMEM;
}

static char *run_path(struct daemon *d, const char *suffix)
{
	char *p = NULL;

	if (asprintf(&p, "%s/state.json%s", d->cfg.state_dir, suffix) < 0)
		return NULL;
	return p;
}

int state_save_run(struct daemon *d)
{
	_cleanup_free_ char *path = run_path(d, ""), *tmp = run_path(d, ".tmp"),
			    *jpath = run_path(d, ".journal"), *text = NULL;
	_cleanup_close_ int fd = -1;
	struct manifest m;
	size_t m_sessions;
	int r;

	if (!path || !tmp || !jpath ||
	    manifest_from_daemon(d, &m, false) < 0)
		return log_oom_keep(path);
	m.journal_seq = d->journal_seq;
	m_sessions = m.n_sessions;
	m.last_timeline = d->last_timeline ? json_object_get(d->last_timeline) :
					     NULL;
	text = manifest_encode(&m);
	manifest_clear(&m);
	if (!text)
		return log_oom_keep(path);

	/* Write, fsync, rename: a crash leaves the old copy or the new one. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_errno(-errno, "cannot write %s", tmp);
	r = write_all(fd, text, strlen(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		return log_errno(r, "cannot save luod's state to %s", path);

	/* The copy has every record up to journal_seq: start the journal
	 * afresh. Were luod to die before this, the records replay as no-ops. */
	if (d->journal_fd < 0)
		d->journal_fd = open(
			jpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (d->journal_fd < 0 || ftruncate(d->journal_fd, 0) < 0) {
		log_errno(-errno,
			  "cannot start %s; every change rewrites %s instead",
			  jpath, path);
		d->journal_fd = safe_close(d->journal_fd);
	}
	d->journal_records = 0;
	d->journal_limit = 2 * m_sessions + 256;
	return 0;
}

/* A record the journal could not take makes the next loop turn write the
 * whole copy instead; so does a journal grown past twice the sessions. */
static void journal_write(struct daemon *d, char *line)
{
	if (!line || d->journal_fd < 0 ||
	    write_all(d->journal_fd, line, strlen(line)) < 0 ||
	    ++d->journal_records > d->journal_limit)
		d->state_dirty = true;
	free(line);
}

static void journal_session(struct daemon *d, const struct session *s,
			    bool gone)
{
	struct manifest_session ms = { 0 };

	if (gone) {
		journal_write(d, manifest_journal_del(++d->journal_seq,
						      s->kernel_name));
		return;
	}
	session_to_manifest(s, &ms);
	journal_write(d, manifest_journal_put(++d->journal_seq, d->next_serial,
					      &ms));
}

static void journal_event(struct daemon *d, struct json_object *event)
{
	journal_write(d, manifest_journal_event(++d->journal_seq, event));
}

/* From now on every change to the session table and to the last
 * update's timeline goes to the journal. */
void state_init(struct daemon *d)
{
	d->journal_session = journal_session;
	d->journal_event = journal_event;
}

static int load_journal(struct daemon *d, struct manifest *m)
{
	_cleanup_free_ char *path = run_path(d, ".journal");
	_cleanup_close_ int fd = -1;
	char err[256];
	size_t len;
	int r;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ?
			       0 :
			       log_errno(-errno, "cannot read %s", path);
	/* Declared past the early returns: gcc 12's -fanalyzer takes it
	 * for uninitialised on them otherwise. */
	_cleanup_free_ char *text = NULL;

	r = read_all_fd(fd, MANIFEST_MAX_BYTES, &text, &len);
	if (r < 0)
		return log_errno(r, "cannot read %s", path);
	r = manifest_journal_apply(m, text, len, err, sizeof(err));
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		log_error(
			"%s: %s; the changes before it are applied, those after it are lost: sessions they "
			"created are still held by luod-keeper or their clients, which re-attach them",
			path, err);
	else if (r > 0)
		log_info("%s: %d changes applied", path, r);
	return 0;
}

/* The copy under state_dir: -ENOENT when there is none, -EBADMSG with the
 * reason logged when it is damaged. */
static int read_run_copy(struct daemon *d, const char *path, struct manifest *m)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int fd = -1;
	char err[256];
	size_t len;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = read_all_fd(fd, MANIFEST_MAX_BYTES, &text, &len);
	if (r < 0)
		return log_errno(r, "cannot read %s", path);
	r = manifest_decode(text, len, m, err, sizeof(err));
	if (r < 0)
		log_error("%s is damaged (%s); luod starts without it", path,
			  err);
	return r;
}

static int load_run_copy(struct daemon *d)
{
	_cleanup_free_ char *path = run_path(d, "");
	struct manifest m;
	int r;

	if (!path)
		return -ENOMEM;
	r = read_run_copy(d, path, &m);
	if (r < 0)
		return r;
	r = load_journal(d, &m);
	if (r < 0) {
		manifest_clear(&m);
		return r;
	}
	d->journal_seq = m.journal_seq;
	d->state_dirty = true; /* fold the journal into a new copy */
	d->generation = m.generation;
	d->next_serial = m.next_serial;
	d->last_timeline = take_ptr(m.last_timeline);
	r = manifest_to_daemon(d, &m, false);
	manifest_clear(&m);
	log_notice("restarted within generation %" PRIu64
		   ": state read from %s",
		   d->generation, path);
	return r;
}

/* The generation of the copy under state_dir, or -errno. */
static int run_copy_generation(struct daemon *d, uint64_t *generation)
{
	_cleanup_free_ char *path = run_path(d, "");
	struct manifest m;
	int r;

	if (!path)
		return -ENOMEM;
	r = read_run_copy(d, path, &m);
	if (r < 0)
		return r;
	*generation = m.generation;
	manifest_clear(&m);
	return 0;
}

/*
 * The manifest that came across a kexec, from luod's state session or from
 * systemd's fd store. 1 when read; the copy under state_dir then holds it,
 * so the caller may let go of the original.
 */
static int load_across_kexec(struct daemon *d, int mfd, const char *from)
{
	_cleanup_free_ char *text = NULL;
	struct manifest m;
	uint64_t run_generation = 0;
	char err[256];
	size_t len;
	int r;

	r = read_all_fd(mfd, MANIFEST_MAX_BYTES, &text, &len);
	if (r < 0)
		return log_errno(r, "cannot read luod's manifest from %s",
				 from);
	r = manifest_decode(text, len, &m, err, sizeof(err));
	if (r < 0) {
		log_error(
			"luod's manifest from the last update (in %s) is damaged (%s): the sessions it came "
			"with cannot be mapped to their clients and stay pinned until the next update",
			from, err);
		return 0;
	}
	/* A luod before us read it and died before letting go of it. */
	if (run_copy_generation(d, &run_generation) == 0 &&
	    run_generation > m.generation) {
		manifest_clear(&m);
		log_notice("the manifest in %s was read by an earlier luod",
			   from);
		return load_run_copy(d) == -ENOMEM ? -ENOMEM : 1;
	}
	d->generation = m.generation + 1;
	d->next_serial = m.next_serial;
	d->last_timeline = take_ptr(m.timeline);
	r = manifest_to_daemon(d, &m, true);
	manifest_clear(&m);
	if (r < 0)
		return r;
	/* When this kernel started, in the old kernel's terms: reboot to
	 * kernel_up is the kexec itself, kernel_up to luod_up the boot. */
	timeline_add_at(d, "kernel_up", NULL, NULL, kernel_start_us());
	timeline_add(d, "luod_up", NULL, NULL);
	/* The copy must be on disk before the original is let go of, or a
	 * crash in between would forget every session. */
	r = state_save_run(d);
	if (r < 0)
		return r;
	log_notice("live update %" PRIu64
		   " arrived with %u sessions (manifest from %s)",
		   d->generation, sessions_count(d, SESSION_INCOMING), from);
	return 1;
}

int state_load(struct daemon *d)
{
	_cleanup_close_ int sfd = -1, mfd = -1;
	char stored[FDNAME_MAX + 1];
	int r;

	sfd = device_retrieve_session(d, LUOD_STATE_SESSION);
	if (sfd >= 0) {
		mfd = luo_retrieve_fd(sfd, LUOD_STATE_TOKEN);
		if (mfd < 0)
			return log_errno(
				mfd,
				"cannot retrieve luod's manifest from its state session");
		r = load_across_kexec(d, mfd, "luod's state session");
		if (r > 0 && luo_finish(sfd) < 0)
			log_warning(
				"cannot finish luod's state session; it is freed when luod closes it");
		return r < 0 ? r : 0;
	}
	if (sfd != -ENOENT && sfd != -EINVAL)
		return log_errno(sfd, "cannot retrieve luod's state session %s",
				 LUOD_STATE_SESSION);

	/* reboot_mode = systemd: systemd carried the manifest. */
	mfd = fdstore_take_manifest(stored, sizeof(stored));
	if (mfd >= 0) {
		r = load_across_kexec(d, mfd, "systemd's fd store");
		if (r > 0)
			fdstore_forget_manifest(stored);
		return r < 0 ? r : 0;
	}

	/* No update brought this boot up (ENOENT), or a luod before us
	 * already took the state session (EINVAL): the copy under /run is
	 * all there is. */
	r = load_run_copy(d);
	if (r == -ENOENT && sfd == -EINVAL)
		log_error(
			"luod's state session was already taken this boot and %s/state.json is missing: "
			"sessions from the last update cannot be mapped to their clients",
			d->cfg.state_dir);
	if (r == -ENOENT)
		log_info("no previous live update: starting at generation 0");
	return r == -ENOMEM ? r : 0;
}

/* What goes across the kexec: the outgoing sessions and this update's
 * timeline. NULL when out of memory. */
char *state_kexec_manifest(struct daemon *d)
{
	struct manifest m;
	char *text;

	if (manifest_from_daemon(d, &m, true) < 0)
		return NULL;
	m.timeline = d->timeline ? json_object_get(d->timeline) : NULL;
	m.next_serial = d->next_serial;
	text = manifest_encode(&m);
	manifest_clear(&m);
	return text;
}

int state_preserve(struct daemon *d, const char *text, int *state_session_fd)
{
	_cleanup_close_ int sfd = -1, mfd = -1;
	int r;

	mfd = memfd_create("luod-manifest", MFD_CLOEXEC);
	if (mfd < 0)
		return log_errno(-errno, "memfd_create");
	r = write_all(mfd, text, strlen(text));
	if (r < 0)
		return log_errno(r, "cannot write the manifest memfd");
	sfd = device_create_session(d, LUOD_STATE_SESSION);
	if (sfd < 0)
		return log_errno(sfd, "cannot create luod's state session %s",
				 LUOD_STATE_SESSION);
	r = luo_preserve_fd(sfd, mfd, LUOD_STATE_TOKEN);
	if (r < 0)
		return log_errno(r, "cannot preserve luod's manifest");
	*state_session_fd = take_fd(&sfd);
	return 0;
}
