// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The codec over a real socketpair: fds must end up on the line that
 * announced them (and nowhere else), and a bad line must never desync or
 * leak. Every fd check is done by using the fd, not by trusting a count.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "fdmsg.h"
#include "proto.h"
#include "util.h"

struct pair {
	int a, b; /* a: the sender, b: the reader under test */
	struct proto_reader r;
};

static int setup_pair(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	int sv[2];

	if (!p || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	p->a = sv[0];
	p->b = sv[1];
	*state = p;
	return 0;
}

static int teardown_pair(void **state)
{
	struct pair *p = *state;

	proto_reader_free(&p->r);
	safe_close(p->a);
	safe_close(p->b);
	free(p);
	return 0;
}

static size_t count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* One sendmsg() with exactly these bytes and fds, bypassing the writer. */
static void send_raw(int sock, const char *data, size_t len, const int *fds,
		     size_t n_fds)
{
	assert_int_equal(fdmsg_send(sock, data, len, fds, n_fds, 0),
			 (ssize_t)len);
}

static void send_str(int sock, const char *s, const int *fds, size_t n_fds)
{
	send_raw(sock, s, strlen(s), fds, n_fds);
}

/* The read end sees EOF only once every copy of the write end is closed. */
static void assert_pipe_eof(int rfd)
{
	char c;

	assert_int_equal(fcntl(rfd, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(read(rfd, &c, 1), 0);
}

static void assert_pipe_carries(int wfd, int rfd, const char *text)
{
	char buf[64] = { 0 };

	assert_int_equal(write(wfd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(read(rfd, buf, sizeof(buf) - 1),
			 (ssize_t)strlen(text));
	assert_string_equal(buf, text);
}

static void test_roundtrip_no_fds(void **state)
{
	struct pair *p = *state;
	struct json_object *req = proto_request("STATUS");
	struct proto_msg m;
	int64_t seq = 0;

	json_object_object_add(req, "seq", json_object_new_int(41));
	assert_int_equal(proto_send(p->a, req, NULL, 0), 0);
	json_object_put(req);

	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "cmd"), "STATUS");
	assert_true(proto_get_int64(m.obj, "seq", &seq));
	assert_int_equal(seq, 41);
	/* No fds: the writer must not announce any. */
	assert_false(json_object_object_get_ex(m.obj, "fds", NULL));
	assert_int_equal(m.n_fds, 0);
	proto_msg_clear(&m);
}

static void test_roundtrip_one_fd(void **state)
{
	struct pair *p = *state;
	struct json_object *ev = proto_event("PREPARE");
	struct proto_msg m;
	int64_t n = 0;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(proto_send(p->a, ev, &pfd[1], 1), 0);
	json_object_put(ev);
	/* The writer sent a dup: ours is still ours to close. */
	assert_int_equal(fcntl(pfd[1], F_GETFD), FD_CLOEXEC);
	close(pfd[1]);

	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "event"), "PREPARE");
	assert_true(proto_get_int64(m.obj, "fds", &n));
	assert_int_equal(n, 1);
	assert_int_equal(m.n_fds, 1);
	assert_int_equal(fcntl(m.fds[0], F_GETFD), FD_CLOEXEC);
	assert_pipe_carries(m.fds[0], pfd[0], "through the socket");

	proto_msg_clear(&m);
	assert_pipe_eof(pfd[0]);
	close(pfd[0]);
}

static void test_roundtrip_three_fds(void **state)
{
	struct pair *p = *state;
	struct json_object *reply = proto_reply_ok("CLAIM", NULL);
	int pipes[3][2], wr[3];
	struct proto_msg m;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(pipe2(pipes[i], O_CLOEXEC), 0);
		wr[i] = pipes[i][1];
	}
	assert_int_equal(proto_send(p->a, reply, wr, 3), 0);
	json_object_put(reply);
	for (int i = 0; i < 3; i++)
		close(wr[i]);

	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_int_equal(m.n_fds, 3);
	/* Order matters: fds describe array entries by position. */
	assert_pipe_carries(m.fds[0], pipes[0][0], "zero");
	assert_pipe_carries(m.fds[1], pipes[1][0], "one");
	assert_pipe_carries(m.fds[2], pipes[2][0], "two");
	proto_msg_clear(&m);
	for (int i = 0; i < 3; i++) {
		assert_pipe_eof(pipes[i][0]);
		close(pipes[i][0]);
	}
}

