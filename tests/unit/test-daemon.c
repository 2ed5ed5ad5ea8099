// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod's update barrier and its state copy, driven through the command
 * handlers with the daemon's own code: clients are socketpairs, LUO is a
 * stand-in (memfds for sessions), and the reboot stops at --no-reboot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "util.h"
#include "failalloc.h"
#include "luo.h"
#include "manifest.h"

/* LUO, as far as luod's logic needs it. */
int luo_open_device(const char *path)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int luo_create_session(int dev_fd, const char *name)
{
	return memfd_create(name, MFD_CLOEXEC);
}

int luo_retrieve_session(int dev_fd, const char *name)
{
	return -ENOENT;
}

int luo_preserve_fd(int session_fd, int fd, uint64_t token)
{
	return 0;
}

int luo_retrieve_fd(int session_fd, uint64_t token)
{
	return -ENOENT;
}

int luo_finish(int session_fd)
{
	return 0;
}

int luo_get_name(int session_fd, char name[LIVEUPDATE_SESSION_NAME_LENGTH])
{
	return -ENOTTY;
}

static struct daemon d;
static char state_dir[] = "/tmp/test-daemon.XXXXXX";

struct peer {
	struct client *c;
	int fd; /* our end */
	struct proto_reader in;
};

static int setup(void **state)
{
	d = (struct daemon){
		.cfg = { .state_dir = state_dir, .timeout_s = 60,
			 .no_reboot = true },
		.epoll_fd = -1,
		.lock_fd = -1,
		.journal_fd = -1,
		.next_serial = 1,
	};
	d.timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	d.timer.handler = update_timer;
	assert_true(d.timer.fd >= 0);
	state_init(&d);
	return 0;
}

static int teardown(void **state)
{
	for (struct client *c = d.clients; c; c = c->next)
		client_fail(&d, c, "test over");
	clients_reap(&d);
	sessions_free(&d);
	client_ids_free(&d);
	safe_close(d.journal_fd);
	safe_close(d.timer.fd);
	if (d.timeline)
		json_object_put(d.timeline);
	if (d.last_timeline)
		json_object_put(d.last_timeline);
	return 0;
}

static struct peer *connect_peer(void)
{
	struct peer *p = calloc(1, sizeof(*p));
	int sv[2];

	assert_non_null(p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	p->c = calloc(1, sizeof(*p->c));
	p->c->watch.fd = sv[0];
	p->c->out.max_line = PROTO_MAX_REPLY;
	p->c->admin = true;
	p->c->pid = getpid();
	p->c->next = d.clients;
	d.clients = p->c;
	d.n_clients++;
	p->fd = sv[1];
	return p;
}

static void peer_close(struct peer *p)
{
	client_fail(&d, p->c, "closed");
	clients_reap(&d);
	close(p->fd);
	proto_reader_free(&p->in);
	free(p);
}

static void say(struct peer *p, const char *line)
{
	struct proto_msg m = { .obj = json_tokener_parse(line) };

	assert_non_null(m.obj);
	command_dispatch(&d, p->c, &m);
	clients_gc(&d); /* as the loop does after each event */
	proto_msg_clear(&m);
}

/* The next line luod sent to p that has key = value. */
static struct json_object *next_with(struct peer *p, const char *key,
				     const char *value)
{
	for (;;) {
		struct proto_msg m;

		assert_int_equal(proto_recv(p->fd, &p->in, &m), 0);
		for (size_t i = 0; i < m.n_fds; i++)
			close(m.fds[i]);
		if (streq(proto_get_string(m.obj, key), value))
			return m.obj;
		json_object_put(m.obj);
	}
}

static struct peer *subscriber(const char *id)
{
	struct peer *p = connect_peer();
	char line[128];

