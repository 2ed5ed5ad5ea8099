// SPDX-License-Identifier: GPL-2.0-or-later
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "qmp.h"
#include "util.h"

/* QEMU's greeting and replies are a few KiB; more is not QMP. */
#define QMP_LINE_MAX (1024 * 1024)

struct qmp {
	int fd;
	char *buf;
	size_t len, cap;
};

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	safe_close(q->fd);
	free(q->buf);
	free(q);
}

static void qmp_closep(struct qmp **q)
{
	qmp_close(*q);
}

static int remaining_ms(uint64_t deadline_us)
{
	uint64_t now = now_mono_us();

	if (now >= deadline_us)
		return 0;
	return (int)((deadline_us - now + 999) / 1000);
}

/* The next JSON object QEMU sent, one per line. */
static int read_message(struct qmp *q, uint64_t deadline_us,
			struct json_object **out)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (nl) {
			size_t line = (size_t)(nl - q->buf) + 1;

			*nl = '\0';
			*out = json_tokener_parse(q->buf);
			memmove(q->buf, q->buf + line, q->len - line);
			q->len -= line;
			if (!*out)
				return -EBADMSG;
			if (json_object_is_type(*out, json_type_object))
				return 0;
			json_object_put(*out);
			return -EBADMSG;
		}
		if (q->len == q->cap) {
			size_t cap = q->cap ? q->cap * 2 : 4096;
			char *b;

			if (cap > QMP_LINE_MAX)
				return -EMSGSIZE;
			b = realloc(q->buf, cap);
			if (!b)
				return -ENOMEM;
			q->buf = b;
			q->cap = cap;
		}
		r = poll(&p, 1, remaining_ms(deadline_us));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = read(q->fd, q->buf + q->len, q->cap - q->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		if (n == 0)
			return -ECONNRESET;
		q->len += (size_t)n;
	}
}

static void error_text(struct json_object *e, char *err, size_t errlen)
{
	struct json_object *cls = NULL, *desc = NULL;

	json_object_object_get_ex(e, "class", &cls);
	json_object_object_get_ex(e, "desc", &desc);
	snprintf(err, errlen, "%s%s%s",
		 cls ? json_object_get_string(cls) : "",
		 cls && desc ? ": " : "",
		 desc ? json_object_get_string(desc) : "(no description)");
}

int qmp_call(struct qmp *q, const char *command, struct json_object *args,
	     struct json_object **ret, uint64_t deadline_us, char *err,
	     size_t errlen)
{
	struct json_object *req = json_object_new_object();
	const char *text;
	int r;

	if (ret)
		*ret = NULL;
	if (!req) {
		json_object_put(args);
		return -ENOMEM;
	}
	json_object_object_add(req, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(req, "arguments", args);
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	r = write_all(q->fd, text, strlen(text));
	if (r == 0)
		r = write_all(q->fd, "\n", 1);
	json_object_put(req);
	if (r < 0) {
		snprintf(err, errlen, "cannot send %s to QEMU: %s", command,
			 strerror(-r));
		return r == -EPIPE ? -ECONNRESET : r;
	}
	for (;;) {
		struct json_object *m, *v;

		r = read_message(q, deadline_us, &m);
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", command,
				 r == -ECONNRESET ? "QEMU closed its QMP socket" :
				 r == -ETIMEDOUT  ? "QEMU did not answer in time" :
						    strerror(-r));
			return r;
		}
		if (json_object_object_get_ex(m, "return", &v)) {
			if (ret)
				*ret = json_object_get(v);
			json_object_put(m);
			return 0;
		}
		if (json_object_object_get_ex(m, "error", &v)) {
			error_text(v, err, errlen);
			json_object_put(m);
			return -EPROTO;
		}
		json_object_put(m); /* an event */
	}
}

int qmp_connect(const char *path, pid_t pid, uint64_t deadline_us,
		struct qmp **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_(qmp_closep) struct qmp *q = NULL;
	struct json_object *greeting = NULL;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "QMP socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->fd = -1;
	/* QEMU makes the socket early in its start, but not at once. */
	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0)
			return -errno;
		if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		r = -errno;
		q->fd = safe_close(q->fd);
		if ((r != -ENOENT && r != -ECONNREFUSED) ||
		    (pid > 0 && kill(pid, 0) < 0) ||
		    now_mono_us() >= deadline_us) {
			snprintf(err, errlen, "cannot connect to QMP at %s: %s",
				 path,
				 r == -ENOENT || r == -ECONNREFUSED ?
					 "QEMU did not open it (it exited, or did not start in time)" :
					 strerror(-r));
			return r;
		}
		usleep(20 * 1000);
	}
	r = read_message(q, deadline_us, &greeting);
	if (r == 0 && !json_object_object_get_ex(greeting, "QMP", NULL))
		r = -EBADMSG;
	json_object_put(greeting);
	if (r < 0) {
		snprintf(err, errlen, "no QMP greeting from QEMU at %s: %s",
			 path, strerror(-r));
		return r;
	}
	r = qmp_call(q, "qmp_capabilities", NULL, NULL, deadline_us, err,
		     errlen);
	if (r < 0)
		return r;
	*out = take_ptr(q);
	return 0;
}
