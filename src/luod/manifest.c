// SPDX-License-Identifier: GPL-2.0-or-later
#include <math.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "manifest.h"
#include "util.h"

void manifest_clear(struct manifest *m)
{
	free(m->sessions);
	if (m->timeline)
		json_object_put(m->timeline);
	if (m->last_timeline)
		json_object_put(m->last_timeline);
	*m = (struct manifest){ 0 };
}

/* The timeline replayed from the journal: a failed add is seen. */
static bool append(struct json_object *arr, struct json_object *v)
{
	if (!arr || !v || json_object_array_add(arr, v) < 0) {
		if (v)
			json_object_put(v);
		return false;
	}
	return true;
}

/*
 * The manifest's own serializer. json-c's does not report every allocation
 * that fails inside it: it returns a text with a brace or a key missing,
 * which would be written over the good copy. Here any failure is seen.
 */
struct text {
	char *buf;
	size_t len, size;
	bool failed;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->failed)
		return;
	/* Far below SIZE_MAX, so that neither len + n + 1 nor the doubling
	 * below can wrap around. */
	if (n > SIZE_MAX / 4 - t->len) {
		t->failed = true;
		return;
	}
	if (!t->buf || t->len + n + 1 > t->size) {
		size_t size = t->size ? t->size : 256;
		char *grown;

		while (size < t->len + n + 1)
			size *= 2;
		grown = realloc(t->buf, size);
		if (!grown) {
			t->failed = true;
			return;
		}
		t->buf = grown;
		t->size = size;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void text_str(struct text *t, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	text_add(t, "\"", 1);
	while (*p) {
		const unsigned char *run = p;
		char esc[8];

		/* Plain characters go in one copy: names are nearly all plain. */
		while (*p && *p != '"' && *p != '\\' && *p >= 0x20)
			p++;
		text_add(t, (const char *)run, (size_t)(p - run));
		if (!*p)
			break;
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			text_add(t, esc, 2);
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			text_add(t, esc, 6);
		}
		p++;
	}
	text_add(t, "\"", 1);
}

static void text_lit(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

static void text_u64(struct text *t, uint64_t v)
{
	char num[24];

	text_add(t, num, (size_t)snprintf(num, sizeof(num), "%" PRIu64, v));
}

/* ,"key":v */
static void text_key_u64(struct text *t, const char *key, uint64_t v)
{
	text_add(t, ",", 1);
	text_str(t, key);
	text_add(t, ":", 1);
	text_u64(t, v);
}

static void text_json(struct text *t, struct json_object *v)
{
	char num[32];
	bool first = true;

	switch (json_object_get_type(v)) {
	case json_type_null:
		text_add(t, "null", 4);
		break;
	case json_type_boolean:
		if (json_object_get_boolean(v))
			text_add(t, "true", 4);
		else
			text_add(t, "false", 5);
		break;
	case json_type_double:
		snprintf(num, sizeof(num), "%.17g", json_object_get_double(v));
		text_add(t, num, strlen(num));
		break;
	case json_type_int:
		if (json_object_get_int64(v) < 0)
			snprintf(num, sizeof(num), "%" PRId64,
				 json_object_get_int64(v));
		else
			snprintf(num, sizeof(num), "%" PRIu64,
				 json_object_get_uint64(v));
		text_add(t, num, strlen(num));
		break;
	case json_type_string:
		text_str(t, json_object_get_string(v));
		break;
	case json_type_object:
		text_add(t, "{", 1);
		json_object_object_foreach(v, key, val)
		{
			if (!first)
				text_add(t, ",", 1);
			first = false;
			text_str(t, key);
			text_add(t, ":", 1);
			text_json(t, val);
		}
		text_add(t, "}", 1);
		break;
	case json_type_array:
		text_add(t, "[", 1);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (i)
				text_add(t, ",", 1);
			text_json(t, json_object_array_get_idx(v, i));
		}
		text_add(t, "]", 1);
		break;
	}
}

