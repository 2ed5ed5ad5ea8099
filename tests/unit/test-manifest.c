// SPDX-License-Identifier: GPL-2.0-or-later
/* The manifest carries every session mapping across a kexec: encode and
 * decode must agree, and anything malformed must be refused, not guessed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "failalloc.h"
#include "manifest.h"
#include "util.h"

static struct manifest sample(void)
{
	struct manifest m = { .generation = 7, .next_serial = 42 };

	m.n_sessions = 2;
	m.sessions = calloc(2, sizeof(*m.sessions));
	strcpy(m.sessions[0].client, "vm1");
	strcpy(m.sessions[0].name, "ram");
	strcpy(m.sessions[0].kernel_name, "luod.40.vm1.ram");
	m.sessions[0].uid = 1000;
	m.sessions[0].generation = 6;
	m.sessions[0].created_us = UINT64_C(1764354000123456);
	strcpy(m.sessions[1].client, "cache");
	strcpy(m.sessions[1].name, "default");
	strcpy(m.sessions[1].kernel_name, "luod.41.cache.default");
	m.sessions[1].uid = 0;
	m.sessions[1].generation = 7;
	m.sessions[1].created_us = UINT64_MAX;
	m.sessions[1].claimed = 1;
	m.sessions[1].incoming = 1;
	m.timeline = json_object_new_array();
	json_object_array_add(
		m.timeline,
		json_tokener_parse("{\"event\":\"prepare\",\"t_us\":5}"));
	return m;
}

static void test_roundtrip(void **state)
{
	struct manifest m = sample(), back;
	char err[256];
	_cleanup_free_ char *text = manifest_encode(&m);

	assert_non_null(text);
	assert_int_equal(manifest_decode(text, strlen(text), &back, err,
					 sizeof(err)),
			 0);
	assert_int_equal(back.generation, 7);
	assert_int_equal(back.next_serial, 42);
	assert_int_equal(back.n_sessions, 2);
	assert_string_equal(back.sessions[0].client, "vm1");
	assert_string_equal(back.sessions[0].name, "ram");
	assert_string_equal(back.sessions[0].kernel_name, "luod.40.vm1.ram");
	assert_int_equal(back.sessions[0].uid, 1000);
	assert_int_equal(back.sessions[0].generation, 6);
	assert_true(back.sessions[0].created_us == UINT64_C(1764354000123456));
	assert_false(back.sessions[0].claimed);
	assert_true(back.sessions[1].created_us == UINT64_MAX);
	assert_true(back.sessions[1].claimed);
	assert_true(back.sessions[1].incoming);
	assert_non_null(back.timeline);
	assert_int_equal(json_object_array_length(back.timeline), 1);
	assert_null(back.last_timeline);
	manifest_clear(&back);
	manifest_clear(&m);
}

static void test_empty(void **state)
{
	struct manifest m = { 0 }, back;
	_cleanup_free_ char *text = manifest_encode(&m);

	assert_int_equal(manifest_decode(text, strlen(text), &back, NULL, 0),
			 0);
	assert_int_equal(back.n_sessions, 0);
	assert_int_equal(back.generation, 0);
	manifest_clear(&back);
}

static void expect_bad(const char *text, const char *why_contains)
{
	struct manifest m;
	char err[256] = "";

	assert_int_equal(manifest_decode(text, strlen(text), &m, err,
					 sizeof(err)),
			 -EBADMSG);
	if (why_contains && !strstr(err, why_contains))
		fail_msg("error '%s' does not mention '%s' for: %s", err,
			 why_contains, text);
	assert_null(m.sessions);
}

#define HEAD \
	"{\"format\":\"luod-manifest\",\"version\":1,\"generation\":1,\"next_serial\":2,"
#define SESSION(c, n, k)                                                \
	"{\"client\":\"" c "\",\"name\":\"" n "\",\"kernel_name\":\"" k \
	"\",\"uid\":0,\"generation\":0,\"created_us\":1}"

static void test_rejects(void **state)
{
	expect_bad("", "JSON");
	expect_bad("[]", "not a luod manifest");
	expect_bad("{\"format\":\"other\"}", "not a luod manifest");
	expect_bad("{\"format\":\"luod-manifest\",\"version\":2}", "version");
	expect_bad(
		"{\"format\":\"luod-manifest\",\"version\":1,\"generation\":-1,\"next_serial\":2,\"sessions\":[]}",
		"generation");
	expect_bad(
		"{\"format\":\"luod-manifest\",\"version\":1,\"generation\":\"1\",\"next_serial\":2,\"sessions\":[]}",
		"generation");
	expect_bad(HEAD "\"sessions\":{}}", "sessions");
	expect_bad(HEAD "\"sessions\":[1]}", "session 0");
	expect_bad(HEAD "\"sessions\":[" SESSION("vm/1", "ram", "k") "]}",
		   "session 0");
	expect_bad(HEAD "\"sessions\":[" SESSION("vm1", "", "k") "]}",
		   "session 0");
	expect_bad(HEAD "\"sessions\":[" SESSION("vm1", "ram", "") "]}",
		   "session 0");
	/* 64 bytes do not fit a kernel name (63 + NUL). */
	expect_bad(
		HEAD "\"sessions\":[" SESSION(
			"vm1", "ram",
			"0123456789012345678901234567890123456789012345678901234567890123") "]}",
		"session 0");
	expect_bad(
		HEAD
		"\"sessions\":[{\"client\":\"a\",\"name\":\"b\",\"kernel_name\":\"k\",\"uid\":4294967295,"
		"\"generation\":0,\"created_us\":1}]}",
		"session 0");
	expect_bad(HEAD "\"sessions\":[" SESSION("a", "b", "k1") "," SESSION(
			   "a", "b", "k2") "]}",
		   "duplicates");
	expect_bad(HEAD "\"sessions\":[" SESSION("a", "b", "k1") "," SESSION(
			   "a", "c", "k1") "]}",
		   "duplicates");
	expect_bad(HEAD "\"sessions\":[],\"timeline\":[{\"t_us\":1}]}",
		   "timeline");
	expect_bad(HEAD "\"sessions\":[],\"timeline\":{}}", "timeline");
	/* json-c reads 1E400 as inf and would write "inf" back (fuzz-manifest). */
	expect_bad(HEAD "\"sessions\":[],\"timeline\":[{\"event\":\"x\",\"t\":[{\"a\":1E400}]}]}",
		   "timeline");
	expect_bad(HEAD "\"sessions\":[]} trailing", NULL);
}