static void test_unsolicited_fds_closed(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;
	size_t before;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	before = count_open_fds();
	send_str(p->a, "{\"cmd\":\"STATUS\"}\n", &pfd[1], 1);
	close(pfd[1]);

	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "cmd"), "STATUS");
	assert_int_equal(m.n_fds, 0);
	proto_msg_clear(&m);

	assert_int_equal(proto_reader_pending_fds(&p->r), 0);
	assert_int_equal(count_open_fds(), before - 1);
	assert_pipe_eof(pfd[0]);
	close(pfd[0]);
}

static void test_fds_count_mismatch(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;
	size_t before;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	before = count_open_fds();

	/* Announces two, carries one. */
	send_str(p->a, "{\"cmd\":\"X\",\"fds\":2}\n", &pfd[1], 1);
	close(pfd[1]);
	assert_int_equal(proto_recv(p->b, &p->r, &m), -EBADF);
	assert_null(m.obj);
	assert_pipe_eof(pfd[0]);
	close(pfd[0]);

	/* Announces one, carries none. */
	send_str(p->a, "{\"cmd\":\"X\",\"fds\":1}\n", NULL, 0);
	assert_int_equal(proto_recv(p->b, &p->r, &m), -EBADF);

	/* "fds" of the wrong type is a mismatch too. */
	send_str(p->a, "{\"cmd\":\"X\",\"fds\":\"1\"}\n", NULL, 0);
	assert_int_equal(proto_recv(p->b, &p->r, &m), -EBADF);

	/* The stream is still in step. */
	send_str(p->a, "{\"cmd\":\"AFTER\"}\n", NULL, 0);
	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "cmd"), "AFTER");
	proto_msg_clear(&m);
	assert_int_equal(count_open_fds(), before - 2);
}

static void test_bad_lines_then_good(void **state)
{
	static const char *const bad[] = {
		"{\"cmd\":\n", /* unterminated */
		"not json\n",
		"[1,2,3]\n", /* valid JSON, not an object */
		"\"cmd\"\n",
		"42\n",
		"\n",
		"{\"cmd\":\"X\"} garbage\n",
		"{\"cmd\":\"X\"}{\"cmd\":\"Y\"}\n",
		"{'cmd':'X'}\n", /* not strict JSON */
	};
	struct pair *p = *state;
	struct proto_msg m;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		send_str(p->a, bad[i], NULL, 0);
		send_str(p->a, "{\"cmd\":\"GOOD\",\"i\":1}\n", NULL, 0);

		assert_int_equal(proto_recv(p->b, &p->r, &m), -EBADMSG);
		assert_null(m.obj);
		assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
		assert_string_equal(proto_get_string(m.obj, "cmd"), "GOOD");
		proto_msg_clear(&m);
	}
}

static void test_bad_line_closes_its_fds(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	send_str(p->a, "{\"fds\":1,\n", &pfd[1], 1);
	close(pfd[1]);
	assert_int_equal(proto_recv(p->b, &p->r, &m), -EBADMSG);
	assert_pipe_eof(pfd[0]);
	close(pfd[0]);
}

static void test_trailing_whitespace_ok(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;

	/* A client typing at socat, or writing "\r\n", must still work. */
	send_str(p->a, "{\"cmd\":\"STATUS\"} \t\r\n", NULL, 0);
	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "cmd"), "STATUS");
	proto_msg_clear(&m);
}

/* A line of exactly len bytes before its newline: {"x":"aaa..."} */
static char *make_line(size_t len)
{
	char *s = malloc(len + 2);

	if (!s)
		abort(); /* also called off the test thread: no asserts */
	memset(s, 'a', len);
	memcpy(s, "{\"x\":\"", 6);
	memcpy(s + len - 2, "\"}", 2);
	s[len] = '\n';
	s[len + 1] = '\0';
	return s;
}

/* No cmocka asserts here: they must run on the test's own thread. */
static void send_all(int sock, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = send(sock, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the reader gave up and closed */
		s += n;
		len -= (size_t)n;
	}
}