/* Keys in the order decoders and older copies have always seen. */
static void text_session(struct text *t, const struct manifest_session *s)
{
	text_lit(t, "{\"client\":");
	text_str(t, s->client);
	text_lit(t, ",\"name\":");
	text_str(t, s->name);
	text_lit(t, ",\"kernel_name\":");
	text_str(t, s->kernel_name);
	text_key_u64(t, "uid", s->uid);
	text_key_u64(t, "generation", s->generation);
	text_key_u64(t, "created_us", s->created_us);
	if (s->incoming)
		text_lit(t, ",\"incoming\":true");
	if (s->claimed)
		text_lit(t, ",\"claimed\":true");
	if (s->left)
		text_lit(t, ",\"left\":true");
	text_add(t, "}", 1);
}

/* t's text, or NULL with t's buffer freed if any step failed. */
static char *text_done(struct text *t)
{
	if (t->failed || !t->buf) {
		free(t->buf);
		return NULL;
	}
	return t->buf;
}

/*
 * Written directly rather than through json-c objects: this runs for every
 * session at each rewrite of the copy under /run, and its journal
 * counterparts below at every CLAIM and FINISHED.
 */
char *manifest_encode(const struct manifest *m)
{
	struct text t = { 0 };

	text_lit(&t, "{\"format\":");
	text_str(&t, MANIFEST_FORMAT);
	text_key_u64(&t, "version", MANIFEST_VERSION);
	text_key_u64(&t, "generation", m->generation);
	text_key_u64(&t, "next_serial", m->next_serial);
	if (m->journal_seq)
		text_key_u64(&t, "journal_seq", m->journal_seq);
	text_lit(&t, ",\"sessions\":[");
	for (size_t i = 0; i < m->n_sessions; i++) {
		if (i)
			text_add(&t, ",", 1);
		text_session(&t, &m->sessions[i]);
	}
	text_add(&t, "]", 1);
	if (m->timeline) {
		text_lit(&t, ",\"timeline\":");
		text_json(&t, m->timeline);
	}
	if (m->last_timeline) {
		text_lit(&t, ",\"last_timeline\":");
		text_json(&t, m->last_timeline);
	}
	text_add(&t, "}", 1);
	return text_done(&t);
}

_printf_(3, 4) static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static int get_u64(struct json_object *o, const char *key, uint64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	/* json-c keeps large numbers as uint64; negative ones as int64. */
	if (json_object_get_int64(v) < 0)
		return -1;
	*out = json_object_get_uint64(v);
	return 0;
}

static int get_str(struct json_object *o, const char *key, char *dst,
		   size_t max, bool name)
{
	const char *s = proto_get_string(o, key);

	if (!s || strlen(s) >= max || (name && !proto_valid_name(s)) || !*s)
		return -1;
	strcpy(dst, s);
	return 0;
}

static int session_from_json(struct json_object *so, struct manifest_session *s)
{
	uint64_t uid;
	bool b;

	if (!json_object_is_type(so, json_type_object) ||
	    get_str(so, "client", s->client, sizeof(s->client), true) < 0 ||
	    get_str(so, "name", s->name, sizeof(s->name), true) < 0 ||
	    get_str(so, "kernel_name", s->kernel_name, sizeof(s->kernel_name),
		    false) < 0 ||
	    get_u64(so, "uid", &uid) < 0 || uid > UINT32_MAX - 1 ||
	    get_u64(so, "generation", &s->generation) < 0 ||
	    get_u64(so, "created_us", &s->created_us) < 0)
		return -1;
	s->uid = (uid_t)uid;
	s->incoming = proto_get_bool(so, "incoming", &b) && b;
	s->claimed = proto_get_bool(so, "claimed", &b) && b;
	s->left = proto_get_bool(so, "left", &b) && b;
	return 0;
}

/* json-c reads 1E400 as inf and would write it back as "inf", which is not
 * JSON: a timeline with one would make the next manifest unreadable. The
 * tokener's depth limit bounds the recursion. */