static void test_accepts_limits(void **state)
{
	struct manifest m;
	const char *ok = HEAD "\"sessions\":[" SESSION(
		"a", "b",
		"012345678901234567890123456789012345678901234567890123456789012") "]}";

	assert_int_equal(manifest_decode(ok, strlen(ok), &m, NULL, 0), 0);
	assert_int_equal(strlen(m.sessions[0].kernel_name), 63);
	manifest_clear(&m);
}

static void test_truncations(void **state)
{
	struct manifest m = sample(), back;
	_cleanup_free_ char *text = manifest_encode(&m);
	size_t len = strlen(text);

	/* Every strict prefix of a manifest is refused: a half-written copy
	 * must never be read as a smaller, valid one. */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(manifest_decode(text, i, &back, NULL, 0),
				 -EBADMSG);
	manifest_clear(&m);
}

static char *cat_free(char *a, char *b)
{
	char *out = NULL;

	assert_non_null(a);
	assert_non_null(b);
	assert_true(asprintf(&out, "%s%s", a, b) > 0);
	free(a);
	free(b);
	return out;
}

static const struct manifest_session *find(const struct manifest *m,
					   const char *kernel_name)
{
	for (size_t i = 0; i < m->n_sessions; i++)
		if (streq(m->sessions[i].kernel_name, kernel_name))
			return &m->sessions[i];
	return NULL;
}

/* Replaying the journal over the copy gives back what luod had: puts
 * replace by kernel name, deletions remove, events extend last_timeline. */