static void *writer_thread(void *arg)
{
	struct pair *p = arg;
	char *max = make_line(PROTO_MAX_LINE);
	char *over = make_line(PROTO_MAX_LINE + 1);

	/* Big lines overrun the socket buffer: the reader drains them. */
	if (max && over) {
		send_all(p->a, max);
		send_all(p->a, over);
	}
	free(max);
	free(over);
	return NULL;
}

static void test_line_too_long(void **state)
{
	struct pair *p = *state;
	struct json_object *big;
	struct proto_msg m;
	pthread_t t;
	char *text;

	assert_int_equal(pthread_create(&t, NULL, writer_thread, p), 0);

	/* Exactly the limit is fine... */
	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_int_equal(strlen(proto_get_string(m.obj, "x")),
			 PROTO_MAX_LINE - 8);
	proto_msg_clear(&m);
	/* ...one more byte is not, and the stream is then lost for good. */
	assert_int_equal(proto_recv(p->b, &p->r, &m), -EMSGSIZE);
	assert_int_equal(proto_reader_next(&p->r, &m), -EMSGSIZE);
	/* Unblock the writer if the rest of its line did not fit. */
	p->b = safe_close(p->b);
	pthread_join(t, NULL);

	/* The writer refuses to produce such a line in the first place. */
	text = make_line(PROTO_MAX_LINE + 1);
	text[PROTO_MAX_LINE + 1] = '\0'; /* drop the newline */
	big = json_tokener_parse(text);
	assert_non_null(big);
	assert_int_equal(proto_send(p->a, big, NULL, 0), -EMSGSIZE);
	json_object_put(big);
	free(text);
}

/* luod's STATUS and LIST may pass the 64 KiB a client may send. */
static void *reply_writer_thread(void *arg)
{
	struct pair *p = arg;
	struct proto_writer w = { .max_line = PROTO_MAX_REPLY };
	char *text = make_line(PROTO_MAX_LINE * 4);
	struct json_object *o;

	text[PROTO_MAX_LINE * 4] = '\0'; /* drop the newline */
	o = json_tokener_parse(text);
	free(text);
	if (!o || proto_writer_queue(&w, o, NULL, 0) < 0)
		abort();
	json_object_put(o);
	while (!proto_writer_empty(&w)) {
		int r = proto_writer_flush(&w, p->a);

		if (r < 0 && r != -EAGAIN)
			break;
	}
	proto_writer_free(&w);
	return NULL;
}

static void test_long_reply(void **state)
{
	struct pair *p = *state;
	struct proto_writer w = { 0 };
	struct json_object *o;
	struct proto_msg m;
	pthread_t t;
	char *text;

	/* A plain writer still refuses it; one of luod's takes it. */
	text = make_line(PROTO_MAX_LINE * 4);
	text[PROTO_MAX_LINE * 4] = '\0';
	o = json_tokener_parse(text);
	free(text);
	assert_non_null(o);
	assert_int_equal(proto_writer_queue(&w, o, NULL, 0), -EMSGSIZE);
	w.max_line = PROTO_MAX_REPLY;
	assert_int_equal(proto_writer_queue(&w, o, NULL, 0), 0);
	proto_writer_free(&w);
	assert_int_equal(w.max_line, PROTO_MAX_REPLY);
	json_object_put(o);

	/* A client's reader takes it whole. */
	p->r.max_line = PROTO_MAX_REPLY;
	assert_int_equal(pthread_create(&t, NULL, reply_writer_thread, p), 0);
	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_int_equal(strlen(proto_get_string(m.obj, "x")),
			 PROTO_MAX_LINE * 4 - 8);
	proto_msg_clear(&m);
	pthread_join(t, NULL);
}

static void test_long_line_without_newline(void **state)
{
	struct pair *p = *state;
	char *s = make_line(PROTO_MAX_LINE + 100);
	struct proto_msg m;
	int r;

	/* Never a newline: the reader must give up, not buffer forever. */
	s[PROTO_MAX_LINE + 100] = 'a';
	assert_int_equal(setsockopt(p->a, SOL_SOCKET, SO_SNDBUF,
				    &(int){ 512 * 1024 }, sizeof(int)),
			 0);
	assert_int_equal(write_all(p->a, s, PROTO_MAX_LINE + 101), 0);
	free(s);
	do
		r = proto_recv(p->b, &p->r, &m);
	while (r == -EINTR);
	assert_int_equal(r, -EMSGSIZE);
}

