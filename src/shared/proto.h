/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * luod protocol v1 codec: newline-delimited JSON objects over a Unix stream
 * socket, with fds passed by SCM_RIGHTS. docs/PROTOCOL.md is the contract.
 *
 * A message that carries fds says how many in "fds"; they travel in the
 * sendmsg() that carries the message's first byte. The reader ties every
 * batch of received fds to the stream offset it arrived at, so each fd
 * belongs to exactly one line. Fds on a line that did not announce them are
 * closed, never leaked.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_MAX_LINE (64 * 1024) /* a line sent to luod */
/* A line luod sends: STATUS and LIST grow with its clients and sessions
 * (about 80 bytes a client, 170 a session, 65 a timeline entry). */
#define PROTO_MAX_REPLY (1024 * 1024)
#define PROTO_MAX_FDS 64 /* per message; FDMSG_MAX_FDS too */
#define PROTO_ID_MAX 64 /* client ids and session names, bytes */

/* Stable error codes, sent as "error". */
#define PROTO_E_BAD_REQUEST "BAD_REQUEST"
#define PROTO_E_UNKNOWN_COMMAND "UNKNOWN_COMMAND"
#define PROTO_E_VERSION "UNSUPPORTED_VERSION"
#define PROTO_E_PERMISSION "PERMISSION_DENIED"
#define PROTO_E_NOT_FOUND "NOT_FOUND"
#define PROTO_E_EXISTS "ALREADY_EXISTS"
#define PROTO_E_BUSY "BUSY"
#define PROTO_E_STATE "WRONG_STATE"
#define PROTO_E_NO_KERNEL "NO_KERNEL_LOADED"
#define PROTO_E_ABORTED "UPDATE_ABORTED"
#define PROTO_E_KERNEL "KERNEL_ERROR"
#define PROTO_E_INTERNAL "INTERNAL"

struct proto_msg {
	struct json_object *obj;
	int fds[PROTO_MAX_FDS];
	size_t n_fds;
};

void proto_msg_clear(struct proto_msg *m);

struct proto_fd_batch;

struct proto_reader {
	char *buf;
	size_t len, cap;
	uint64_t offset; /* stream offset of buf[0] */
	struct proto_fd_batch *batches;
	size_t n_batches, cap_batches;
	size_t max_line; /* 0: PROTO_MAX_LINE; luod's clients: PROTO_MAX_REPLY */
	bool short_read; /* the last fill took less than it had room for */
};

void proto_reader_free(struct proto_reader *r);
/* One recvmsg(). Returns bytes read, 0 at end of stream, or -errno (-EAGAIN). */
int proto_reader_fill(struct proto_reader *r, int sock);
/*
 * Take the next complete line. Returns 1 with *out filled, 0 when more bytes
 * are needed, -EMSGSIZE when a line exceeds max_line (the stream cannot
 * be resynchronised: disconnect), -EBADMSG for a line that is not a JSON
 * object and -EBADF for a line whose fds do not match its "fds" (both
 * consumed, with their fds closed: reply and go on).
 */
int proto_reader_next(struct proto_reader *r, struct proto_msg *out);
/* Whether a complete line is buffered: luod takes a request's share of its
 * rate limit before it reads the line. */
bool proto_reader_has_line(const struct proto_reader *r);
/* Fds received but not yet tied to a complete line. */
size_t proto_reader_pending_fds(const struct proto_reader *r);

struct proto_out;

struct proto_writer {
	struct proto_out *head, *tail;
	size_t queued_bytes;
	size_t max_line; /* 0: PROTO_MAX_LINE; luod: PROTO_MAX_REPLY */
};

void proto_writer_free(struct proto_writer *w);
/*
 * Queue obj (a reference is not taken: it is serialised now) with fds. The
 * writer dups the fds; the caller keeps its own. Sets "fds" in obj when
 * n_fds > 0.
 */
int proto_writer_queue(struct proto_writer *w, struct json_object *obj,
		       const int *fds, size_t n_fds);
/* Send what the socket takes. 0 when drained, -EAGAIN when data is left, or -errno. */
int proto_writer_flush(struct proto_writer *w, int sock);
static inline bool proto_writer_empty(const struct proto_writer *w)
{
	return w->head == NULL;
}

/* Building messages. */
/*
 * Add v under key to *o (append v to *arr). Any failure (*o or v NULL, no
 * memory) releases both and sets *o to NULL, so that a message is whole or
 * not built at all: json-c would otherwise drop the field silently.
 * proto_add_nullable() adds a JSON null when v is NULL.
 */
bool proto_add(struct json_object **o, const char *key, struct json_object *v);
bool proto_add_nullable(struct json_object **o, const char *key,
			struct json_object *v);
bool proto_append(struct json_object **arr, struct json_object *v);

/* NULL when out of memory, as every builder below. */
struct json_object *proto_request(const char *cmd);
struct json_object *proto_event(const char *event);
/* {"ok":true,"reply":CMD,"seq":<echoed>} */
struct json_object *proto_reply_ok(const char *cmd, struct json_object *req);
/* {"ok":false,"reply":CMD,"error":CODE,"message":...,"seq":<echoed>} */
struct json_object *proto_reply_error(const char *cmd, struct json_object *req,
				      const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Reading fields: NULL / false when missing or of another type. */
const char *proto_get_string(struct json_object *obj, const char *key);
bool proto_get_int64(struct json_object *obj, const char *key, int64_t *out);
bool proto_get_bool(struct json_object *obj, const char *key, bool *out);

/* Client ids and session names: 1..64 bytes of [A-Za-z0-9._@:+-]. */
bool proto_valid_name(const char *s);

/* Blocking helpers for clients: send one message, read one message. */
int proto_send(int sock, struct json_object *obj, const int *fds, size_t n_fds);
int proto_recv(int sock, struct proto_reader *r, struct proto_msg *out);
