// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <poll.h>

#include "fdmsg.h"
#include "proto.h"
#include "util.h"

/* One recvmsg()'s worth of fds and the stream offset its bytes began at. */
struct proto_fd_batch {
	uint64_t offset;
	int fds[PROTO_MAX_FDS];
	size_t n_fds;
};

struct proto_out {
	struct proto_out *next;
	char *data;
	size_t len, sent;
	int fds[PROTO_MAX_FDS];
	size_t n_fds;
};

void proto_msg_clear(struct proto_msg *m)
{
	if (m->obj)
		json_object_put(m->obj);
	m->obj = NULL;
	for (size_t i = 0; i < m->n_fds; i++)
		safe_close(m->fds[i]);
	m->n_fds = 0;
}

static void close_batch(struct proto_fd_batch *b)
{
	for (size_t i = 0; i < b->n_fds; i++)
		safe_close(b->fds[i]);
	b->n_fds = 0;
}

void proto_reader_free(struct proto_reader *r)
{
	for (size_t i = 0; i < r->n_batches; i++)
		close_batch(&r->batches[i]);
	free(r->batches);
	free(r->buf);
	*r = (struct proto_reader){ .max_line = r->max_line };
}

static size_t reader_max(const struct proto_reader *r)
{
	return r->max_line ? r->max_line : PROTO_MAX_LINE;
}

size_t proto_reader_pending_fds(const struct proto_reader *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_batches; i++)
		n += r->batches[i].n_fds;
	return n;
}

static int reader_add_batch(struct proto_reader *r, uint64_t offset,
			    const int *fds, size_t n)
{
	struct proto_fd_batch *b;

	if (r->n_batches == r->cap_batches) {
		size_t cap = r->cap_batches ? r->cap_batches * 2 : 4;
		struct proto_fd_batch *nb =
			realloc(r->batches, cap * sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		r->batches = nb;
		r->cap_batches = cap;
	}
	b = &r->batches[r->n_batches++];
	b->offset = offset;
	b->n_fds = n;
	memcpy(b->fds, fds, n * sizeof(int));
	return 0;
}

/*
 * The stream offset of the line that fds received with the last n bytes
 * belong to. A stream recvmsg() does not stop before an skb carrying fds,
 * only after it, so fd-less bytes the peer sent earlier may come first in
 * the same read. The fds' message starts at the last line start among the
 * bytes read (the writer sends each message with its own sendmsg()).
 */
static uint64_t fds_owner_offset(const struct proto_reader *r, size_t n)
{
	const char *data = r->buf + r->len;

	for (size_t i = n - 1; i > 0; i--)
		if (data[i - 1] == '\n')
			return r->offset + r->len + i;
	return r->offset + r->len;
}

int proto_reader_fill(struct proto_reader *r, int sock)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
	} control;
	struct msghdr mh = { .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	struct iovec iov;
	int fds[PROTO_MAX_FDS * 2];
	size_t n_fds = 0;
	ssize_t n;

	/* Start small and double while a line does not fit: luod keeps a
	 * buffer for each of possibly thousands of mostly idle clients, and
	 * 8 KiB each was most of its memory at 1000 clients (bench/). */
	if (r->cap - r->len < 512) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		char *nb;

		if (cap > reader_max(r) * 2 + 8192)
			cap = reader_max(r) * 2 + 8192;
		if (cap <= r->len)
			return -EMSGSIZE;
		nb = realloc(r->buf, cap);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = cap;
	}
	iov.iov_base = r->buf + r->len;
	iov.iov_len = r->cap - r->len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;

	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	r->short_read = (size_t)n < iov.iov_len;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
	     c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
			       sizeof(int));
			if (n_fds < ARRAY_SIZE(fds))
				fds[n_fds++] = fd;
			else
				close(fd);
		}
	}
	/* Truncated control data means fds were dropped by the kernel; the line
	 * they belong to will then fail its "fds" count check. */
	if (n_fds > 0) {
		uint64_t at = n > 0 ? fds_owner_offset(r, (size_t)n) : 0;
		int q;

		if (n == 0) {
			/* fds with no bytes cannot belong to any line. */
			for (size_t i = 0; i < n_fds; i++)
				close(fds[i]);
		} else if (n_fds > PROTO_MAX_FDS) {
			for (size_t i = 0; i < n_fds; i++)
				close(fds[i]);
			q = reader_add_batch(r, at, fds, 0);
			if (q < 0)
				return q;
		} else {
			q = reader_add_batch(r, at, fds, n_fds);
			if (q < 0) {
				for (size_t i = 0; i < n_fds; i++)
					close(fds[i]);
				return q;
			}
		}
	}
	r->len += (size_t)n;
	return (int)n;
}