static void test_one_byte_at_a_time(void **state)
{
	struct pair *p = *state;
	const char *line = "{\"event\":\"PREPARE\",\"update\":7,\"fds\":1}\n";
	struct proto_msg m;
	int64_t update = 0;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	for (size_t i = 0; line[i]; i++) {
		/* The fd rides with the first byte, as the protocol says. */
		send_raw(p->a, line + i, 1, &pfd[1], i == 0 ? 1 : 0);
		assert_int_equal(proto_reader_fill(&p->r, p->b), 1);
		if (line[i + 1]) {
			assert_int_equal(proto_reader_next(&p->r, &m), 0);
			assert_int_equal(proto_reader_pending_fds(&p->r), 1);
		}
	}
	close(pfd[1]);
	assert_int_equal(proto_reader_next(&p->r, &m), 1);
	assert_true(proto_get_int64(m.obj, "update", &update));
	assert_int_equal(update, 7);
	assert_int_equal(m.n_fds, 1);
	assert_pipe_carries(m.fds[0], pfd[0], "x");
	proto_msg_clear(&m);
	assert_int_equal(proto_reader_next(&p->r, &m), 0);
	assert_pipe_eof(pfd[0]);
	close(pfd[0]);
}

static void test_two_messages_one_write(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;

	send_str(p->a, "{\"cmd\":\"A\"}\n{\"cmd\":\"B\"}\n", NULL, 0);
	assert_int_equal(proto_reader_fill(&p->r, p->b), 24);
	assert_int_equal(proto_reader_next(&p->r, &m), 1);
	assert_string_equal(proto_get_string(m.obj, "cmd"), "A");
	proto_msg_clear(&m);
	assert_int_equal(proto_reader_next(&p->r, &m), 1);
	assert_string_equal(proto_get_string(m.obj, "cmd"), "B");
	proto_msg_clear(&m);
	assert_int_equal(proto_reader_next(&p->r, &m), 0);
}

/*
 * A slow reader: luod wrote a reply without fds, then an event with one,
 * before the client read anything. The kernel returns both in one
 * recvmsg(), with the fd. It belongs to the event, not the reply.
 */
static void test_fd_after_plain_line_in_one_read(void **state)
{
	const char *reply = "{\"ok\":true,\"reply\":\"SUBSCRIBE\"}\n";
	const char *event = "{\"event\":\"PREPARE\",\"fds\":1}\n";
	struct pair *p = *state;
	struct proto_msg m;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	send_str(p->a, reply, NULL, 0);
	send_str(p->a, event, &pfd[1], 1);
	close(pfd[1]);

	/* One read returns both: that is what makes this case hard. */
	assert_int_equal(proto_reader_fill(&p->r, p->b),
			 (int)(strlen(reply) + strlen(event)));
	assert_int_equal(proto_reader_next(&p->r, &m), 1);
	assert_string_equal(proto_get_string(m.obj, "reply"), "SUBSCRIBE");
	assert_int_equal(m.n_fds, 0);
	proto_msg_clear(&m);
	assert_int_equal(proto_reader_next(&p->r, &m), 1);
	assert_string_equal(proto_get_string(m.obj, "event"), "PREPARE");
	assert_int_equal(m.n_fds, 1);
	assert_pipe_carries(m.fds[0], pfd[0], "mine");
	proto_msg_clear(&m);
	close(pfd[0]);
}

/* The same when the plain message is a tail of a line begun earlier. */
static void test_fd_after_partial_line(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	send_str(p->a, "{\"ok\":true,", NULL, 0);
	assert_int_equal(proto_reader_fill(&p->r, p->b), 11);
	assert_int_equal(proto_reader_next(&p->r, &m), 0);
	send_str(p->a, "\"reply\":\"READY\"}\n", NULL, 0);
	send_str(p->a, "{\"event\":\"PREPARE\",\"fds\":1}\n", &pfd[1], 1);
	close(pfd[1]);

	assert_true(proto_reader_fill(&p->r, p->b) > 0);
	assert_int_equal(proto_reader_next(&p->r, &m), 1);
	assert_string_equal(proto_get_string(m.obj, "reply"), "READY");
	assert_int_equal(m.n_fds, 0);
	proto_msg_clear(&m);
	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_int_equal(m.n_fds, 1);
	assert_pipe_carries(m.fds[0], pfd[0], "mine");
	proto_msg_clear(&m);
	close(pfd[0]);
}

