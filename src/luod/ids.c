// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Everything luod knows under one client id: its sessions and its
 * subscribed connection. Requests name a client id, so finding these by a
 * search tree keeps each request's cost flat however many clients a host
 * has; a walk of every session per request made 1000 VMs cost a million
 * string compares per update.
 */
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

static int id_cmp(const void *a, const void *b)
{
	return strcmp(((const struct client_id *)a)->id,
		      ((const struct client_id *)b)->id);
}

struct client_id *client_id_find(struct daemon *d, const char *id)
{
	struct client_id key;
	void *node;

	if (!id || strlen(id) >= sizeof(key.id))
		return NULL;
	strcpy(key.id, id);
	node = tfind(&key, &d->ids, id_cmp);
	return node ? *(struct client_id **)node : NULL;
}

struct client_id *client_id_get(struct daemon *d, const char *id)
{
	struct client_id *ci = client_id_find(d, id);
	void *node;

	if (ci || !id || strlen(id) >= sizeof(ci->id))
		return ci;
	ci = calloc(1, sizeof(*ci));
	if (!ci)
		return NULL;
	strcpy(ci->id, id);
	node = tsearch(ci, &d->ids, id_cmp);
	if (!node) {
		free(ci);
		return NULL;
	}
	return ci;
}

/* Dropped once nothing is filed under it, so ids that come and go do not
 * accumulate over a long-running luod. */
void client_id_gc(struct daemon *d, struct client_id *ci)
{
	if (!ci || ci->sessions || ci->subscriber || ci->awaited)
		return;
	tdelete(ci, &d->ids, id_cmp);
	free(ci);
}

struct session *sessions_of(struct daemon *d, const char *id)
{
	struct client_id *ci = client_id_find(d, id);

	return ci ? ci->sessions : NULL;
}

void client_ids_free(struct daemon *d)
{
	tdestroy(d->ids, free);
	d->ids = NULL;
}

struct walk {
	void (*fn)(struct daemon *d, struct client_id *ci, void *data);
	struct daemon *d;
	void *data;
};

static void visit(const void *node, VISIT which, void *closure)
{
	struct walk *w = closure;

	if (which == postorder || which == leaf)
		w->fn(w->d, *(struct client_id *const *)node, w->data);
}

/* fn must not add or remove ids. */
void client_ids_foreach(struct daemon *d,
			void (*fn)(struct daemon *d, struct client_id *ci,
				   void *data),
			void *data)
{
	struct walk w = { fn, d, data };

	twalk_r(d->ids, visit, &w);
}
