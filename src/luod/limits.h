/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * luod's socket is open to every local user, so no one of them may take it
 * all: connections per uid, a share kept for root and the admin group,
 * requests per second per connection, and log lines per burst. Pure logic
 * with the clock passed in, so the unit tests (tests/unit/test-limits.c)
 * drive it without an event loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How many connections each uid holds. Few uids are connected at once,
 * so an array searched in order is enough. */
struct uid_count {
	uid_t uid;
	unsigned n;
};

struct uid_table {
	struct uid_count *v;
	size_t n, cap;
};

unsigned uid_table_get(const struct uid_table *t, uid_t uid);
/* One more connection of uid: 0, or -ENOMEM. */
int uid_table_add(struct uid_table *t, uid_t uid);
/* One fewer; a uid at zero leaves the table. */
void uid_table_del(struct uid_table *t, uid_t uid);
void uid_table_free(struct uid_table *t);

enum admit {
	ADMIT_OK,
	ADMIT_FULL, /* max_clients reached */
	ADMIT_RESERVED, /* only the share kept for root and the admin group is left */
	ADMIT_UID, /* this uid holds max_clients_per_uid already */
};

struct admit_limits {
	unsigned max_clients;
	unsigned reserved; /* of max_clients, for root and the admin group */
	unsigned per_uid; /* 0: no limit */
};

/*
 * May one more connection be served, with n_clients served now and n_uid of
 * them the caller's uid's? Root and the admin group (admin) are bound by
 * max_clients only.
 */
enum admit limits_admit(const struct admit_limits *l, unsigned n_clients,
			unsigned n_uid, bool admin);

/*
 * Token bucket: rate tokens a second, at most rate at once (one second's
 * worth), so a client may ask in bursts as long as it keeps to the rate.
 * Kept in millionths of a token, so no floating point.
 */
struct bucket {
	uint64_t micro; /* tokens * 1e6 */
	uint64_t t_us; /* when micro was last brought up to date */
};

void bucket_init(struct bucket *b, unsigned rate, uint64_t now_us);
/* Takes a token if there is one. rate 0: no limit, always true. */
bool bucket_take(struct bucket *b, unsigned rate, uint64_t now_us);
/* When the next token is there (now_us if it is already). */
uint64_t bucket_ready_at(struct bucket *b, unsigned rate, uint64_t now_us);

/*
 * One log line per burst, not per event: the first event of a burst is
 * logged in full; the rest are counted and summed up in one line per
 * window, and a window without events ends the burst.
 */
struct burst_log {
	bool active;
	uint64_t until_us; /* end of the current window */
	unsigned count; /* events in it not logged yet */
};

/* An event: true if the caller logs it now (it starts a burst). */
bool burst_log_event(struct burst_log *b, uint64_t now_us, uint64_t window_us);
/*
 * At the end of a window: the number of events to sum up in a line (0:
 * none, and the burst is over). Before the window's end: 0, nothing done.
 */
unsigned burst_log_flush(struct burst_log *b, uint64_t now_us,
			 uint64_t window_us);
/* When burst_log_flush has something to do; UINT64_MAX: never. */
uint64_t burst_log_deadline(const struct burst_log *b);

/*
 * A list in the order of last activity, oldest first, for the connections
 * that may be closed when idle: moving one to the end is O(1), and the
 * only one that can be due is the first.
 */
struct idle_link {
	struct idle_link *prev, *next;
	uint64_t since_us; /* its last request, or its connect */
};

struct idle_list {
	struct idle_link
		head; /* head.next: the oldest; empty: points at itself */
	unsigned n;
};

void idle_list_init(struct idle_list *l);
bool idle_linked(const struct idle_link *e);
/* (Re)inserts e as the newest, active at now_us. */
void idle_list_touch(struct idle_list *l, struct idle_link *e, uint64_t now_us);
void idle_list_remove(struct idle_list *l, struct idle_link *e);
/* The oldest entry if it was idle for timeout_us or more by now_us. */
struct idle_link *idle_list_due(struct idle_list *l, uint64_t now_us,
				uint64_t timeout_us);
/* When the oldest entry is due; UINT64_MAX when the list is empty. */
uint64_t idle_list_deadline(const struct idle_list *l, uint64_t timeout_us);
