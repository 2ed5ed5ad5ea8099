// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * counter: the smallest useful luod client, written against libluod only.
 *
 * It keeps a counter and 1 MiB of data in a memfd that lives through live
 * updates. Run it, run `luoctl kexec`, run it again after the reboot:
 *
 *	counter: restored value 1, blob intact
 *
 * The memfd is preserved in a session named "state" under token 1. After an
 * update the same memfd is retrieved, finished, and preserved again into a
 * fresh session (a retrieved session takes no new files), so the data goes
 * on across any number of updates.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <luod.h>

#define SESSION "state"
#define TOKEN_STATE 1
#define HEADER_SIZE 4096
#define BLOB_SIZE (1024 * 1024)
#define STATE_SIZE (HEADER_SIZE + BLOB_SIZE)
#define MAGIC 0x317265746e756f63ULL /* "counter1" */

/* At the start of the memfd; the blob follows at HEADER_SIZE. */
struct header {
	uint64_t magic;
	uint64_t counter;
	uint64_t checksum; /* FNV-1a of the blob */
};

struct state {
	int fd;
	struct header *hdr;
	uint8_t *blob;
};

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (len--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

static int map_state(struct state *s)
{
	void *p = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		       s->fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	s->hdr = p;
	s->blob = (uint8_t *)p + HEADER_SIZE;
	return 0;
}

static int new_state(struct state *s)
{
	uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	int r;

	s->fd = memfd_create("counter-state", MFD_CLOEXEC);
	if (s->fd < 0)
		return -errno;
	/* Size it now: the data lives in pages luod preserves up front. */
	if (ftruncate(s->fd, STATE_SIZE) < 0)
		return -errno;
	r = map_state(s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < BLOB_SIZE; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		s->blob[i] = (uint8_t)x;
	}
	*s->hdr = (struct header){ .magic = MAGIC,
				   .checksum = fnv1a(s->blob, BLOB_SIZE) };
	return 0;
}

static void say_error(struct luod_client *c, const char *what, int r)
{
	if (r == -EPROTO)
		fprintf(stderr, "counter: %s: luod refused: %s: %s\n", what,
			luod_last_error(c), luod_last_error_message(c));
	else
		fprintf(stderr, "counter: %s: %s\n", what, strerror(-r));
}

/*
 * Take the state back from the previous boot. Returns 1 with *s filled, 0
 * when there is nothing to restore, or -errno.
 */
static int restore(struct luod_client *c, const char *id, struct state *s)
{
	struct luod_session *sessions;
	size_t n;
	int r;

	r = luod_claim(c, SESSION, &sessions, &n);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		say_error(c, "claiming session " SESSION, r);
		return r;
	}
	if (!sessions[0].claimed) {
		/* Created earlier in this boot by a counter that has since
		 * exited: its memfd cannot be read back. Start over. */
		luod_sessions_free(sessions, n);
		r = luod_release(c, id, SESSION);
		if (r < 0)
			say_error(c, "releasing the stale session " SESSION, r);
		return r < 0 ? r : 0;
	}

	/* Retrieve before finishing: finish frees what was not retrieved. */
	s->fd = luod_session_retrieve_fd(sessions[0].fd, TOKEN_STATE);
	if (s->fd < 0) {
		say_error(c, "retrieving the memfd (token 1)", s->fd);
		luod_sessions_free(sessions, n);
		return s->fd;
	}
	fcntl(s->fd, F_SETFD, FD_CLOEXEC); /* not kept across the update */
	r = luod_session_finish(sessions[0].fd);
	if (r == 0)
		r = luod_finished(c, SESSION);
	luod_sessions_free(sessions, n);
	if (r < 0) {
		say_error(c, "finishing session " SESSION, r);
		return r;
	}
	r = map_state(s);
	if (r < 0)
		return r;
	if (s->hdr->magic != MAGIC ||
	    s->hdr->checksum != fnv1a(s->blob, BLOB_SIZE)) {
		fprintf(stderr,
			"counter: the restored blob does not match its checksum: the data was damaged in the update\n");
		return -EBADMSG;
	}
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "socket", required_argument, NULL, 's' },
		{}
	};
	const char *id = NULL, *socket_path = NULL;
	struct state s = { .fd = -1 };
	struct luod_client *c;
	struct luod_event ev;
	uint64_t counter = 0;
	int o, r, session_fd;

	while ((o = getopt_long(argc, argv, "i:s:", options, NULL)) != -1) {
		if (o == 'i')
			id = optarg;
		else if (o == 's')
			socket_path = optarg;
		else
			return 2;
	}
	if (!id) {
		fprintf(stderr, "usage: counter --id ID [--socket PATH]\n");
		return 2;
	}

	r = luod_connect(socket_path, id, &c);
	if (r < 0) {
		fprintf(stderr,
			"counter: cannot talk to luod: %s; check that luod runs, or pass --socket or set $LUOD_SOCKET if it listens elsewhere\n",
			strerror(-r));
		return 1;
	}

	r = restore(c, id, &s);
	if (r < 0)
		return 1;
	if (r > 0) {
		counter = s.hdr->counter + 1;
		printf("counter: restored value %llu, blob intact\n",
		       (unsigned long long)counter);
	} else {
		r = new_state(&s);
		if (r < 0) {
			fprintf(stderr,
				"counter: cannot create the 1 MiB memfd: %s\n",
				strerror(-r));
			return 1;
		}
		printf("counter: starting at 0\n");
	}

	/* Hand the memfd to a new session now; luod keeps it until the update. */
	r = luod_create_session(c, SESSION, &session_fd);
	if (r < 0) {
		say_error(c, "creating session " SESSION, r);
		return 1;
	}
	r = luod_session_preserve_fd(session_fd, s.fd, TOKEN_STATE);
	if (r < 0) {
		say_error(c, "preserving the memfd", r);
		return 1;
	}
	r = luod_subscribe(c);
	if (r < 0) {
		say_error(c, "subscribing to updates", r);
		return 1;
	}
	fflush(stdout);

	for (;;) {
		r = luod_next_event(c, &ev, -1);
		if (r < 0) {
			say_error(c, "waiting for an update", r);
			return 1;
		}
		if (ev.type == LUOD_EVENT_ABORTED)
			printf("counter: update aborted (%s); waiting for the next one\n",
			       ev.reason);
		if (ev.type != LUOD_EVENT_PREPARE)
			continue;
		/* Only for a client that had no session: we made our own. */
		if (ev.new_session_fd >= 0)
			close(ev.new_session_fd);
		break;
	}

	/* The checkpoint: the memfd's pages are preserved, write into them. */
	s.hdr->counter = counter;
	r = luod_ready(c);
	if (r < 0) {
		say_error(c, "telling luod we are ready", r);
		return 1;
	}
	printf("counter: saved value %llu, ready for the update\n",
	       (unsigned long long)counter);
	luod_disconnect(c);
	return 0;
}
