// SPDX-License-Identifier: GPL-2.0-or-later
/* Fair shares of luod's socket: see limits.h. */
#include <errno.h>
#include <stdlib.h>

#include "limits.h"

#define MICRO 1000000ULL

static struct uid_count *uid_find(const struct uid_table *t, uid_t uid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].uid == uid)
			return &t->v[i];
	return NULL;
}

unsigned uid_table_get(const struct uid_table *t, uid_t uid)
{
	struct uid_count *e = uid_find(t, uid);

	return e ? e->n : 0;
}

int uid_table_add(struct uid_table *t, uid_t uid)
{
	struct uid_count *e = uid_find(t, uid);

	if (e) {
		e->n++;
		return 0;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct uid_count *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = (struct uid_count){ .uid = uid, .n = 1 };
	return 0;
}

void uid_table_del(struct uid_table *t, uid_t uid)
{
	struct uid_count *e = uid_find(t, uid);

	if (!e)
		return;
	if (--e->n == 0)
		*e = t->v[--t->n];
	/* Nothing left behind once the last connection is gone. */
	if (!t->n)
		uid_table_free(t);
}

void uid_table_free(struct uid_table *t)
{
	free(t->v);
	*t = (struct uid_table){ 0 };
}

enum admit limits_admit(const struct admit_limits *l, unsigned n_clients,
			unsigned n_uid, bool admin)
{
	unsigned shared =
		l->max_clients > l->reserved ? l->max_clients - l->reserved : 0;

	if (n_clients >= l->max_clients)
		return ADMIT_FULL;
	if (admin)
		return ADMIT_OK;
	if (n_clients >= shared)
		return ADMIT_RESERVED;
	if (l->per_uid && n_uid >= l->per_uid)
		return ADMIT_UID;
	return ADMIT_OK;
}

void bucket_init(struct bucket *b, unsigned rate, uint64_t now_us)
{
	b->micro = (uint64_t)rate * MICRO;
	b->t_us = now_us;
}

static void bucket_refill(struct bucket *b, unsigned rate, uint64_t now_us)
{
	uint64_t cap = (uint64_t)rate * MICRO, dt;

	if (now_us <= b->t_us)
		return;
	dt = now_us - b->t_us;
	b->t_us = now_us;
	/* A long quiet spell fills the bucket; capping dt first keeps the
	 * product from overflowing. */
	if (dt >= MICRO || b->micro + dt * rate >= cap)
		b->micro = cap;
	else
		b->micro += dt * rate;
}

bool bucket_take(struct bucket *b, unsigned rate, uint64_t now_us)
{
	if (!rate)
		return true;
	bucket_refill(b, rate, now_us);
	if (b->micro < MICRO)
		return false;
	b->micro -= MICRO;
	return true;
}

uint64_t bucket_ready_at(struct bucket *b, unsigned rate, uint64_t now_us)
{
	uint64_t missing;

	if (!rate)
		return now_us;
	bucket_refill(b, rate, now_us);
	if (b->micro >= MICRO)
		return now_us;
	missing = MICRO - b->micro;
	/* Rounded up: woken a microsecond early, the client would find no
	 * token and wait again. */
	return now_us + (missing + rate - 1) / rate;
}

bool burst_log_event(struct burst_log *b, uint64_t now_us, uint64_t window_us)
{
	if (!b->active) {
		b->active = true;
		b->until_us = now_us + window_us;
		b->count = 0;
		return true;
	}
	b->count++;
	return false;
}

unsigned burst_log_flush(struct burst_log *b, uint64_t now_us,
			 uint64_t window_us)
{
	unsigned n;

	if (!b->active || now_us < b->until_us)
		return 0;
	n = b->count;
	if (n) {
		/* Still going on: another window, and another line after it. */
		b->count = 0;
		b->until_us = now_us + window_us;
	} else {
		b->active = false;
	}
	return n;
}

uint64_t burst_log_deadline(const struct burst_log *b)
{
	return b->active ? b->until_us : UINT64_MAX;
}

void idle_list_init(struct idle_list *l)
{
	l->head.prev = l->head.next = &l->head;
	l->n = 0;
}

bool idle_linked(const struct idle_link *e)
{
	return e->next != NULL;
}

void idle_list_remove(struct idle_list *l, struct idle_link *e)
{
	if (!idle_linked(e))
		return;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = NULL;
	l->n--;
}

void idle_list_touch(struct idle_list *l, struct idle_link *e, uint64_t now_us)
{
	idle_list_remove(l, e);
	e->since_us = now_us;
	e->prev = l->head.prev;
	e->next = &l->head;
	l->head.prev->next = e;
	l->head.prev = e;
	l->n++;
}

struct idle_link *idle_list_due(struct idle_list *l, uint64_t now_us,
				uint64_t timeout_us)
{
	struct idle_link *e = l->head.next;

	if (e == &l->head || now_us < e->since_us ||
	    now_us - e->since_us < timeout_us)
		return NULL;
	return e;
}

uint64_t idle_list_deadline(const struct idle_list *l, uint64_t timeout_us)
{
	const struct idle_link *e = l->head.next;

	return e == &l->head ? UINT64_MAX : e->since_us + timeout_us;
}
