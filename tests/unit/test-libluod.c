// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libluod against a scripted fake luod on a real Unix socket: replies
 * matched by seq, events queued across calls with their fds, luod_fd()
 * readable exactly while an event waits, refusals turned into errno.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "luod.h"
#include "proto.h"
#include "util.h"

#define MAX_LINES 4
#define MAX_STEPS 8

/*
 * One step of the fake: wait for a request with command `expect` (unless
 * NULL), then send `lines`; "$SEQ" in a line becomes the request's seq and
 * lines[i] goes out with fds[i] fresh pipe write ends attached.
 */
struct step {
	const char *expect;
	const char *lines[MAX_LINES];
	int fds[MAX_LINES];
	bool hangup; /* close the connection after the lines */
};

struct fake {
	char dir[64], path[108];
	int listen_fd;
	pthread_t thread;
	struct step steps[MAX_STEPS];
	/* Filled by the fake, read by the test after the matching reply. */
	char got[MAX_STEPS][512];
	int pipe_rd[8];
	size_t n_pipes;
	bool failed;
};

static void fake_send(struct fake *f, int sock, const char *tmpl,
		      const char *seq, int n_fds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} control;
	char line[1024], *at;
	struct iovec iov = { .iov_base = line };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int wr[4];

	snprintf(line, sizeof(line), "%s\n", tmpl);
	at = strstr(line, "$SEQ");
	if (at) {
		char rest[1024];

		snprintf(rest, sizeof(rest), "%s", at + 4);
		snprintf(at, sizeof(line) - (size_t)(at - line), "%s%s", seq,
			 rest);
	}
	iov.iov_len = strlen(line);
	if (n_fds > 0) {
		struct cmsghdr *c;

		for (int i = 0; i < n_fds; i++) {
			int p[2];

			if (pipe2(p, O_CLOEXEC) < 0) {
				f->failed = true;
				return;
			}
			f->pipe_rd[f->n_pipes++] = p[0];
			wr[i] = p[1];
		}
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
		memcpy(CMSG_DATA(c), wr, sizeof(int) * (size_t)n_fds);
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len) {
		fprintf(stderr, "fake: sendmsg: %m\n");
		f->failed = true;
	}
	for (int i = 0; i < n_fds; i++)
		close(wr[i]);
}

/* No cmocka asserts on this thread: failures are flagged for the test. */
static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct proto_reader r = { 0 };
	int sock = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (sock < 0) {
		f->failed = true;
		return NULL;
	}
	/* A client that waits for a reply the fake holds back (it expects
	 * more requests first) fails in seconds, not never. */
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO,
		   &(struct timeval){ .tv_sec = 5 }, sizeof(struct timeval));
	for (size_t i = 0;
	     i < MAX_STEPS && (f->steps[i].expect || f->steps[i].lines[0]);
	     i++) {
		const struct step *s = &f->steps[i];
		struct json_object *seq = NULL;
		struct proto_msg m = { 0 };
		const char *seq_text = "null";

		if (s->expect) {
			if (proto_recv(sock, &r, &m) < 0 ||
			    !streq(proto_get_string(m.obj, "cmd"), s->expect)) {
				fprintf(stderr, "fake: step %zu: wanted %s\n", i, s->expect);
				f->failed = true;
				proto_msg_clear(&m);
				break;
			}
			snprintf(f->got[i], sizeof(f->got[i]), "%s",
				 json_object_to_json_string_ext(
					 m.obj, JSON_C_TO_STRING_PLAIN));
			if (json_object_object_get_ex(m.obj, "seq", &seq))
				seq_text = json_object_to_json_string(seq);
		}
		for (size_t j = 0; j < MAX_LINES && s->lines[j]; j++)
			fake_send(f, sock, s->lines[j], seq_text, s->fds[j]);
		proto_msg_clear(&m);
		if (s->hangup)
			goto out;
	}
	/* Hold the connection until the client hangs up. */
	for (;;) {
		struct proto_msg m;
		int q = proto_recv(sock, &r, &m);

		if (q < 0 && q != -EBADMSG && q != -EBADF)
			break;
		proto_msg_clear(&m);
	}
out:
	proto_reader_free(&r);
	close(sock);
	return NULL;
}

