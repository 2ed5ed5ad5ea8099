// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The timeline of an update: what happened when, from PREPARE to the last
 * FINISHED after the kexec. While an update is prepared its events go to
 * d->timeline, which the manifest carries across; once luod is idle (the
 * new boot) they go to d->last_timeline, and to the journal if one listens.
 */
#include "daemon.h"
#include "log.h"

void timeline_add(struct daemon *d, const char *event, const char *client,
		  const char *name)
{
	timeline_add_at(d, event, client, name, now_real_us());
}

void timeline_add_at(struct daemon *d, const char *event, const char *client,
		     const char *name, uint64_t t_us)
{
	struct json_object *e = json_object_new_object();
	struct json_object **tl = d->phase == PHASE_IDLE ? &d->last_timeline :
							   &d->timeline;

	if (!*tl)
		*tl = json_object_new_array();
	proto_add(&e, "event", json_object_new_string(event));
	proto_add(&e, "t_us", json_object_new_uint64(t_us));
	if (client)
		proto_add(&e, "client", json_object_new_string(client));
	if (name)
		proto_add(&e, "name", json_object_new_string(name));
	/* The timeline is kept whatever happens to one event. */
	if (!e || !*tl || json_object_array_add(*tl, e) < 0) {
		log_warning("out of memory, so the %s event is missing from the update's timeline",
			    event);
		if (e)
			json_object_put(e);
		return;
	}
	if (tl == &d->last_timeline && d->journal_event)
		d->journal_event(d, e);
}

void timeline_free(struct daemon *d)
{
	if (d->timeline)
		json_object_put(d->timeline);
	if (d->last_timeline)
		json_object_put(d->last_timeline);
	d->timeline = d->last_timeline = NULL;
}
