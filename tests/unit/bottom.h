/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bottom layer of luod for the unit tests of the layers above it (the
 * session table, the update state machine): the device wrapper, the
 * custodians, kexec and the output queue, recorded instead of done.
 * Sessions are memfds.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "daemon.h"

struct bottom {
	int device_error; /* device_open fails with it (-ENOENT, -EBUSY) */
	unsigned names_taken; /* the kernel holds the first N names asked */
	unsigned creates, retrieves, finishes, reboots, kernel_refusals;
	unsigned keeper_holds, keeper_drops, fdstore_drops;
	bool fdstore; /* systemd's fd store takes what it is given */
	const char *incoming[8]; /* kernel names the last kernel handed over */
};

extern struct bottom bottom;

/* A connection whose every message is kept in log, in order. */
struct peer {
	struct client c; /* first: client_send finds the peer by it */
	struct json_object *log;
};

void bottom_reset(void);
struct peer *peer_new(struct daemon *d, const char *id, bool hello);
void peer_free(struct peer *p);
/* The i-th message sent to p whose key is value; NULL if none. */
struct json_object *peer_find(struct peer *p, const char *key,
			      const char *value, int i);
size_t peer_count(struct peer *p, const char *key, const char *value);