static void test_journal_replay(void **state)
{
	struct manifest m = sample(), back;
	struct manifest_session s = m.sessions[0];
	struct json_object *ev =
		json_tokener_parse("{\"event\":\"claim\",\"t_us\":9}");
	_cleanup_free_ char *copy = NULL;
	char *j, err[256];

	m.journal_seq = 10;
	copy = manifest_encode(&m);
	assert_int_equal(manifest_decode(copy, strlen(copy), &back, err,
					 sizeof(err)),
			 0);
	assert_int_equal(back.journal_seq, 10);

	/* seq 10 is in the copy already and must not apply again. */
	j = manifest_journal_del(10, "luod.40.vm1.ram");
	s.claimed = s.incoming = 1;
	j = cat_free(j, manifest_journal_put(11, 50, &s));
	strcpy(s.kernel_name, "luod.49.vm2.ram");
	strcpy(s.client, "vm2");
	j = cat_free(j, manifest_journal_put(12, 50, &s));
	j = cat_free(j, manifest_journal_del(13, "luod.41.cache.default"));
	j = cat_free(j, manifest_journal_event(14, ev));
	assert_int_equal(manifest_journal_apply(&back, j, strlen(j), err,
						sizeof(err)),
			 4);
	assert_int_equal(back.journal_seq, 14);
	assert_int_equal(back.next_serial, 50);
	assert_int_equal(back.n_sessions, 2);
	assert_true(find(&back, "luod.40.vm1.ram")->claimed);
	assert_non_null(find(&back, "luod.49.vm2.ram"));
	assert_null(find(&back, "luod.41.cache.default"));
	assert_int_equal(json_object_array_length(back.last_timeline), 1);

	/* Applying the same journal again changes nothing. */
	assert_int_equal(manifest_journal_apply(&back, j, strlen(j), err,
						sizeof(err)),
			 0);
	assert_int_equal(back.n_sessions, 2);
	assert_int_equal(json_object_array_length(back.last_timeline), 1);
	free(j);
	json_object_put(ev);
	manifest_clear(&back);
	manifest_clear(&m);
}

/* A crash in the middle of a write leaves a last line without its newline:
 * it is ignored. A malformed complete line stops the replay there. */
static void test_journal_damage(void **state)
{
	struct manifest m = { 0 };
	struct manifest_session s = { .uid = 1, .generation = 1 };
	char err[256];
	char *j;

	strcpy(s.client, "a");
	strcpy(s.name, "b");
	strcpy(s.kernel_name, "luod.1.a.b");
	j = manifest_journal_put(1, 2, &s);
	assert_int_equal(manifest_journal_apply(&m, j, strlen(j) - 1, err,
						sizeof(err)),
			 0);
	assert_int_equal(m.n_sessions, 0);
	j = cat_free(j, strdup("{\"seq\":2,\"del\":7}\n"));
	j = cat_free(j, manifest_journal_del(3, "luod.1.a.b"));
	assert_int_equal(manifest_journal_apply(&m, j, strlen(j), err,
						sizeof(err)),
			 -EBADMSG);
	assert_string_equal(err, "journal line 2 is malformed");
	assert_int_equal(m.n_sessions, 1);
	assert_int_equal(m.journal_seq, 1);
	free(j);
	manifest_clear(&m);

	j = strdup("{\"seq\":1,\"put\":{\"client\":\"a\"}}\n");
	assert_int_equal(manifest_journal_apply(&m, j, strlen(j), err,
						sizeof(err)),
			 -EBADMSG);
	free(j);
	j = strdup("not json\n");
	assert_int_equal(manifest_journal_apply(&m, j, strlen(j), err,
						sizeof(err)),
			 -EBADMSG);
	assert_string_equal(err, "journal line 1 is not a journal record");
	free(j);
	manifest_clear(&m);
}

/*
 * Out of memory anywhere in manifest_encode must give NULL, never a text
 * with a field or a session missing: that text would be written over the
 * good copy and carried across the kexec.
 */
static void test_encode_out_of_memory(void **state)
{
	/* Before anything is allocated: skip() does not return. */
	if (!failalloc_available())
		skip();
	struct manifest m = sample();
	_cleanup_free_ char *want = NULL;
	unsigned long n, nulls = 0;
	m.sessions[0].left = 1;
	want = manifest_encode(&m);
	assert_non_null(want);
	for (n = 0;; n++) {
		char *text;
		unsigned long failed;

		failalloc_at(n);
		text = manifest_encode(&m);
		failed = failalloc_off();
		if (text)
			assert_string_equal(text, want);
		else
			nulls++;
		free(text);
		if (!failed)
			break;
	}
	/* It did allocate, and every failure was seen. */
	assert_true(n > 0);
	assert_int_equal(nulls, n);
	manifest_clear(&m);
}

