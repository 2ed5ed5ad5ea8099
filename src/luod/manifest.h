/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The manifest: what luod must remember across a kexec or its own restart.
 * Pure encoding and decoding, so the host unit tests and the fuzzer cover it.
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define MANIFEST_FORMAT "luod-manifest"
#define MANIFEST_VERSION 1
#define MANIFEST_MAX_BYTES (16 * 1024 * 1024)

struct manifest_session {
	char client[PROTO_ID_MAX + 1];
	char name[PROTO_ID_MAX + 1];
	char kernel_name[64];
	uid_t uid;
	uint64_t generation;
	uint64_t created_us;
	/* Only in the copy under /run: the session came across the last kexec
	 * (incoming or claimed) rather than being created this boot. */
	int incoming;
	int claimed;
	/* Its owner said LEAVE: complete, no update waits for the owner. */
	int left;
};

struct manifest {
	uint64_t generation;
	uint64_t next_serial;
	struct manifest_session *sessions;
	size_t n_sessions;
	struct json_object *timeline; /* array, may be NULL */
	struct json_object *last_timeline; /* array, may be NULL */
	/* Only in the copy under /run: the last journal record it includes. */
	uint64_t journal_seq;
};

void manifest_clear(struct manifest *m);
/* Returns a malloc()ed JSON text, or NULL when out of memory. */
char *manifest_encode(const struct manifest *m);
/* 0, or -EBADMSG with a reason in err for anything malformed. */
int manifest_decode(const char *text, size_t len, struct manifest *out,
		    char *err, size_t errlen);

/*
 * The journal beside the copy under /run: one line per change since that
 * copy was written, so a change costs one short write, not a rewrite of
 * every session. Each record carries a seq; replaying puts, deletions and
 * timeline events in order over the copy gives the state luod had.
 * Each returns a malloc()ed line ending in a newline, or NULL.
 */
char *manifest_journal_put(uint64_t seq, uint64_t next_serial,
			   const struct manifest_session *s);
char *manifest_journal_del(uint64_t seq, const char *kernel_name);
char *manifest_journal_event(uint64_t seq, struct json_object *event);
/*
 * Apply the records above m->journal_seq, in order. A last line without its
 * newline was torn by a crash and is ignored. Returns the number of records
 * applied, or -EBADMSG at a malformed line (m keeps the ones before it).
 */
int manifest_journal_apply(struct manifest *m, const char *text, size_t len,
			   char *err, size_t errlen);