/* Move the fds of batches that started before `end` into out (or close them). */
static size_t take_fds(struct proto_reader *r, uint64_t end, int *out,
		       size_t max, bool *overflow)
{
	size_t n = 0, keep = 0;

	for (size_t i = 0; i < r->n_batches; i++) {
		struct proto_fd_batch *b = &r->batches[i];

		if (b->offset >= end) {
			r->batches[keep++] = *b;
			continue;
		}
		if (b->n_fds == 0)
			*overflow = true;
		for (size_t j = 0; j < b->n_fds; j++) {
			if (n < max)
				out[n++] = b->fds[j];
			else {
				close(b->fds[j]);
				*overflow = true;
			}
		}
	}
	r->n_batches = keep;
	return n;
}

bool proto_reader_has_line(const struct proto_reader *r)
{
	return r->len && memchr(r->buf, '\n', r->len);
}

int proto_reader_next(struct proto_reader *r, struct proto_msg *out)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	int fds[PROTO_MAX_FDS];
	bool overflow = false;
	int64_t want = 0;
	size_t line_len, n_fds;
	char *nl;

	*out = (struct proto_msg){ 0 };
	nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
	if (!nl)
		return r->len > reader_max(r) ? -EMSGSIZE : 0;
	line_len = (size_t)(nl - r->buf);
	if (line_len > reader_max(r))
		return -EMSGSIZE;

	n_fds = take_fds(r, r->offset + line_len + 1, fds, PROTO_MAX_FDS,
			 &overflow);

	tok = json_tokener_new();
	if (!tok) {
		obj = NULL;
		jerr = json_tokener_error_parse_eof;
	} else {
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
		obj = json_tokener_parse_ex(tok, r->buf, (int)line_len);
		jerr = json_tokener_get_error(tok);
		/* Trailing bytes after the object make the line invalid too. */
		if (obj && jerr == json_tokener_success &&
		    (size_t)json_tokener_get_parse_end(tok) != line_len) {
			size_t end = json_tokener_get_parse_end(tok);

			while (end < line_len &&
			       (r->buf[end] == ' ' || r->buf[end] == '\t' ||
				r->buf[end] == '\r'))
				end++;
			if (end != line_len)
				jerr = json_tokener_error_parse_unexpected;
		}
		json_tokener_free(tok);
	}

	r->offset += line_len + 1;
	r->len -= line_len + 1;
	memmove(r->buf, nl + 1, r->len);

	if (jerr != json_tokener_success || !obj ||
	    !json_object_is_type(obj, json_type_object)) {
		if (obj)
			json_object_put(obj);
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		return -EBADMSG;
	}

	if (json_object_object_get_ex(obj, "fds", NULL) &&
	    !proto_get_int64(obj, "fds", &want))
		want = -1; /* present but not an integer */
	if (!json_object_object_get_ex(obj, "fds", NULL)) {
		/* Unsolicited fds are dropped; the line itself still counts. */
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		n_fds = 0;
		overflow = false;
	}
	if (overflow || want < 0 || (uint64_t)want != n_fds) {
		json_object_put(obj);
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		return -EBADF;
	}
	out->obj = obj;
	memcpy(out->fds, fds, n_fds * sizeof(int));
	out->n_fds = n_fds;
	return 1;
}

void proto_writer_free(struct proto_writer *w)
{
	struct proto_out *o = w->head;

	while (o) {
		struct proto_out *next = o->next;

		for (size_t i = 0; i < o->n_fds; i++)
			safe_close(o->fds[i]);
		free(o->data);
		free(o);
		o = next;
	}
	*w = (struct proto_writer){ .max_line = w->max_line };
}

