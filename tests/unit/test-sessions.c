// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The session table (sessions.c, ids.c) through the bottom layer's
 * interface (bottom.c): creating, claiming, releasing and forgetting
 * sessions, what the custodians and the journal hear of it, and leaving.
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
static unsigned puts_heard, dels_heard;

static void journal(struct daemon *dd, const struct session *s, bool gone)
{
	if (gone)
		dels_heard++;
	else
		puts_heard++;
}

static int setup(void **state)
{
	bottom_reset();
	d = (struct daemon){ .epoll_fd = -1, .journal_fd = -1,
			     .next_serial = 1 };
	d.journal_session = journal;
	puts_heard = dels_heard = 0;
	return 0;
}

static int teardown(void **state)
{
	sessions_free(&d);
	client_ids_free(&d);
	timeline_free(&d);
	return 0;
}

/* A session the last kernel handed over, as state.c files it. */
static struct session *incoming(const char *client, const char *name,
				const char *kname)
{
	struct session *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	snprintf(s->client, sizeof(s->client), "%s", client);
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->kernel_name, sizeof(s->kernel_name), "%s", kname);
	s->state = SESSION_INCOMING;
	s->fd = -1;
	assert_int_equal(session_link(&d, s), 0);
	bottom.incoming[0] = kname;
	return s;
}

static void test_create(void **state)
{
	struct session *s, *t;

	assert_int_equal(session_create(&d, "vm1", "ram", 1000, &s), 0);
	assert_string_equal(s->kernel_name, "luod.1.vm1.ram");
	assert_true(s->fd >= 0);
	assert_int_equal(s->state, SESSION_OUTGOING);
	assert_int_equal(s->uid, 1000);
	assert_int_equal(bottom.keeper_holds, 1);
	assert_int_equal(puts_heard, 1);
	assert_ptr_equal(session_find(&d, "vm1", "ram"), s);
	assert_ptr_equal(session_by_kernel_name(&d, "luod.1.vm1.ram"), s);
	assert_ptr_equal(sessions_of(&d, "vm1"), s);
	assert_int_equal(session_create(&d, "vm1", "ram", 1000, &t), -EEXIST);
	assert_int_equal(session_create(&d, "vm1", "disk", 1000, &t), 0);
	assert_string_equal(t->kernel_name, "luod.2.vm1.disk");
	assert_int_equal(sessions_count(&d, SESSION_OUTGOING), 2);
}

/* A name the kernel still holds (a session from before a restart of
 * luod) is skipped, not an error. */
static void test_create_skips_taken_names(void **state)
{
	struct session *s;

	bottom.names_taken = 2;
	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), 0);
	assert_string_equal(s->kernel_name, "luod.3.vm1.ram");
	assert_int_equal(d.next_serial, 4);
}

static void test_create_device_error(void **state)
{
	struct session *s = NULL;

	bottom.device_error = -EBUSY;
	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), -EBUSY);
	assert_null(session_find(&d, "vm1", "ram"));
	assert_null(client_id_find(&d, "vm1"));
	assert_int_equal(puts_heard, 0);
	assert_int_equal(bottom.keeper_holds, 0);
}

static void test_claim_retrieves_once(void **state)
{
	struct session *s = incoming("vm1", "ram", "luod.7.vm1.ram");

	assert_int_equal(session_claim(&d, s), 0);
	assert_int_equal(s->state, SESSION_CLAIMED);
	assert_true(s->fd >= 0);
	assert_int_equal(bottom.retrieves, 1);
	assert_int_equal(bottom.keeper_holds, 1);
	assert_int_equal(puts_heard, 1);
	/* Claimed again (a client restarted): luod's copy as it is; no
	 * retrieve, nothing new for the keeper or the journal. */
	assert_int_equal(session_claim(&d, s), 0);
	assert_int_equal(bottom.retrieves, 1);
	assert_int_equal(bottom.keeper_holds, 1);
	assert_int_equal(puts_heard, 1);
}

static void test_claim_failure_keeps_it_incoming(void **state)
{
	struct session *s = incoming("vm1", "ram", "luod.7.vm1.ram");

	bottom.incoming[0] = NULL; /* the kernel does not have it */
	assert_int_equal(session_claim(&d, s), -ENOENT);
	assert_int_equal(s->state, SESSION_INCOMING);
	assert_int_equal(s->fd, -1);
	assert_int_equal(puts_heard, 0);
}

/* Released unclaimed: retrieved and finished, which frees its memory. */
static void test_release_incoming_finishes_it(void **state)
{
	struct session *s = incoming("vm1", "ram", "luod.7.vm1.ram");

	session_release(&d, s, "test");
	assert_int_equal(bottom.retrieves, 1);
	assert_int_equal(bottom.finishes, 1);
	assert_null(session_find(&d, "vm1", "ram"));
	assert_null(client_id_find(&d, "vm1"));
	assert_int_equal(dels_heard, 1);
}

static void test_forget_tells_custodians(void **state)
{
	struct session *s;

	bottom.fdstore = true;
	assert_int_equal(session_create(&d, "vm1", "ram", 0, &s), 0);
	assert_true(s->in_fdstore);
	session_forget(&d, s);
	assert_int_equal(bottom.keeper_drops, 1);
	assert_int_equal(bottom.fdstore_drops, 1);
	assert_int_equal(bottom.finishes, 0); /* an outgoing one is not finished */
	assert_int_equal(dels_heard, 1);
	assert_int_equal(sessions_count(&d, SESSION_OUTGOING), 0);
}

static void test_leave_marks_outgoing_only(void **state)
{
	struct session *out, *in = incoming("vm1", "old", "luod.7.vm1.old");

	assert_int_equal(session_create(&d, "vm1", "ram", 0, &out), 0);
	puts_heard = 0;
	sessions_leave(&d, "vm1");
	assert_true(out->left);
	assert_false(in->left);
	assert_int_equal(puts_heard, 1);
	sessions_leave(&d, "vm1"); /* no change: nothing journaled */
	assert_int_equal(puts_heard, 1);
	session_set_left(&d, out, false);
	assert_false(out->left);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_create),
		T(test_create_skips_taken_names),
		T(test_create_device_error),
		T(test_claim_retrieves_once),
		T(test_claim_failure_keeps_it_incoming),
		T(test_release_incoming_finishes_it),
		T(test_forget_tells_custodians),
		T(test_leave_marks_outgoing_only),
	};

	log_set_level(LOG_CRIT);
	return cmocka_run_group_tests_name("session table", tests, NULL, NULL);
}