	snprintf(line, sizeof(line), "{\"cmd\":\"HELLO\",\"id\":\"%s\"}", id);
	say(p, line);
	say(p, "{\"cmd\":\"CREATE_SESSION\",\"name\":\"ram\"}");
	say(p, "{\"cmd\":\"SUBSCRIBE\"}");
	json_object_put(next_with(p, "reply", "SUBSCRIBE"));
	return p;
}

/* A second SUBSCRIBE on one connection while preparing counts it once: its
 * READY is all the update waits for. */
static void test_subscribe_twice(void **state)
{
	struct peer *a = subscriber("A"), *k = connect_peer();

	update_start(&d, k->c, 60, false);
	assert_int_equal(d.phase, PHASE_PREPARING);
	say(a, "{\"cmd\":\"SUBSCRIBE\"}");
	assert_int_equal(d.waiting, 1);
	say(a, "{\"cmd\":\"READY\"}");
	assert_int_equal(d.phase, PHASE_REBOOTING); /* --no-reboot stops here */
	json_object_put(next_with(k, "reply", "KEXEC"));
	peer_close(a);
	peer_close(k);
}

/* A subscriber that comes after the deadline, in the loop turn before the
 * timer's: PREPARE says no time is left, not 2^64 - 1 microseconds. */
static void test_late_prepare_timeout(void **state)
{
	struct peer *a = subscriber("A"), *k = connect_peer(), *b;
	struct json_object *e;
	int64_t ms = -1;

	update_start(&d, k->c, 60, false);
	d.deadline_us = now_mono_us() - 5000;
	b = connect_peer();
	say(b, "{\"cmd\":\"HELLO\",\"id\":\"B\"}");
	say(b, "{\"cmd\":\"SUBSCRIBE\"}");
	e = next_with(b, "event", "PREPARE");
	assert_true(proto_get_int64(e, "timeout_ms", &ms));
	assert_int_equal(ms, 0);
	json_object_put(e);
	peer_close(a);
	peer_close(b);
	peer_close(k);
}

/* An owner of sessions that is not connected when the update starts (luod
 * restarted; it reconnects) is waited for, and PREPAREd when it is back. */
static void test_absent_owner_waited_for(void **state)
{
	struct peer *a = subscriber("A"), *k = connect_peer(), *a2;
	struct json_object *e;

	peer_close(a); /* its session stays, not left */
	update_start(&d, k->c, 60, false);
	assert_int_equal(d.phase, PHASE_PREPARING);
	assert_int_equal(d.waiting, 1);
	e = next_with(k, "phase", "prepare");
	assert_string_equal(
		json_object_get_string(json_object_array_get_idx(
			json_object_object_get(e, "absent"), 0)),
		"A");
	json_object_put(e);

	a2 = connect_peer();
	say(a2, "{\"cmd\":\"HELLO\",\"id\":\"A\"}");
	say(a2, "{\"cmd\":\"SUBSCRIBE\"}");
	assert_int_equal(d.waiting, 1);
	json_object_put(next_with(a2, "event", "PREPARE"));
	assert_int_equal(d.phase, PHASE_PREPARING);
	say(a2, "{\"cmd\":\"READY\"}");
	assert_int_equal(d.phase, PHASE_REBOOTING);
	peer_close(a2);
	peer_close(k);
}

/* One that never comes back: the update times out naming it. */
static void test_absent_owner_times_out(void **state)
{
	struct peer *a = subscriber("A"), *k = connect_peer();
	struct json_object *r;

	peer_close(a);
	update_start(&d, k->c, 1, false);
	usleep(1100 * 1000);
	update_timer(&d, &d.timer, 0);
	assert_int_equal(d.phase, PHASE_IDLE);
	r = next_with(k, "reply", "KEXEC");
	assert_string_equal(proto_get_string(r, "error"), PROTO_E_ABORTED);
	assert_non_null(strstr(proto_get_string(r, "message"),
			       "A (not connected)"));
	json_object_put(r);
	/* Forced, the update does not wait for it. */
	update_start(&d, k->c, 60, true);
	assert_int_equal(d.phase, PHASE_REBOOTING);
	peer_close(k);
}

/* LEAVE, or READY and then gone: no later update waits for the owner. */
static void test_left_sessions(void **state)
{
	struct peer *a = subscriber("A"), *b = subscriber("B"),
		    *k = connect_peer();

	say(a, "{\"cmd\":\"LEAVE\"}");
	json_object_put(next_with(a, "reply", "LEAVE"));
	peer_close(a);
	update_start(&d, k->c, 60, false);
	assert_int_equal(d.waiting, 1); /* B only */
	say(b, "{\"cmd\":\"READY\"}");
	peer_close(b); /* READY, then gone */
	update_abort(&d, PROTO_E_ABORTED, "test");
	update_start(&d, k->c, 60, false);
	assert_int_equal(d.phase, PHASE_REBOOTING);
	peer_close(k);
}

/* Out of memory while writing the copy under state_dir keeps the copy
 * there: it never becomes an empty one. */
static void test_state_save_out_of_memory(void **state)
{
	/* Before anything is allocated: skip() does not return. */
	if (!failalloc_available())
		skip();
	struct peer *a = subscriber("A"), *b = subscriber("B"),
		    *c = subscriber("C");
	_cleanup_free_ char *path = NULL;
	unsigned long n, failed;

	assert_int_equal(state_save_run(&d), 0);
	assert_true(asprintf(&path, "%s/state.json", state_dir) > 0);
	for (n = 0;; n++) {
		_cleanup_free_ char *text = NULL;
		_cleanup_close_ int fd = -1;
		struct manifest m;
		size_t len;

		failalloc_at(n);
		state_save_run(&d);
		failed = failalloc_off();
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(read_all_fd(fd, MANIFEST_MAX_BYTES, &text, &len),
				 0);
		assert_int_equal(manifest_decode(text, len, &m, NULL, 0), 0);
		assert_int_equal(m.n_sessions, 3);
		manifest_clear(&m);
		if (!failed)
			break;
	}
	assert_true(n > 3);
	peer_close(a);
	peer_close(b);
	peer_close(c);
}

static size_t n_keys(struct json_object *o)
{
	size_t n = 0;

	json_object_object_foreach(o, k, v)
	{
		(void)k;
		if (json_object_is_type(v, json_type_object))
			n += n_keys(v);
		else if (json_object_is_type(v, json_type_array))
			for (size_t i = 0; i < json_object_array_length(v); i++)
				n += json_object_is_type(
					     json_object_array_get_idx(v, i),
					     json_type_object) ?
					     n_keys(json_object_array_get_idx(v, i)) :
					     1;
		n++;
	}
	return n;
}

/* Out of memory while luod builds a reply: the reply is whole, or the
 * connection is closed; never a reply with a field missing. */
static void test_reply_out_of_memory(void **state)
{
	/* Before anything is allocated: skip() does not return. */
	if (!failalloc_available())
		skip();
	struct peer *a = subscriber("A"), *k = connect_peer(), *p;
	struct json_object *want;
	size_t want_keys;
	unsigned long n, failed, dropped = 0;

	update_start(&d, k->c, 60, false);
	say(k, "{\"cmd\":\"STATUS\",\"seq\":1}");
	want = next_with(k, "reply", "STATUS");
	want_keys = n_keys(want);
	json_object_put(want);
	for (n = 0;; n++) {
		struct proto_msg m = { .obj = json_tokener_parse(
					       "{\"cmd\":\"STATUS\",\"seq\":1}") };

		p = connect_peer();
		failalloc_at(n);
		command_dispatch(&d, p->c, &m);
		failed = failalloc_off();
		proto_msg_clear(&m);
		if (p->c->dead) {
			dropped++;
		} else {
			struct json_object *got = next_with(p, "reply", "STATUS");

			assert_int_equal(n_keys(got), want_keys);
			json_object_put(got);
		}
		peer_close(p);
		if (!failed)
			break;
	}
	assert_true(n > 10);
	assert_true(dropped > 0);
	peer_close(a);
	peer_close(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_subscribe_twice, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_late_prepare_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_absent_owner_waited_for,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_owner_times_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_left_sessions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_state_save_out_of_memory,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_out_of_memory, setup,
						teardown),
	};

	log_setup("test-daemon", LOG_CRIT);
	assert_non_null(mkdtemp(state_dir));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
