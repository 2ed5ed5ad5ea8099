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

static void manifest_from_daemon(struct daemon *d, struct manifest *m,
				 bool outgoing_only)
{
	size_t n = 0;

	for (struct session *s = d->sessions; s; s = s->next)
		n++;
	*m = (struct manifest){ .generation = d->generation,
				.next_serial = d->next_serial };
	m->sessions = calloc(n ? n : 1, sizeof(*m->sessions));
	if (!m->sessions)
		return;
	for (struct session *s = d->sessions; s; s = s->next) {
		struct manifest_session *ms;

		if (outgoing_only && s->state != SESSION_OUTGOING)
			continue;
		ms = &m->sessions[m->n_sessions++];
		snprintf(ms->client, sizeof(ms->client), "%s", s->client);
		snprintf(ms->name, sizeof(ms->name), "%s", s->name);
		snprintf(ms->kernel_name, sizeof(ms->kernel_name), "%s",
			 s->kernel_name);
		ms->uid = s->uid;
		ms->generation = s->generation;
		ms->created_us = s->created_us;
		ms->incoming = s->state != SESSION_OUTGOING;
		ms->claimed = s->state == SESSION_CLAIMED;
	}
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
		if (session_detached(s))
			log_warning(
				"session %s/%s (%s, %s) is detached: luod restarted; it survives only if its client "
				"still holds it, and comes back when the client re-attaches it",
				ms->client, ms->name, ms->kernel_name,
				session_state_name(s->state));
		s->next = d->sessions;
		d->sessions = s;
	}
	return 0;
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
			    *text = NULL;
	_cleanup_close_ int fd = -1;
	struct manifest m;
	int r;

	if (!path || !tmp)
		return -ENOMEM;
	manifest_from_daemon(d, &m, false);
	m.last_timeline = d->last_timeline ? json_object_get(d->last_timeline) :
					     NULL;
	text = manifest_encode(&m);
	manifest_clear(&m);
	if (!text)
		return -ENOMEM;

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
	return 0;
}

static int load_run_copy(struct daemon *d)
{
	_cleanup_free_ char *path = run_path(d, ""), *text = NULL;
	_cleanup_close_ int fd = -1;
	struct manifest m;
	char err[256];
	size_t len;
	int r;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = read_all_fd(fd, MANIFEST_MAX_BYTES, &text, &len);
	if (r < 0)
		return log_errno(r, "cannot read %s", path);
	r = manifest_decode(text, len, &m, err, sizeof(err));
	if (r < 0) {
		log_error("%s is damaged (%s); luod starts without it", path,
			  err);
		return r;
	}
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

int state_load(struct daemon *d)
{
	_cleanup_close_ int sfd = -1, mfd = -1;
	_cleanup_free_ char *text = NULL;
	struct manifest m;
	char err[256];
	size_t len;
	int r;

	sfd = luo_retrieve_session(d->dev_fd, LUOD_STATE_SESSION);
	if (sfd == -ENOENT || sfd == -EINVAL) {
		/* No update brought this boot up (ENOENT), or a luod before us
		 * already took the state session (EINVAL): the copy under /run
		 * is all there is. */
		r = load_run_copy(d);
		if (r == -ENOENT && sfd == -EINVAL)
			log_error(
				"luod's state session was already taken this boot and %s/state.json is missing: "
				"sessions from the last update cannot be mapped to their clients",
				d->cfg.state_dir);
		if (r == -ENOENT)
			log_info(
				"no previous live update: starting at generation 0");
		return r == -ENOMEM ? r : 0;
	}
	if (sfd < 0)
		return log_errno(sfd, "cannot retrieve luod's state session %s",
				 LUOD_STATE_SESSION);

	mfd = luo_retrieve_fd(sfd, LUOD_STATE_TOKEN);
	if (mfd < 0)
		return log_errno(
			mfd,
			"cannot retrieve luod's manifest from its state session");
	r = read_all_fd(mfd, MANIFEST_MAX_BYTES, &text, &len);
	if (r < 0)
		return log_errno(r, "cannot read luod's manifest");
	r = manifest_decode(text, len, &m, err, sizeof(err));
	if (r < 0) {
		log_error(
			"luod's manifest from the last update is damaged (%s): the sessions it came with cannot "
			"be mapped to their clients and stay pinned until the next update",
			err);
		return 0;
	}
	d->generation = m.generation + 1;
	d->next_serial = m.next_serial;
	d->last_timeline = take_ptr(m.timeline);
	r = manifest_to_daemon(d, &m, true);
	manifest_clear(&m);
	if (r < 0)
		return r;
	timeline_add(d, "luod_up", NULL, NULL);
	/* The copy must be on disk before the state session is finished, or a
	 * crash in between would forget every session. */
	r = state_save_run(d);
	if (r < 0)
		return r;
	r = luo_finish(sfd);
	if (r < 0)
		log_errno(
			r,
			"cannot finish luod's state session; it is freed when luod closes it");
	log_notice("live update %" PRIu64 " arrived with %u sessions",
		   d->generation, sessions_count(d, SESSION_INCOMING));
	return 0;
}

int state_preserve(struct daemon *d, int *state_session_fd)
{
	_cleanup_close_ int sfd = -1, mfd = -1;
	_cleanup_free_ char *text = NULL;
	struct manifest m;
	int r;

	manifest_from_daemon(d, &m, true);
	m.timeline = d->timeline ? json_object_get(d->timeline) : NULL;
	m.next_serial = d->next_serial;
	text = manifest_encode(&m);
	manifest_clear(&m);
	if (!text)
		return -ENOMEM;

	mfd = memfd_create("luod-manifest", MFD_CLOEXEC);
	if (mfd < 0)
		return log_errno(-errno, "memfd_create");
	r = write_all(mfd, text, strlen(text));
	if (r < 0)
		return log_errno(r, "cannot write the manifest memfd");
	sfd = luo_create_session(d->dev_fd, LUOD_STATE_SESSION);
	if (sfd < 0)
		return log_errno(sfd, "cannot create luod's state session %s",
				 LUOD_STATE_SESSION);
	r = luo_preserve_fd(sfd, mfd, LUOD_STATE_TOKEN);
	if (r < 0)
		return log_errno(r, "cannot preserve luod's manifest");
	*state_session_fd = take_fd(&sfd);
	return 0;
}