#define HELLO_STEP                                                        \
	{                                                                 \
		.expect = "HELLO", .lines = {                             \
			"{\"ok\":true,\"reply\":\"HELLO\",\"version\":1," \
			"\"generation\":5,\"seq\":$SEQ}"                  \
		}                                                         \
	}

static struct fake *fake_start(const struct step *steps, size_t n)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	assert_non_null(f);
	assert_true(n <= MAX_STEPS);
	memcpy(f->steps, steps, n * sizeof(*steps));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-libluod-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listen_fd >= 0);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)),
			 0);
	assert_int_equal(listen(f->listen_fd, 1), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	return f;
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->thread, NULL);
	assert_false(f->failed);
	for (size_t i = 0; i < f->n_pipes; i++)
		close(f->pipe_rd[i]);
	close(f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
}

/* fd is the write end of the fake's k-th pipe: prove it by using it. */
static void assert_fd_is_pipe(struct fake *f, size_t k, int fd)
{
	char buf[8] = { 0 };

	assert_true(fd >= 0);
	assert_true(k < f->n_pipes);
	assert_int_equal(write(fd, "ok", 2), 2);
	assert_int_equal(read(f->pipe_rd[k], buf, sizeof(buf)), 2);
	assert_string_equal(buf, "ok");
}

static bool poll_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_connect_hello(void **state)
{
	struct step steps[] = { HELLO_STEP };
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct json_object *hello;
	struct luod_client *c;
	int64_t v;

	(void)state;
	assert_int_equal(luod_connect(f->path, "vm1", &c), 0);
	assert_int_equal(luod_generation(c), 5);
	assert_string_equal(luod_last_error(c), "");
	assert_false(poll_readable(luod_fd(c)));

	hello = json_tokener_parse(f->got[0]);
	assert_true(proto_get_int64(hello, "version", &v));
	assert_int_equal(v, 1);
	assert_string_equal(proto_get_string(hello, "id"), "vm1");
	assert_true(json_object_object_get_ex(hello, "seq", NULL));
	json_object_put(hello);
	luod_disconnect(c);
	fake_stop(f);
}

static void test_connect_env_and_errors(void **state)
{
	struct step steps[] = { HELLO_STEP };
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c = NULL;

	(void)state;
	assert_int_equal(luod_connect(f->path, "bad/id", &c), -EINVAL);
	assert_int_equal(luod_connect("/nonexistent/luod.sock", "vm1", &c),
			 -ENOENT);
	setenv("LUOD_SOCKET", f->path, 1);
	assert_int_equal(luod_connect(NULL, NULL, &c), 0);
	unsetenv("LUOD_SOCKET");
	luod_disconnect(c);
	fake_stop(f);
}

/* PREPARE (with an fd) arrives before SUBSCRIBE's reply: it must wait in
 * the queue, keep luod_fd() readable, and keep its fd. */