/* Fds on the first of two lines: the kernel stops the read after them. */
static void test_fd_then_plain_line(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	send_str(p->a, "{\"event\":\"PREPARE\",\"fds\":1}\n", &pfd[1], 1);
	send_str(p->a, "{\"event\":\"ABORTED\"}\n", NULL, 0);
	close(pfd[1]);

	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "event"), "PREPARE");
	assert_int_equal(m.n_fds, 1);
	assert_pipe_carries(m.fds[0], pfd[0], "mine");
	proto_msg_clear(&m);
	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "event"), "ABORTED");
	assert_int_equal(m.n_fds, 0);
	proto_msg_clear(&m);
	close(pfd[0]);
}

static void test_seq_echo(void **state)
{
	struct json_object *seqs[] = {
		json_object_new_int(7),
		json_object_new_string("abc"),
		json_tokener_parse("{\"n\":[1,2]}"),
	};
	struct json_object *req, *reply, *seq;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(seqs); i++) {
		req = proto_request("LIST");
		json_object_object_add(req, "seq", seqs[i]);
		reply = proto_reply_ok("LIST", req);
		assert_true(json_object_object_get_ex(reply, "seq", &seq));
		assert_true(json_object_equal(seq, seqs[i]));
		json_object_put(req);
		json_object_put(reply);
	}

	/* No "seq" asked, none echoed. */
	req = proto_request("LIST");
	reply = proto_reply_ok("LIST", req);
	assert_false(json_object_object_get_ex(reply, "seq", NULL));
	json_object_put(reply);
	json_object_put(req);
}

static void test_reply_shapes(void **state)
{
	struct json_object *req = proto_request("CLAIM"), *ok, *err;
	bool b = true;
	int64_t seq = 0;

	(void)state;
	json_object_object_add(req, "seq", json_object_new_int(3));
	ok = proto_reply_ok("CLAIM", req);
	assert_true(proto_get_bool(ok, "ok", &b));
	assert_true(b);
	assert_string_equal(proto_get_string(ok, "reply"), "CLAIM");
	assert_null(proto_get_string(ok, "error"));

	err = proto_reply_error("CLAIM", req, PROTO_E_NOT_FOUND,
				"no session %s for %s", "ram", "vm1");
	assert_true(proto_get_bool(err, "ok", &b));
	assert_false(b);
	assert_string_equal(proto_get_string(err, "reply"), "CLAIM");
	assert_string_equal(proto_get_string(err, "error"), "NOT_FOUND");
	assert_string_equal(proto_get_string(err, "message"),
			    "no session ram for vm1");
	assert_true(proto_get_int64(err, "seq", &seq));
	assert_int_equal(seq, 3);

	/* Typed getters refuse other types rather than guess. */
	assert_null(proto_get_string(err, "seq"));
	assert_false(proto_get_int64(err, "error", &seq));
	assert_false(proto_get_bool(err, "missing", &b));
	json_object_put(ok);
	json_object_put(err);
	json_object_put(req);
}

static void test_valid_name(void **state)
{
	char name[PROTO_ID_MAX + 2];

	(void)state;
	assert_false(proto_valid_name(NULL));
	assert_false(proto_valid_name(""));
	assert_true(proto_valid_name("a"));
	assert_true(proto_valid_name("vm-1.ram_0@host:+"));

	memset(name, 'x', sizeof(name));
	name[PROTO_ID_MAX] = '\0';
	assert_true(proto_valid_name(name)); /* 64 bytes */
	name[PROTO_ID_MAX] = 'x';
	name[PROTO_ID_MAX + 1] = '\0';
	assert_false(proto_valid_name(name)); /* 65 bytes */

	assert_false(proto_valid_name("a/b"));
	assert_false(proto_valid_name("/"));
	assert_false(proto_valid_name("../etc"));
	assert_false(proto_valid_name("a b"));
	assert_false(proto_valid_name("a\nb"));
	assert_false(proto_valid_name("caf\xc3\xa9"));
	assert_false(proto_valid_name("a*"));
}

