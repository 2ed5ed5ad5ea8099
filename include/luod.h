/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libluod: talk to luod, the live update agent, in a few calls.
 *
 * Every function returns 0 (or a non-negative value) on success and -errno
 * on failure. When luod refused a request the return value is -EPROTO and
 * luod_last_error() gives luod's error code and message.
 *
 * A typical VMM:
 *
 *	luod_connect(NULL, "vm1", &c);            // HELLO
 *	if (luod_claim(c, NULL, &s, &n) == 0) {    // after a live update
 *		fd = luod_session_retrieve_fd(s[0].fd, TOKEN_RAM);
 *		...restore, resume...
 *		luod_session_finish(s[0].fd);
 *		luod_finished(c, s[0].name);
 *	}
 *	luod_create_session(c, "ram", &sfd);        // first start
 *	luod_session_preserve_fd(sfd, ram_memfd, TOKEN_RAM);
 *	luod_subscribe(c);
 *	luod_next_event(c, &ev, -1);               // LUOD_EVENT_PREPARE
 *	...pause, checkpoint...
 *	luod_ready(c);
 */
#ifndef LUOD_H
#define LUOD_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUOD_DEFAULT_SOCKET "/run/luod/liveupdate.sock"
#define LUOD_PROTOCOL_VERSION 1

struct luod_client;

struct luod_session {
	char name[65];
	char kernel_name[64];
	int fd; /* owned by the caller: close it when done */
	uint64_t generation;
	int claimed; /* 1: came through a live update; 0: created this boot */
};

enum luod_event_type {
	LUOD_EVENT_PREPARE = 1, /* preserve now, then luod_ready() or luod_not_ready() */
	LUOD_EVENT_ABORTED, /* the update was aborted: resume */
	LUOD_EVENT_OTHER, /* an event this library does not know */
};

struct luod_event {
	enum luod_event_type type;
	uint64_t update;
	uint64_t timeout_ms;
	/* PREPARE for a client that had no session yet: a fresh one luod made. */
	int new_session_fd; /* -1 if none; owned by the caller */
	char new_session[65];
	char reason[256]; /* ABORTED */
	char name[32]; /* the event's name as luod sent it */
};

/* Connect to luod (path NULL: $LUOD_SOCKET or LUOD_DEFAULT_SOCKET) and say
 * HELLO with client id `id` (may be NULL for admin-only use). */
int luod_connect(const char *path, const char *id, struct luod_client **out);
/* luod_connect(), luod_create_session(name) and luod_subscribe() in one
 * round trip: a client's first start. On failure nothing is kept open; a
 * session luod made is still held by luod, and CLAIM gives it back. */
int luod_connect_subscribed(const char *path, const char *id, const char *name,
			    int *session_fd, struct luod_client **out);
void luod_disconnect(struct luod_client *c);
/* An fd for the caller's own poll/epoll loop (not the socket itself: events
 * that arrived during another call are queued, and this fd stays readable
 * while any are). Readable means luod_next_event(c, &ev, 0) has something. */
int luod_fd(const struct luod_client *c);
/* luod's generation (number of live updates) from HELLO. */
uint64_t luod_generation(const struct luod_client *c);

/* The code and message of luod's last refusal on this client ("" if none). */
const char *luod_last_error(const struct luod_client *c);
const char *luod_last_error_message(const struct luod_client *c);

int luod_subscribe(struct luod_client *c);
int luod_create_session(struct luod_client *c, const char *name, int *session_fd);
/* Wait up to timeout_ms (-1: forever, 0: poll) for an event. Returns 1 with
 * *ev filled, 0 on timeout, or -errno. */
int luod_next_event(struct luod_client *c, struct luod_event *ev, int timeout_ms);
int luod_ready(struct luod_client *c);
int luod_not_ready(struct luod_client *c, const char *reason);
/* Claim one session (name) or all (name NULL). *sessions is malloc()ed;
 * free it with luod_sessions_free(), which also closes unclaimed fds (set
 * an fd to -1 to keep it). Returns -ENOENT when there is nothing to claim. */
int luod_claim(struct luod_client *c, const char *name, struct luod_session **sessions, size_t *n);
void luod_sessions_free(struct luod_session *sessions, size_t n);
int luod_finished(struct luod_client *c, const char *name);
int luod_release(struct luod_client *c, const char *id, const char *name);
/* The client's outgoing sessions are complete (preserved, nothing more to
 * write) and it may exit: no update waits for it any more. Also ends the
 * subscription. A later CLAIM of a session before the reboot undoes it. */
int luod_leave(struct luod_client *c);

/*
 * luod restarted (a call returned -ECONNRESET or -EPIPE): connect again,
 * retrying for up to timeout_ms (-1: forever) while luod comes back, say
 * HELLO, re-attach every session this client got from luod_create_session()
 * or luod_claim() and still holds open, and SUBSCRIBE again if it had. luod
 * then holds the sessions again, as before its restart.
 */
int luod_reconnect(struct luod_client *c, int timeout_ms);
/* Hand one session fd back to luod (REATTACH); luod_reconnect() does this
 * for the sessions libluod knows of. */
int luod_reattach(struct luod_client *c, const char *name, int session_fd);

/* Send any request and get its reply as a JSON text (malloc()ed), for
 * admin tools. Fds the reply carries are closed. */
int luod_call_json(struct luod_client *c, const char *request_json, char **reply_json);

/* The session ioctls, for sessions luod handed out. */
int luod_session_preserve_fd(int session_fd, int fd, uint64_t token);
int luod_session_retrieve_fd(int session_fd, uint64_t token);
int luod_session_finish(int session_fd);
int luod_session_get_name(int session_fd, char name[64]);

#ifdef __cplusplus
}
#endif

#endif