static void test_event_during_call(void **state)
{
	struct step steps[] = {
		HELLO_STEP,
		{ .expect = "SUBSCRIBE",
		  .lines = { "{\"event\":\"PREPARE\",\"update\":3,\"timeout_ms\":"
			     "60000,\"new_session\":\"s\",\"fds\":1}",
			     "{\"ok\":true,\"reply\":\"SUBSCRIBE\",\"seq\":$SEQ}" },
		  .fds = { 1, 0 } },
		{ .expect = "READY",
		  .lines = { "{\"ok\":true,\"reply\":\"READY\",\"seq\":$SEQ}" } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c;
	struct luod_event ev;

	(void)state;
	assert_int_equal(luod_connect(f->path, "vm1", &c), 0);
	assert_int_equal(luod_subscribe(c), 0);
	assert_true(poll_readable(luod_fd(c)));

	assert_int_equal(luod_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, LUOD_EVENT_PREPARE);
	assert_string_equal(ev.name, "PREPARE");
	assert_int_equal(ev.update, 3);
	assert_int_equal(ev.timeout_ms, 60000);
	assert_string_equal(ev.new_session, "s");
	assert_fd_is_pipe(f, 0, ev.new_session_fd);
	close(ev.new_session_fd);

	assert_false(poll_readable(luod_fd(c)));
	assert_int_equal(luod_next_event(c, &ev, 0), 0);
	assert_int_equal(luod_ready(c), 0);
	luod_disconnect(c);
	fake_stop(f);
}

static void test_stale_reply_ignored(void **state)
{
	struct step steps[] = {
		HELLO_STEP,
		{ .expect = "READY",
		  .lines = { "{\"ok\":false,\"reply\":\"READY\",\"seq\":999,"
			     "\"error\":\"WRONG_STATE\",\"message\":\"old\"}",
			     "{\"ok\":true,\"reply\":\"READY\",\"seq\":$SEQ}" } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c;

	(void)state;
	assert_int_equal(luod_connect(f->path, "vm1", &c), 0);
	assert_int_equal(luod_ready(c), 0);
	assert_string_equal(luod_last_error(c), "");
	luod_disconnect(c);
	fake_stop(f);
}

static void test_refusal(void **state)
{
	struct step steps[] = {
		HELLO_STEP,
		{ .expect = "CREATE_SESSION",
		  .lines = { "{\"ok\":false,\"reply\":\"CREATE_SESSION\",\"seq\":"
			     "$SEQ,\"error\":\"ALREADY_EXISTS\",\"message\":"
			     "\"vm1 already has a session named ram\"}" } },
		{ .expect = "CREATE_SESSION",
		  .lines = { "{\"ok\":true,\"reply\":\"CREATE_SESSION\",\"seq\":"
			     "$SEQ,\"session\":{\"name\":\"disk\"},\"fds\":1}" },
		  .fds = { 1 } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c;
	struct json_object *req;
	int fd = -1;

	(void)state;
	assert_int_equal(luod_connect(f->path, "vm1", &c), 0);
	assert_int_equal(luod_create_session(c, "bad name", &fd), -EINVAL);
	assert_int_equal(luod_create_session(c, "ram", &fd), -EPROTO);
	assert_int_equal(fd, -1);
	assert_string_equal(luod_last_error(c), "ALREADY_EXISTS");
	assert_string_equal(luod_last_error_message(c),
			    "vm1 already has a session named ram");

	assert_int_equal(luod_create_session(c, "disk", &fd), 0);
	assert_fd_is_pipe(f, 0, fd);
	close(fd);
	req = json_tokener_parse(f->got[2]);
	assert_string_equal(proto_get_string(req, "name"), "disk");
	assert_string_equal(proto_get_string(req, "id"), "vm1");
	json_object_put(req);
	luod_disconnect(c);
	fake_stop(f);
}

static void test_claim(void **state)
{
	struct step steps[] = {
		HELLO_STEP,
		{ .expect = "CLAIM",
		  .lines = { "{\"ok\":false,\"reply\":\"CLAIM\",\"seq\":$SEQ,"
			     "\"error\":\"NOT_FOUND\",\"message\":\"none\"}" } },
		{ .expect = "CLAIM",
		  .lines = { "{\"ok\":true,\"reply\":\"CLAIM\",\"seq\":$SEQ,"
			     "\"sessions\":[{\"name\":\"ram\",\"state\":"
			     "\"claimed\",\"generation\":4,\"kernel_name\":"
			     "\"luod.1.vm1.ram\"},{\"name\":\"disk\",\"state\":"
			     "\"outgoing\",\"generation\":5,\"kernel_name\":"
			     "\"luod.2.vm1.disk\"}],\"fds\":2}" },
		  .fds = { 2 } },
		{ .expect = "FINISHED",
		  .lines = { "{\"ok\":true,\"reply\":\"FINISHED\",\"seq\":$SEQ}" } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_session *s = NULL;
	struct luod_client *c;
	struct json_object *req;
	size_t n = 0;

	(void)state;
	assert_int_equal(luod_connect(f->path, "vm1", &c), 0);
	assert_int_equal(luod_claim(c, "ram", &s, &n), -ENOENT);
	req = json_tokener_parse(f->got[1]);
	assert_string_equal(proto_get_string(req, "name"), "ram");
	json_object_put(req);

	assert_int_equal(luod_claim(c, NULL, &s, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(s[0].name, "ram");
	assert_string_equal(s[0].kernel_name, "luod.1.vm1.ram");
	assert_int_equal(s[0].generation, 4);
	assert_int_equal(s[0].claimed, 1);
	assert_string_equal(s[1].name, "disk");
	assert_int_equal(s[1].claimed, 0);
	assert_fd_is_pipe(f, 0, s[0].fd);
	assert_fd_is_pipe(f, 1, s[1].fd);
	luod_sessions_free(s, n);
	/* Freed means closed: the fake's read ends now see EOF. */
	assert_int_equal(read(f->pipe_rd[0], &(char){ 0 }, 1), 0);
	assert_int_equal(read(f->pipe_rd[1], &(char){ 0 }, 1), 0);

	assert_int_equal(luod_finished(c, "ram"), 0);
	luod_disconnect(c);
	fake_stop(f);
}

/* The three requests of a first start arrive before any reply is sent:
 * one round trip. An event among the replies is queued. */
static void test_connect_subscribed_pipelines(void **state)
{
	struct step steps[] = {
		{ .expect = "HELLO" },
		{ .expect = "CREATE_SESSION" },
		{ .expect = "SUBSCRIBE",
		  .lines = { "{\"ok\":true,\"reply\":\"HELLO\",\"version\":1,"
			     "\"generation\":5,\"seq\":1}",
			     "{\"ok\":true,\"reply\":\"CREATE_SESSION\",\"seq\":2,"
			     "\"session\":{\"name\":\"ram\",\"kernel_name\":"
			     "\"luod.1.vm1.ram\"},\"fds\":1}",
			     "{\"event\":\"ABORTED\",\"update\":3,\"reason\":\"test\"}",
			     "{\"ok\":true,\"reply\":\"SUBSCRIBE\",\"seq\":3}" },
		  .fds = { 0, 1 } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c = NULL;
	struct luod_event ev;
	struct json_object *req;
	int sfd = -1;

	(void)state;
	assert_int_equal(luod_connect_subscribed(f->path, "vm1", "ram", &sfd, &c),
			 0);
	assert_int_equal(luod_generation(c), 5);
	assert_fd_is_pipe(f, 0, sfd);
	req = json_tokener_parse(f->got[1]);
	assert_string_equal(proto_get_string(req, "name"), "ram");
	assert_string_equal(proto_get_string(req, "id"), "vm1");
	json_object_put(req);
	assert_true(poll_readable(luod_fd(c)));
	assert_int_equal(luod_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, LUOD_EVENT_ABORTED);
	assert_false(poll_readable(luod_fd(c)));
	close(sfd);
	luod_disconnect(c);
	fake_stop(f);
}

/* A refused CREATE_SESSION: the errno says why, nothing stays open. */
static void test_connect_subscribed_refused(void **state)
{
	struct step steps[] = {
		{ .expect = "HELLO" },
		{ .expect = "CREATE_SESSION" },
		{ .expect = "SUBSCRIBE",
		  .lines = { "{\"ok\":true,\"reply\":\"HELLO\",\"version\":1,\"seq\":1}",
			     "{\"ok\":false,\"reply\":\"CREATE_SESSION\",\"seq\":2,"
			     "\"error\":\"ALREADY_EXISTS\",\"message\":\"taken\"}",
			     "{\"ok\":true,\"reply\":\"SUBSCRIBE\",\"seq\":3}" } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c = NULL;
	int sfd = -1;

	(void)state;
	assert_int_equal(luod_connect_subscribed(f->path, "vm1", "ram", &sfd, &c),
			 -EEXIST);
	assert_null(c);
	assert_int_equal(luod_connect_subscribed(f->path, NULL, "ram", &sfd, &c),
			 -EINVAL);
	fake_stop(f);
}

static void test_events_and_timeout(void **state)
{
	struct step steps[] = {
		HELLO_STEP,
		{ .lines = { "{\"event\":\"START_PRESERVATION\",\"fds\":1}",
			     "{\"event\":\"ABORTED\",\"reason\":\"vm2 is not "
			     "ready\"}",
			     "{\"event\":\"SOMETHING_NEW\"}" },
		  .fds = { 1 } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c;
	struct luod_event ev;
	uint64_t t;

	(void)state;
	assert_int_equal(luod_connect(f->path, "vm1", &c), 0);
	assert_int_equal(luod_next_event(c, &ev, -1), 1);
	assert_int_equal(ev.type, LUOD_EVENT_PREPARE);
	assert_string_equal(ev.name, "START_PRESERVATION");
	assert_fd_is_pipe(f, 0, ev.new_session_fd);
	close(ev.new_session_fd);

	assert_int_equal(luod_next_event(c, &ev, 1000), 1);
	assert_int_equal(ev.type, LUOD_EVENT_ABORTED);
	assert_string_equal(ev.reason, "vm2 is not ready");
	assert_int_equal(ev.new_session_fd, -1);

	assert_int_equal(luod_next_event(c, &ev, 1000), 1);
	assert_int_equal(ev.type, LUOD_EVENT_OTHER);
	assert_string_equal(ev.name, "SOMETHING_NEW");

	t = now_mono_us();
	assert_int_equal(luod_next_event(c, &ev, 100), 0);
	t = now_mono_us() - t;
	assert_true(t >= 100000 && t < 1000000);
	luod_disconnect(c);
	fake_stop(f);
}

static void test_call_json(void **state)
{
	struct step steps[] = {
		HELLO_STEP,
		{ .expect = "LIST",
		  .lines = { "{\"ok\":true,\"reply\":\"LIST\",\"sessions\":[],"
			     "\"seq\":$SEQ}" } },
		{ .expect = "KEXEC",
		  .lines = { "{\"ok\":false,\"reply\":\"KEXEC\",\"seq\":$SEQ,"
			     "\"error\":\"NO_KERNEL_LOADED\",\"message\":\"m\"}" } },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct json_object *reply;
	struct luod_client *c;
	char *text = NULL;

	(void)state;
	assert_int_equal(luod_connect(f->path, NULL, &c), 0);
	assert_int_equal(luod_call_json(c, "[1]", &text), -EINVAL);
	/* A caller's own seq is kept and matched. */
	assert_int_equal(luod_call_json(c, "{\"cmd\":\"LIST\",\"seq\":\"x\"}",
					&text),
			 0);
	reply = json_tokener_parse(text);
	assert_string_equal(proto_get_string(reply, "reply"), "LIST");
	assert_string_equal(proto_get_string(reply, "seq"), "x");
	json_object_put(reply);
	free(text);
	text = NULL;

	assert_int_equal(luod_call_json(c, "{\"cmd\":\"KEXEC\"}", &text),
			 -EPROTO);
	assert_null(text);
	assert_string_equal(luod_last_error(c), "NO_KERNEL_LOADED");
	luod_disconnect(c);
	fake_stop(f);
}

/* luod goes away mid-request: the call fails, what came before it stays. */
static void test_connection_lost(void **state)
{
	struct step steps[] = {
		HELLO_STEP,
		{ .expect = "READY",
		  .lines = { "{\"event\":\"ABORTED\",\"reason\":\"r\"}" },
		  .hangup = true },
	};
	struct fake *f = fake_start(steps, ARRAY_SIZE(steps));
	struct luod_client *c;
	struct luod_event ev;

	(void)state;
	assert_int_equal(luod_connect(f->path, "vm1", &c), 0);
	assert_int_equal(luod_ready(c), -ECONNRESET);
	assert_int_equal(luod_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, LUOD_EVENT_ABORTED);
	assert_int_equal(luod_next_event(c, &ev, -1), -ECONNRESET);
	assert_int_equal(luod_subscribe(c), -ECONNRESET);
	luod_disconnect(c);
	fake_stop(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_hello),
		cmocka_unit_test(test_connect_env_and_errors),
		cmocka_unit_test(test_event_during_call),
		cmocka_unit_test(test_stale_reply_ignored),
		cmocka_unit_test(test_refusal),
		cmocka_unit_test(test_claim),
		cmocka_unit_test(test_connect_subscribed_pipelines),
		cmocka_unit_test(test_connect_subscribed_refused),
		cmocka_unit_test(test_events_and_timeout),
		cmocka_unit_test(test_call_json),
		cmocka_unit_test(test_connection_lost),
	};

	return cmocka_run_group_tests_name("libluod", tests, NULL, NULL);
}