static bool all_finite(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!all_finite(json_object_array_get_idx(v, i)))
				return false;
		return true;
	case json_type_object: {
		json_object_object_foreach(v, k, e)
		{
			(void)k;
			if (!all_finite(e))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

static int timeline_ok(struct json_object *o, const char *key,
		       struct json_object **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return -1;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *e = json_object_array_get_idx(v, i);

		if (!json_object_is_type(e, json_type_object) ||
		    !proto_get_string(e, "event") || !all_finite(e))
			return -1;
	}
	*out = json_object_get(v);
	return 0;
}

/* Strict JSON, all of text and nothing after it. */
static int parse_json(const char *text, size_t len, struct json_object **out,
		      char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	enum json_tokener_error e;
	struct json_object *o;

	*out = NULL;
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	e = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || e != json_tokener_success) {
		if (o)
			json_object_put(o);
		return bad(err, errlen, "not valid JSON: %s",
			   json_tokener_error_desc(e));
	}
	*out = o;
	return 0;
}

int manifest_decode(const char *text, size_t len, struct manifest *out,
		    char *err, size_t errlen)
{
	struct json_object *o, *arr;
	struct manifest m = { 0 };
	int64_t version;
	int r = 0;

	*out = (struct manifest){ 0 };
	if (len > MANIFEST_MAX_BYTES || len > INT32_MAX)
		return bad(err, errlen,
			   "manifest is %zu bytes, over the %d byte limit", len,
			   MANIFEST_MAX_BYTES);
	r = parse_json(text, len, &o, err, errlen);
	if (r < 0)
		return r;
	if (!json_object_is_type(o, json_type_object) ||
	    !streq(proto_get_string(o, "format"), MANIFEST_FORMAT)) {
		r = bad(err, errlen,
			"not a luod manifest (no \"format\":\"%s\")",
			MANIFEST_FORMAT);
		goto out;
	}
	if (!proto_get_int64(o, "version", &version) ||
	    version != MANIFEST_VERSION) {
		r = bad(err, errlen, "manifest version is not %d",
			MANIFEST_VERSION);
		goto out;
	}
	if (get_u64(o, "generation", &m.generation) < 0 ||
	    get_u64(o, "next_serial", &m.next_serial) < 0) {
		r = bad(err, errlen,
			"manifest lacks a valid generation or next_serial");
		goto out;
	}
	if (json_object_object_get_ex(o, "journal_seq", NULL) &&
	    get_u64(o, "journal_seq", &m.journal_seq) < 0) {
		r = bad(err, errlen, "manifest has an invalid journal_seq");
		goto out;
	}
	if (!json_object_object_get_ex(o, "sessions", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		r = bad(err, errlen, "manifest lacks a sessions array");
		goto out;
	}
	m.n_sessions = json_object_array_length(arr);
	m.sessions =
		calloc(m.n_sessions ? m.n_sessions : 1, sizeof(*m.sessions));
	if (!m.sessions) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m.n_sessions; i++) {
		struct manifest_session *s = &m.sessions[i];

		if (session_from_json(json_object_array_get_idx(arr, i), s) <
		    0) {
			r = bad(err, errlen,
				"session %zu in the manifest is malformed", i);
			goto out;
		}
		for (size_t j = 0; j < i; j++) {
			if (streq(m.sessions[j].kernel_name, s->kernel_name) ||
			    (streq(m.sessions[j].client, s->client) &&
			     streq(m.sessions[j].name, s->name))) {
				r = bad(err, errlen,
					"session %zu duplicates session %zu", i,
					j);
				goto out;
			}
		}
	}
	if (timeline_ok(o, "timeline", &m.timeline) < 0 ||
	    timeline_ok(o, "last_timeline", &m.last_timeline) < 0) {
		r = bad(err, errlen, "manifest timeline is malformed");
		goto out;
	}
	*out = m;
	m = (struct manifest){ 0 };
out:
	manifest_clear(&m);
	json_object_put(o);
	return r;
}

static void journal_record(struct text *t, uint64_t seq, const char *key)
{
	text_lit(t, "{\"seq\":");
	text_u64(t, seq);
	text_lit(t, key);
}