int proto_writer_queue(struct proto_writer *w, struct json_object *obj,
		       const int *fds, size_t n_fds)
{
	struct proto_out *o;
	const char *text;
	size_t len;

	if (n_fds > PROTO_MAX_FDS)
		return -E2BIG;
	/* fds sent without "fds" would be closed by the peer. */
	if (!obj || (n_fds > 0 &&
		     json_object_object_add(
			     obj, "fds", json_object_new_int((int)n_fds)) < 0))
		return -ENOMEM;
	if (n_fds > 0 && !json_object_object_get(obj, "fds"))
		return -ENOMEM;
	text = json_object_to_json_string_ext(
		obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (len > (w->max_line ? w->max_line : PROTO_MAX_LINE))
		return -EMSGSIZE;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->data = malloc(len + 1);
	if (!o->data) {
		free(o);
		return -ENOMEM;
	}
	memcpy(o->data, text, len);
	o->data[len] = '\n';
	o->len = len + 1;
	for (size_t i = 0; i < n_fds; i++) {
		o->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (o->fds[i] < 0) {
			int r = -errno;

			o->n_fds = i;
			for (size_t j = 0; j < i; j++)
				close(o->fds[j]);
			free(o->data);
			free(o);
			return r;
		}
	}
	o->n_fds = n_fds;

	if (w->tail)
		w->tail->next = o;
	else
		w->head = o;
	w->tail = o;
	w->queued_bytes += o->len;
	return 0;
}

int proto_writer_flush(struct proto_writer *w, int sock)
{
	while (w->head) {
		struct proto_out *o = w->head;
		/* The fds ride with the first byte of the message. */
		ssize_t n = fdmsg_send(sock, o->data + o->sent,
				       o->len - o->sent, o->fds,
				       o->sent == 0 ? o->n_fds : 0,
				       MSG_DONTWAIT);

		if (n < 0) {
			if (n == -EINTR)
				continue;
			return n == -EWOULDBLOCK ? -EAGAIN : (int)n;
		}
		if (o->sent == 0) {
			for (size_t i = 0; i < o->n_fds; i++)
				safe_close(o->fds[i]);
			o->n_fds = 0;
		}
		o->sent += (size_t)n;
		w->queued_bytes -= (size_t)n;
		if (o->sent < o->len)
			continue;
		w->head = o->next;
		if (!w->head)
			w->tail = NULL;
		free(o->data);
		free(o);
	}
	return 0;
}

static bool add_or_drop(struct json_object **o, const char *key,
			struct json_object *v, bool nullable)
{
	if (*o && (v || nullable) &&
	    (key ? json_object_object_add(*o, key, v) :
		   json_object_array_add(*o, v)) == 0)
		return true;
	if (v)
		json_object_put(v);
	if (*o)
		json_object_put(*o);
	*o = NULL;
	return false;
}

bool proto_add(struct json_object **o, const char *key, struct json_object *v)
{
	return add_or_drop(o, key, v, false);
}

bool proto_add_nullable(struct json_object **o, const char *key,
			struct json_object *v)
{
	return add_or_drop(o, key, v, true);
}

bool proto_append(struct json_object **arr, struct json_object *v)
{
	return add_or_drop(arr, NULL, v, false);
}

struct json_object *proto_request(const char *cmd)
{
	struct json_object *o = json_object_new_object();

	proto_add(&o, "cmd", json_object_new_string(cmd));
	return o;
}

struct json_object *proto_event(const char *event)
{
	struct json_object *o = json_object_new_object();

	proto_add(&o, "event", json_object_new_string(event));
	return o;
}

static struct json_object *reply_base(const char *cmd, struct json_object *req,
				      bool ok)
{
	struct json_object *o = json_object_new_object(), *seq;

	proto_add(&o, "ok", json_object_new_boolean(ok));
	if (cmd)
		proto_add(&o, "reply", json_object_new_string(cmd));
	if (req && json_object_object_get_ex(req, "seq", &seq))
		proto_add(&o, "seq", json_object_get(seq));
	return o;
}

struct json_object *proto_reply_ok(const char *cmd, struct json_object *req)
{
	return reply_base(cmd, req, true);
}

struct json_object *proto_reply_error(const char *cmd, struct json_object *req,
				      const char *code, const char *fmt, ...)
{
	struct json_object *o = reply_base(cmd, req, false);
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	proto_add(&o, "error", json_object_new_string(code));
	proto_add(&o, "message", json_object_new_string(msg));
	return o;
}

const char *proto_get_string(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool proto_get_int64(struct json_object *obj, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

bool proto_get_bool(struct json_object *obj, const char *key, bool *out)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return false;
	*out = json_object_get_boolean(v);
	return true;
}

bool proto_valid_name(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > PROTO_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("._@:+-", c)))
			return false;
	}
	return true;
}

int proto_send(int sock, struct json_object *obj, const int *fds, size_t n_fds)
{
	struct proto_writer w = { 0 };
	int r = proto_writer_queue(&w, obj, fds, n_fds);

	while (r == 0 && !proto_writer_empty(&w)) {
		r = proto_writer_flush(&w, sock);
		if (r == -EAGAIN) {
			/* A blocking caller on a full socket: wait for room.
			 * poll(), as the socket may be >= FD_SETSIZE. */
			struct pollfd pfd = { .fd = sock, .events = POLLOUT };

			r = poll(&pfd, 1, -1) < 0 && errno != EINTR ? -errno :
								      0;
		}
	}
	proto_writer_free(&w);
	return r;
}

int proto_recv(int sock, struct proto_reader *r, struct proto_msg *out)
{
	for (;;) {
		int q = proto_reader_next(r, out);

		if (q != 0)
			return q < 0 ? q : 0;
		q = proto_reader_fill(r, sock);
		if (q == 0)
			return -ECONNRESET;
		if (q < 0 && q != -EINTR)
			return q;
	}
}