/* The journal's records: NULL or whole, as the copy. */
static void test_journal_out_of_memory(void **state)
{
	/* Before anything is allocated: skip() does not return. */
	if (!failalloc_available())
		skip();
	struct manifest m = sample();
	struct json_object *ev = json_tokener_parse("{\"event\":\"claim\"}");
	_cleanup_free_ char *want_put =
		manifest_journal_put(3, 9, &m.sessions[0]);
	_cleanup_free_ char *want_del = manifest_journal_del(4, "luod.1.a.b");
	_cleanup_free_ char *want_ev = manifest_journal_event(5, ev);
	for (int kind = 0; kind < 3; kind++) {
		for (unsigned long n = 0;; n++) {
			char *line;
			const char *want = kind == 0 ? want_put :
					   kind == 1 ? want_del :
						       want_ev;
			unsigned long failed;

			failalloc_at(n);
			line = kind == 0 ? manifest_journal_put(3, 9,
								&m.sessions[0]) :
			       kind == 1 ? manifest_journal_del(4, "luod.1.a.b") :
					   manifest_journal_event(5, ev);
			failed = failalloc_off();
			if (line)
				assert_string_equal(line, want);
			free(line);
			if (!failed)
				break;
		}
	}
	json_object_put(ev);
	manifest_clear(&m);
}

/*
 * The exact text: copies under /run and journals written by an older luod
 * are read by a newer one and the other way round, so the keys, their
 * order and the escapes stay as they were when json-c wrote them.
 */
static void test_exact_text(void **state)
{
	struct manifest m = sample();
	struct json_object *ev = json_tokener_parse(
		"{\"event\":\"claim\",\"t_us\":9,\"x\":-3,\"d\":1.5,\"n\":null,\"b\":false,\"a\":[1,\"q\"]}");
	_cleanup_free_ char *text = NULL, *put = NULL, *del = NULL,
			    *line = NULL;

	strcpy(m.sessions[0].name, "r\"a\\m\x01");
	m.sessions[0].left = 1;
	m.journal_seq = 3;
	text = manifest_encode(&m);
	assert_string_equal(
		text,
		"{\"format\":\"luod-manifest\",\"version\":1,\"generation\":7,\"next_serial\":42,\"journal_seq\":3,"
		"\"sessions\":[{\"client\":\"vm1\",\"name\":\"r\\\"a\\\\m\\u0001\",\"kernel_name\":\"luod.40.vm1.ram\","
		"\"uid\":1000,\"generation\":6,\"created_us\":1764354000123456,\"left\":true},"
		"{\"client\":\"cache\",\"name\":\"default\",\"kernel_name\":\"luod.41.cache.default\",\"uid\":0,"
		"\"generation\":7,\"created_us\":18446744073709551615,\"incoming\":true,\"claimed\":true}],"
		"\"timeline\":[{\"event\":\"prepare\",\"t_us\":5}]}");
	put = manifest_journal_put(11, 50, &m.sessions[1]);
	assert_string_equal(
		put,
		"{\"seq\":11,\"next_serial\":50,\"put\":{\"client\":\"cache\",\"name\":\"default\","
		"\"kernel_name\":\"luod.41.cache.default\",\"uid\":0,\"generation\":7,"
		"\"created_us\":18446744073709551615,\"incoming\":true,\"claimed\":true}}\n");
	del = manifest_journal_del(13, "luod.41.cache.default");
	assert_string_equal(del,
			    "{\"seq\":13,\"del\":\"luod.41.cache.default\"}\n");
	line = manifest_journal_event(14, ev);
	assert_string_equal(
		line,
		"{\"seq\":14,\"event\":{\"event\":\"claim\",\"t_us\":9,\"x\":-3,\"d\":1.5,\"n\":null,\"b\":false,\"a\":[1,\"q\"]}}\n");
	json_object_put(ev);
	manifest_clear(&m);
}

static void test_left_roundtrip(void **state)
{
	struct manifest m = sample(), back;
	_cleanup_free_ char *text = NULL;

	m.sessions[0].left = 1;
	text = manifest_encode(&m);
	assert_int_equal(manifest_decode(text, strlen(text), &back, NULL, 0),
			 0);
	assert_true(back.sessions[0].left);
	assert_false(back.sessions[1].left);
	manifest_clear(&back);
	manifest_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_accepts_limits),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_journal_replay),
		cmocka_unit_test(test_journal_damage),
		cmocka_unit_test(test_encode_out_of_memory),
		cmocka_unit_test(test_journal_out_of_memory),
		cmocka_unit_test(test_left_roundtrip),
		cmocka_unit_test(test_exact_text),
	};

	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