char *manifest_journal_put(uint64_t seq, uint64_t next_serial,
			   const struct manifest_session *s)
{
	struct text t = { 0 };

	journal_record(&t, seq, ",\"next_serial\":");
	text_u64(&t, next_serial);
	text_lit(&t, ",\"put\":");
	text_session(&t, s);
	text_lit(&t, "}\n");
	return text_done(&t);
}

char *manifest_journal_del(uint64_t seq, const char *kernel_name)
{
	struct text t = { 0 };

	journal_record(&t, seq, ",\"del\":");
	text_str(&t, kernel_name);
	text_lit(&t, "}\n");
	return text_done(&t);
}

char *manifest_journal_event(uint64_t seq, struct json_object *event)
{
	struct text t = { 0 };

	journal_record(&t, seq, ",\"event\":");
	text_json(&t, event);
	text_lit(&t, "}\n");
	return text_done(&t);
}

/* Drop the session with this kernel name, or with this client and name. */
static void journal_remove(struct manifest *m, const char *kernel_name,
			   const struct manifest_session *same_id)
{
	for (size_t i = 0; i < m->n_sessions; i++) {
		struct manifest_session *s = &m->sessions[i];

		if (streq(s->kernel_name, kernel_name) ||
		    (same_id && streq(s->client, same_id->client) &&
		     streq(s->name, same_id->name))) {
			*s = m->sessions[--m->n_sessions];
			i--;
		}
	}
}

static int journal_apply_one(struct manifest *m, struct json_object *o)
{
	struct json_object *v;
	struct manifest_session s = { 0 };
	uint64_t next_serial;

	if (json_object_object_get_ex(o, "put", &v)) {
		struct manifest_session *grown;

		if (session_from_json(v, &s) < 0 ||
		    get_u64(o, "next_serial", &next_serial) < 0)
			return -1;
		journal_remove(m, s.kernel_name, &s);
		grown = realloc(m->sessions,
				(m->n_sessions + 1) * sizeof(*m->sessions));
		if (!grown)
			return -ENOMEM;
		m->sessions = grown;
		m->sessions[m->n_sessions++] = s;
		if (next_serial > m->next_serial)
			m->next_serial = next_serial;
		return 0;
	}
	if (json_object_object_get_ex(o, "del", &v)) {
		if (!json_object_is_type(v, json_type_string))
			return -1;
		journal_remove(m, json_object_get_string(v), NULL);
		return 0;
	}
	if (json_object_object_get_ex(o, "event", &v)) {
		if (!json_object_is_type(v, json_type_object) ||
		    !proto_get_string(v, "event"))
			return -1;
		if (!m->last_timeline)
			m->last_timeline = json_object_new_array();
		if (!append(m->last_timeline, json_object_get(v)))
			return -ENOMEM;
		return 0;
	}
	return -1;
}

int manifest_journal_apply(struct manifest *m, const char *text, size_t len,
			   char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	int applied = 0;

	for (unsigned line = 1; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		struct json_object *o;
		uint64_t seq;
		int r;

		if (!nl) /* torn by a crash in the middle of a write */
			break;
		r = parse_json(p, (size_t)(nl - p), &o, NULL, 0);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || !json_object_is_type(o, json_type_object) ||
		    get_u64(o, "seq", &seq) < 0) {
			if (o)
				json_object_put(o);
			return bad(err, errlen,
				   "journal line %u is not a journal record",
				   line);
		}
		/* At or below the snapshot's seq: already in it (a crash
		 * between writing the snapshot and emptying the journal). */
		if (seq > m->journal_seq) {
			r = journal_apply_one(m, o);
			if (r < 0) {
				json_object_put(o);
				return r == -ENOMEM ?
					       r :
					       bad(err, errlen,
						   "journal line %u is malformed",
						   line);
			}
			m->journal_seq = seq;
			applied++;
		}
		json_object_put(o);
		p = nl + 1;
	}
	return applied;
}
