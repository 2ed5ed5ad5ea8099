// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The update state machine (update.c) with the session table under it,
 * through the bottom layer's interface (bottom.c records the device, the
 * custodians, the reboot and every message): the barrier, late and
 * duplicate subscribers, READY/NOT_READY, the timeout, ABORT, disconnects
 * and owners that are not connected when the update starts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "bottom.h"
#include "log.h"

static struct daemon d;

static int setup(void **state)
{
	bottom_reset();
	d = (struct daemon){
		.cfg = { .timeout_s = 60, .reboot_mode = REBOOT_DIRECT },
		.epoll_fd = -1,
		.lock_fd = -1,
		.journal_fd = -1,
		.next_serial = 1,
	};
	d.timer.fd = -1;
	return 0;
}

static int teardown(void **state)
{
	update_abort(&d, PROTO_E_ABORTED, "test over");
	while (d.clients) {
		struct client *c = d.clients;

		d.clients = c->next;
		peer_free((struct peer *)c);
	}
	sessions_free(&d);
	client_ids_free(&d);
	timeline_free(&d);
	return 0;
}

/* A client as commands.c leaves it after HELLO, SUBSCRIBE and, unless
 * session is NULL, CREATE_SESSION. */
static struct peer *subscriber(const char *id, const char *session)
{
	struct peer *p = peer_new(&d, id, true);
	struct session *s;

	if (session)
		assert_int_equal(session_create(&d, id, session, 0, &s), 0);
	p->c.subscribed = true;
	client_id_get(&d, id)->subscriber = &p->c;
	update_client_subscribed(&d, &p->c);
	return p;
}

static struct peer *kexec(bool force)
{
	struct peer *r = peer_new(&d, NULL, true);

	r->c.kexec_request = json_tokener_parse("{\"cmd\":\"KEXEC\"}");
	update_start(&d, &r->c, 60, force);
	return r;
}

static void ready(struct peer *p)
{
	update_client_ready(&d, &p->c);
}

/* The reply KEXEC got: rebooting, or the error that ended the update. */
static const char *kexec_error(struct peer *r)
{
	struct json_object *m = peer_find(r, "reply", "KEXEC", 0);
	const char *msg;

	assert_non_null(m);
	msg = proto_get_string(m, "message");
	return msg ? msg : "";
}

static void test_barrier_waits_for_every_subscriber(void **state)
{
	struct peer *a = subscriber("a", "ram"), *b = subscriber("b", "ram");
	struct peer *r = kexec(false);

	assert_int_equal(d.phase, PHASE_PREPARING);
	assert_int_equal(d.waiting, 2);
	assert_int_equal(peer_count(a, "event", "PREPARE"), 1);
	assert_int_equal(peer_count(b, "event", "PREPARE"), 1);
	ready(a);
	assert_int_equal(bottom.reboots, 0);
	assert_int_equal(d.waiting, 1);
	assert_null(peer_find(r, "reply", "KEXEC", 0));
	ready(b);
	assert_int_equal(bottom.reboots, 1);
	/* The reply goes out before the syscall, then the refusal. */
	assert_non_null(peer_find(r, "reply", "KEXEC", 0));
	assert_non_null(peer_find(r, "event", "ABORTED", 0));
	assert_int_equal(sessions_count(&d, SESSION_OUTGOING), 2);
	assert_int_equal(bottom.finishes, 0);
}

static void test_ready_twice_counts_once(void **state)
{
	struct peer *a = subscriber("a", "ram");

	subscriber("b", "ram");
	kexec(false);
	ready(a);
	ready(a);
	assert_int_equal(d.waiting, 1);
	assert_int_equal(bottom.reboots, 0);
}

static void test_late_subscriber_joins_barrier(void **state)
{
	struct peer *a = subscriber("a", "ram"), *b;

	kexec(false);
	b = subscriber("b", "ram");
	assert_int_equal(d.waiting, 2);
	assert_int_equal(peer_count(b, "event", "PREPARE"), 1);
	ready(a);
	assert_int_equal(bottom.reboots, 0);
	ready(b);
	assert_int_equal(bottom.reboots, 1);
}

/* SUBSCRIBE again on the same connection: still one place in the barrier,
 * one PREPARE, and its one READY is enough. */