static void test_too_many_fds(void **state)
{
	struct pair *p = *state;
	struct json_object *o = proto_request("X");
	int fds[PROTO_MAX_FDS + 1];

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		fds[i] = p->a;
	assert_int_equal(proto_send(p->a, o, fds, ARRAY_SIZE(fds)), -E2BIG);
	json_object_put(o);
}

static void test_eof(void **state)
{
	struct pair *p = *state;
	struct proto_msg m;

	send_str(p->a, "{\"cmd\":\"LAST\"}\n{\"cmd\":\"CUT", NULL, 0);
	p->a = safe_close(p->a);
	assert_int_equal(proto_recv(p->b, &p->r, &m), 0);
	assert_string_equal(proto_get_string(m.obj, "cmd"), "LAST");
	proto_msg_clear(&m);
	assert_int_equal(proto_recv(p->b, &p->r, &m), -ECONNRESET);
}

struct drain {
	int sock;
	size_t want, got;
};

static void *drain_thread(void *arg)
{
	struct drain *d = arg;
	char buf[65536];

	while (d->got < d->want) {
		ssize_t n = read(d->sock, buf, sizeof(buf));

		if (n <= 0)
			break;
		d->got += (size_t)n;
	}
	return NULL;
}

/*
 * A client with many fds open (a VMM) gets a socket numbered above
 * FD_SETSIZE; waiting for room on a full socket must still work.
 */
static void test_send_high_fd_full_socket(void **state)
{
	struct pair *p = *state;
	struct rlimit rl;
	struct drain d = { .sock = p->b };
	struct json_object *o;
	pthread_t t;
	char *line;
	int high;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2100 && rl.rlim_max >= 2100) {
		rl.rlim_cur = 2100;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	if (rl.rlim_cur < 2100)
		skip();
	high = fcntl(p->a, F_DUPFD_CLOEXEC, 2000);
	assert_true(high >= 2000);
	assert_int_equal(setsockopt(high, SOL_SOCKET, SO_SNDBUF, &(int){ 4096 },
				    sizeof(int)),
			 0);

	line = make_line(PROTO_MAX_LINE);
	line[PROTO_MAX_LINE] = '\0'; /* drop the newline */
	o = json_tokener_parse(line);
	assert_non_null(o);
	d.want = PROTO_MAX_LINE + 1;
	assert_int_equal(pthread_create(&t, NULL, drain_thread, &d), 0);
	assert_int_equal(proto_send(high, o, NULL, 0), 0);
	pthread_join(t, NULL);
	assert_int_equal(d.got, PROTO_MAX_LINE + 1);
	json_object_put(o);
	free(line);
	close(high);
}

#define PAIR_TEST(f) \
	cmocka_unit_test_setup_teardown(f, setup_pair, teardown_pair)

int main(void)
{
	const struct CMUnitTest tests[] = {
		PAIR_TEST(test_roundtrip_no_fds),
		PAIR_TEST(test_roundtrip_one_fd),
		PAIR_TEST(test_roundtrip_three_fds),
		PAIR_TEST(test_unsolicited_fds_closed),
		PAIR_TEST(test_fds_count_mismatch),
		PAIR_TEST(test_bad_lines_then_good),
		PAIR_TEST(test_bad_line_closes_its_fds),
		PAIR_TEST(test_trailing_whitespace_ok),
		PAIR_TEST(test_line_too_long),
		PAIR_TEST(test_long_reply),
		PAIR_TEST(test_long_line_without_newline),
		PAIR_TEST(test_one_byte_at_a_time),
		PAIR_TEST(test_two_messages_one_write),
		PAIR_TEST(test_fd_after_plain_line_in_one_read),
		PAIR_TEST(test_fd_after_partial_line),
		PAIR_TEST(test_fd_then_plain_line),
		cmocka_unit_test(test_seq_echo),
		cmocka_unit_test(test_reply_shapes),
		cmocka_unit_test(test_valid_name),
		PAIR_TEST(test_too_many_fds),
		PAIR_TEST(test_eof),
		PAIR_TEST(test_send_high_fd_full_socket),
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
