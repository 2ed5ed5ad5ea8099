// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * limits.c: the fair share of luod's socket, with the clock in the test's
 * hands. Each rule is checked at its edge: the last connection admitted and
 * the first refused, the last token and the first wait, the first log line
 * of a burst and the summary after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "limits.h"

#define S 1000000ULL /* one second in microseconds */

static void test_uid_table(void **state)
{
	struct uid_table t = { 0 };

	assert_int_equal(uid_table_get(&t, 1000), 0);
	/* Deleting what is not there is harmless. */
	uid_table_del(&t, 1000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(uid_table_add(&t, 1000), 0);
	assert_int_equal(uid_table_add(&t, 1001), 0);
	assert_int_equal(uid_table_get(&t, 1000), 3);
	assert_int_equal(uid_table_get(&t, 1001), 1);
	assert_int_equal(uid_table_get(&t, 0), 0);

	/* More uids than the first allocation holds. */
	for (uid_t u = 2000; u < 2100; u++)
		assert_int_equal(uid_table_add(&t, u), 0);
	assert_int_equal(t.n, 102);
	for (uid_t u = 2000; u < 2100; u++)
		assert_int_equal(uid_table_get(&t, u), 1);

	/* A uid at zero leaves; the others keep their counts. */
	uid_table_del(&t, 1001);
	assert_int_equal(uid_table_get(&t, 1001), 0);
	assert_int_equal(uid_table_get(&t, 1000), 3);
	for (uid_t u = 2000; u < 2100; u++)
		uid_table_del(&t, u);
	assert_int_equal(t.n, 1);
	uid_table_del(&t, 1000);
	assert_int_equal(uid_table_get(&t, 1000), 2);
	uid_table_del(&t, 1000);
	uid_table_del(&t, 1000);
	/* The last one gone: nothing is left allocated. */
	assert_int_equal(t.n, 0);
	assert_null(t.v);
	uid_table_free(&t);
}

static void test_admit(void **state)
{
	const struct admit_limits l = { .max_clients = 10,
					.reserved = 2,
					.per_uid = 3 };
	const struct admit_limits no_uid = { .max_clients = 10,
					     .reserved = 2,
					     .per_uid = 0 };
	const struct admit_limits all_reserved = { .max_clients = 4,
						   .reserved = 8,
						   .per_uid = 3 };

	/* A user: up to per_uid connections, while the shared part lasts. */
	assert_int_equal(limits_admit(&l, 0, 0, false), ADMIT_OK);
	assert_int_equal(limits_admit(&l, 5, 2, false), ADMIT_OK);
	assert_int_equal(limits_admit(&l, 5, 3, false), ADMIT_UID);
	assert_int_equal(limits_admit(&l, 7, 0, false), ADMIT_OK);
	assert_int_equal(limits_admit(&l, 8, 0, false), ADMIT_RESERVED);
	assert_int_equal(limits_admit(&l, 9, 0, false), ADMIT_RESERVED);
	/* The reserve is checked first: the user is told the real reason. */
	assert_int_equal(limits_admit(&l, 8, 3, false), ADMIT_RESERVED);
	assert_int_equal(limits_admit(&l, 10, 0, false), ADMIT_FULL);

	/* Root and the admin group: max_clients only, whatever their count. */
	assert_int_equal(limits_admit(&l, 8, 0, true), ADMIT_OK);
	assert_int_equal(limits_admit(&l, 9, 100, true), ADMIT_OK);
	assert_int_equal(limits_admit(&l, 10, 0, true), ADMIT_FULL);
	assert_int_equal(limits_admit(&l, 11, 0, true), ADMIT_FULL);

	/* per_uid 0: no limit per uid. */
	assert_int_equal(limits_admit(&no_uid, 7, 7, false), ADMIT_OK);
	assert_int_equal(limits_admit(&no_uid, 8, 0, false), ADMIT_RESERVED);

	/* A reserve as large as max_clients: only root and admins. */
	assert_int_equal(limits_admit(&all_reserved, 0, 0, false),
			 ADMIT_RESERVED);
	assert_int_equal(limits_admit(&all_reserved, 3, 0, true), ADMIT_OK);
}

static void test_bucket(void **state)
{
	struct bucket b;
	uint64_t t = 5 * S;

	/* A new connection may ask a second's worth at once... */
	bucket_init(&b, 10, t);
	for (int i = 0; i < 10; i++)
		assert_true(bucket_take(&b, 10, t));
	/* ...and then one every 1/rate s. */
	assert_false(bucket_take(&b, 10, t));
	assert_int_equal(bucket_ready_at(&b, 10, t), t + S / 10);
	assert_false(bucket_take(&b, 10, t + S / 10 - 1));
	assert_true(bucket_take(&b, 10, t + S / 10));
	assert_false(bucket_take(&b, 10, t + S / 10));

	/* Half a token's time: ready at the rest of it, rounded up. */
	t += S / 10 + S / 20;
	assert_false(bucket_take(&b, 10, t));
	assert_int_equal(bucket_ready_at(&b, 10, t), t + S / 20);
	assert_int_equal(bucket_ready_at(&b, 10, t + S / 20), t + S / 20);

	/* A long quiet spell fills it to one second's worth, no more. */
	t += 3600 * S;
	for (int i = 0; i < 10; i++)
		assert_true(bucket_take(&b, 10, t));
	assert_false(bucket_take(&b, 10, t));

	/* A clock that seems to go back does not give tokens. */
	assert_false(bucket_take(&b, 10, t - S));

	/* A rate that does not divide a second: ready_at is never early. */
	bucket_init(&b, 3, 0);
	for (int i = 0; i < 3; i++)
		assert_true(bucket_take(&b, 3, 0));
	t = bucket_ready_at(&b, 3, 0);
	assert_int_equal(t, 333334);
	assert_false(bucket_take(&b, 3, t - 1));
	assert_true(bucket_take(&b, 3, t));

	/* Sustained: over 10 s at rate 100, 100 + 10 * 100 requests. */
	{
		unsigned served = 0;

		bucket_init(&b, 100, 0);
		for (uint64_t us = 0; us <= 10 * S; us += 100)
			served += bucket_take(&b, 100, us);
		assert_int_equal(served, 1100);
	}

	/* rate 0: no limit. */
	bucket_init(&b, 0, 0);
	for (int i = 0; i < 1000; i++)
		assert_true(bucket_take(&b, 0, 0));
	assert_int_equal(bucket_ready_at(&b, 0, 42), 42);
}

static void test_burst_log(void **state)
{
	struct burst_log b = { 0 };
	const uint64_t w = 10 * S;

	assert_int_equal(burst_log_deadline(&b), UINT64_MAX);
	assert_int_equal(burst_log_flush(&b, 0, w), 0);

	/* The first event is logged; the next 999 only counted. */
	assert_true(burst_log_event(&b, 1 * S, w));
	for (int i = 0; i < 999; i++)
		assert_false(burst_log_event(&b, 1 * S + (uint64_t)i, w));
	assert_int_equal(burst_log_deadline(&b), 11 * S);
	/* Not before the window's end. */
	assert_int_equal(burst_log_flush(&b, 11 * S - 1, w), 0);
	/* Then one summary, and the burst goes on in a new window. */
	assert_int_equal(burst_log_flush(&b, 11 * S, w), 999);
	assert_int_equal(burst_log_deadline(&b), 21 * S);
	assert_false(burst_log_event(&b, 15 * S, w));
	assert_false(burst_log_event(&b, 16 * S, w));
	assert_int_equal(burst_log_flush(&b, 21 * S, w), 2);
	/* A window without events ends the burst quietly... */
	assert_int_equal(burst_log_flush(&b, 31 * S, w), 0);
	assert_int_equal(burst_log_deadline(&b), UINT64_MAX);
	/* ...and the next event starts one, logged in full again. */
	assert_true(burst_log_event(&b, 40 * S, w));
	assert_int_equal(burst_log_flush(&b, 50 * S, w), 0);
	assert_int_equal(burst_log_deadline(&b), UINT64_MAX);
}

static void test_idle_list(void **state)
{
	struct idle_list l;
	struct idle_link a = { 0 }, b = { 0 }, c = { 0 };
	const uint64_t to = 30 * S;

	idle_list_init(&l);
	assert_null(idle_list_due(&l, 1000 * S, to));
	assert_int_equal(idle_list_deadline(&l, to), UINT64_MAX);
	assert_false(idle_linked(&a));
	/* Removing what is not linked is harmless. */
	idle_list_remove(&l, &a);
	assert_int_equal(l.n, 0);

	idle_list_touch(&l, &a, 1 * S);
	idle_list_touch(&l, &b, 2 * S);
	idle_list_touch(&l, &c, 3 * S);
	assert_int_equal(l.n, 3);
	assert_true(idle_linked(&b));
	assert_int_equal(idle_list_deadline(&l, to), 31 * S);
	assert_null(idle_list_due(&l, 31 * S - 1, to));
	assert_ptr_equal(idle_list_due(&l, 31 * S, to), &a);

	/* A request moves it to the end: b is the oldest now. */
	idle_list_touch(&l, &a, 10 * S);
	assert_int_equal(l.n, 3);
	assert_ptr_equal(idle_list_due(&l, 32 * S, to), &b);
	idle_list_remove(&l, &b);
	assert_false(idle_linked(&b));
	assert_ptr_equal(idle_list_due(&l, 33 * S, to), &c);
	idle_list_remove(&l, &c);
	assert_null(idle_list_due(&l, 39 * S, to));
	assert_ptr_equal(idle_list_due(&l, 40 * S, to), &a);
	/* A clock behind the entry is not an expiry. */
	assert_null(idle_list_due(&l, 5 * S, to));
	idle_list_remove(&l, &a);
	assert_int_equal(l.n, 0);
	assert_int_equal(idle_list_deadline(&l, to), UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uid_table),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_burst_log),
		cmocka_unit_test(test_idle_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