static void test_duplicate_subscribe_counts_once(void **state)
{
	struct peer *a = subscriber("a", "ram"), *b;

	kexec(false);
	update_client_subscribed(&d, &a->c);
	assert_int_equal(d.waiting, 1);
	b = subscriber("b", "ram");
	update_client_subscribed(&d, &b->c);
	assert_int_equal(d.waiting, 2);
	assert_int_equal(peer_count(b, "event", "PREPARE"), 1);
	ready(b);
	update_client_subscribed(&d, &b->c); /* ready: not counted again */
	assert_int_equal(d.waiting, 1);
	ready(a);
	assert_int_equal(bottom.reboots, 1);
}

static void test_not_ready_aborts_and_keeps_sessions(void **state)
{
	struct peer *a = subscriber("a", "ram"), *b = subscriber("b", "ram");
	struct peer *r = kexec(false);
	struct json_object *e;

	ready(b);
	update_client_not_ready(&d, &a->c, "disk full");
	assert_int_equal(d.phase, PHASE_IDLE);
	assert_int_equal(bottom.reboots, 0);
	assert_non_null(strstr(kexec_error(r), "disk full"));
	e = peer_find(b, "event", "ABORTED", 0);
	assert_non_null(e);
	assert_non_null(strstr(proto_get_string(e, "reason"), "disk full"));
	assert_non_null(peer_find(a, "event", "ABORTED", 0));
	assert_int_equal(sessions_count(&d, SESSION_OUTGOING), 2);
	for (struct session *s = d.sessions; s; s = s->next)
		assert_true(s->fd >= 0);
	/* The next update asks everyone again. */
	kexec(false);
	assert_int_equal(d.waiting, 2);
	ready(a);
	ready(b);
	assert_int_equal(bottom.reboots, 1);
}

static void test_timeout_aborts_naming_who(void **state)
{
	struct peer *a = subscriber("a", "ram");
	struct peer *r;

	subscriber("slow", "ram");
	r = kexec(false);
	ready(a);
	update_timeout(&d);
	assert_int_equal(d.phase, PHASE_IDLE);
	assert_int_equal(bottom.reboots, 0);
	assert_non_null(strstr(kexec_error(r), "slow"));
	assert_null(strstr(kexec_error(r), "a (pid"));
}

static void test_abort_resets_readiness(void **state)
{
	struct peer *a = subscriber("a", "ram"), *b = subscriber("b", "ram");

	kexec(false);
	ready(a);
	update_abort(&d, PROTO_E_ABORTED, "aborted by the operator");
	assert_false(a->c.ready);
	assert_false(a->c.in_barrier);
	kexec(false);
	ready(b); /* a's READY was for the last update */
	assert_int_equal(bottom.reboots, 0);
	assert_int_equal(d.waiting, 1);
}

static void test_disconnect_before_ready_aborts(void **state)
{
	struct peer *a = subscriber("a", "ram"), *b = subscriber("b", "ram");
	struct peer *r = kexec(false);

	ready(b);
	a->c.dead = true;
	update_client_gone(&d, &a->c);
	assert_int_equal(d.phase, PHASE_IDLE);
	assert_non_null(strstr(kexec_error(r), "disconnected"));
	assert_int_equal(bottom.reboots, 0);
	assert_int_equal(sessions_count(&d, SESSION_OUTGOING), 2);
}

static void test_disconnect_after_ready_does_not_abort(void **state)
{
	struct peer *a = subscriber("a", "ram"), *b = subscriber("b", "ram");

	kexec(false);
	ready(a);
	a->c.dead = true;
	update_client_gone(&d, &a->c);
	assert_int_equal(d.phase, PHASE_PREPARING);
	ready(b);
	assert_int_equal(bottom.reboots, 1);
}

/* Not subscribed when the update starts (luod restarted, the client is
 * reconnecting): not counted, and its going cannot abort the update. */
static void test_unsubscribed_client_gone_does_not_abort(void **state)
{
	struct peer *a = subscriber("a", "ram");
	struct peer *idle = peer_new(&d, "x", true);

	kexec(false);
	idle->c.dead = true;
	update_client_gone(&d, &idle->c);
	assert_int_equal(d.phase, PHASE_PREPARING);
	ready(a);
	assert_int_equal(bottom.reboots, 1);
}

/* An owner of outgoing sessions that is not connected is waited for under
 * its client id, and takes that place when it subscribes. */
