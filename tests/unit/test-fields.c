// SPDX-License-Identifier: GPL-2.0-or-later
/* A request's fields read by a table (fields.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "fields.h"

struct args {
	const char *name, *path, *text;
	int64_t n;
	bool flag;
};

#define A(f) offsetof(struct args, f)
static const struct field table[] = {
	{ "name", FIELD_NAME, FIELD_MANDATORY, A(name), 0, 0 },
	{ "path", FIELD_PATH, 0, A(path), 0, 0 },
	{ "text", FIELD_STRING, 0, A(text), 0, 0 },
	{ "n", FIELD_INT, 0, A(n), 1, 86400 },
	{ "flag", FIELD_BOOL, 0, A(flag), 0, 0 },
	FIELDS_END,
};

static int run(const char *json, struct args *a, char *err)
{
	struct json_object *o = json_tokener_parse(json);
	int r;

	assert_non_null(o);
	*a = (struct args){ .n = 60 };
	err[0] = '\0';
	r = fields_dispatch(o, table, a, err, 256);
	json_object_put(o);
	return r;
}

static void test_reads_every_type(void **state)
{
	struct args a;
	char err[256];

	assert_int_equal(run("{\"name\":\"vm1\",\"path\":\"/boot/vmlinuz\",\"text\":\"hi there\","
			     "\"n\":5,\"flag\":true,\"other\":[1]}",
			     &a, err),
			 0);
	/* Borrowed strings die with the object; compared before that in
	 * the daemon, here only that each was set. */
	assert_non_null(a.name);
	assert_non_null(a.path);
	assert_non_null(a.text);
	assert_int_equal(a.n, 5);
	assert_true(a.flag);
}

static void test_defaults_stay(void **state)
{
	struct args a;
	char err[256];

	assert_int_equal(run("{\"name\":\"vm1\"}", &a, err), 0);
	assert_null(a.path);
	assert_int_equal(a.n, 60);
	assert_false(a.flag);
}

static void test_refusals_say_which_field(void **state)
{
	static const struct {
		const char *json, *words;
	} cases[] = {
		{ "{}", "\"name\" is missing" },
		{ "{\"name\":null}", "\"name\" is missing" },
		{ "{\"name\":\"a b\"}", "\"name\" must be 1 to" },
		{ "{\"name\":7}", "\"name\" must be 1 to" },
		{ "{\"name\":\"a\",\"path\":\"boot\"}", "\"path\" must be an absolute path" },
		{ "{\"name\":\"a\",\"text\":1}", "\"text\" must be a string" },
		{ "{\"name\":\"a\",\"n\":0}", "\"n\" must be a whole number from 1 to 86400" },
		{ "{\"name\":\"a\",\"n\":86401}", "from 1 to 86400" },
		{ "{\"name\":\"a\",\"n\":\"5\"}", "from 1 to 86400" },
		{ "{\"name\":\"a\",\"n\":1.5}", "from 1 to 86400" },
		{ "{\"name\":\"a\",\"n\":18446744073709551615}", "from 1 to 86400" },
		{ "{\"name\":\"a\",\"flag\":1}", "\"flag\" must be true or false" },
	};
	struct args a;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(run(cases[i].json, &a, err), -EINVAL);
		if (!strstr(err, cases[i].words))
			fail_msg("%s: \"%s\" does not say \"%s\"", cases[i].json,
				 err, cases[i].words);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_every_type),
		cmocka_unit_test(test_defaults_stay),
		cmocka_unit_test(test_refusals_say_which_field),
	};

	return cmocka_run_group_tests_name("fields", tests, NULL, NULL);
}