static void test_absent_owner_waited_for(void **state)
{
	struct peer *a = subscriber("a", "ram"), *r, *vm;
	struct session *s;
	struct json_object *absent;

	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), 0);
	r = kexec(false);
	assert_int_equal(d.waiting, 2);
	assert_true(client_id_find(&d, "vm1")->awaited);
	assert_true(json_object_object_get_ex(
		peer_find(r, "phase", "prepare", 0), "absent", &absent));
	assert_string_equal(
		json_object_get_string(json_object_array_get_idx(absent, 0)),
		"vm1");
	ready(a);
	assert_int_equal(bottom.reboots, 0);
	vm = subscriber("vm1", NULL);
	assert_int_equal(d.waiting, 1); /* its place, not one more */
	assert_false(client_id_find(&d, "vm1")->awaited);
	assert_int_equal(peer_count(vm, "event", "PREPARE"), 1);
	assert_int_equal(bottom.reboots, 0);
	ready(vm);
	assert_int_equal(bottom.reboots, 1);
}

static void test_absent_owner_times_out(void **state)
{
	struct session *s;
	struct peer *r;

	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), 0);
	r = kexec(false);
	assert_int_equal(bottom.reboots, 0);
	update_timeout(&d);
	assert_int_equal(bottom.reboots, 0);
	assert_non_null(strstr(kexec_error(r), "vm1 (not connected)"));
	assert_false(client_id_find(&d, "vm1")->awaited);
}

static void test_absent_owner_leaves(void **state)
{
	struct peer *vm;
	struct session *s;

	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), 0);
	kexec(false);
	vm = peer_new(&d, "vm1", true); /* back, and says LEAVE */
	sessions_leave(&d, "vm1");
	update_client_left(&d, &vm->c);
	assert_int_equal(d.waiting, 0);
	assert_int_equal(bottom.reboots, 1);
}

static void test_absent_owner_forced(void **state)
{
	struct session *s;

	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), 0);
	kexec(true);
	assert_false(client_id_find(&d, "vm1")->awaited);
	assert_int_equal(bottom.reboots, 1);
}

/* Sessions left (LEAVE, or READY and gone) hold no update. */
static void test_left_sessions_not_awaited(void **state)
{
	struct session *s;

	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), 0);
	sessions_leave(&d, "vm1");
	kexec(false);
	assert_int_equal(d.waiting, 0);
	assert_int_equal(bottom.reboots, 1);
}

/* LEAVE by a subscriber that has not said READY counts as its READY. */
static void test_leave_counts_as_ready(void **state)
{
	struct peer *a = subscriber("a", "ram");

	subscriber("b", "ram");
	kexec(false);
	a->c.subscribed = false;
	update_client_left(&d, &a->c);
	assert_int_equal(d.waiting, 1);
	update_client_left(&d, &a->c);
	assert_int_equal(d.waiting, 1);
}

/* reboot_mode = systemd carries only what systemd's fd store holds. */
static void test_systemd_mode_refuses_unstored(void **state)
{
	struct peer *a, *r;

	d.cfg.reboot_mode = REBOOT_SYSTEMD;
	a = subscriber("a", "ram"); /* bottom.fdstore is false: not stored */
	r = kexec(false);
	ready(a);
	assert_int_equal(bottom.reboots, 0);
	assert_non_null(strstr(kexec_error(r), "not in systemd's fd store"));

	bottom.fdstore = true;
	for (struct session *s = d.sessions; s; s = s->next)
		session_hold(&d, s);
	kexec(false);
	ready(a);
	assert_int_equal(bottom.reboots, 1);
	assert_int_equal(d.phase, PHASE_REBOOTING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_barrier_waits_for_every_subscriber),
		T(test_ready_twice_counts_once),
		T(test_late_subscriber_joins_barrier),
		T(test_duplicate_subscribe_counts_once),
		T(test_not_ready_aborts_and_keeps_sessions),
		T(test_timeout_aborts_naming_who),
		T(test_abort_resets_readiness),
		T(test_disconnect_before_ready_aborts),
		T(test_disconnect_after_ready_does_not_abort),
		T(test_unsubscribed_client_gone_does_not_abort),
		T(test_absent_owner_waited_for),
		T(test_absent_owner_times_out),
		T(test_absent_owner_leaves),
		T(test_absent_owner_forced),
		T(test_left_sessions_not_awaited),
		T(test_leave_counts_as_ready),
		T(test_systemd_mode_refuses_unstored),
	};

	log_set_level(LOG_WARNING);
	return cmocka_run_group_tests_name("update state machine", tests, NULL,
					   NULL);
}
