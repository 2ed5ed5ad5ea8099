/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A request's fields, read by a table per command (as systemd's
 * sd_json_dispatch does) instead of by hand in each handler: each field's
 * type and limits are checked in one place, in the same words for every
 * command. Pure: the unit tests drive it without the daemon.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum field_type {
	FIELD_STRING, /* const char *, borrowed from the request */
	FIELD_NAME, /* const char *, proto_valid_name() */
	FIELD_PATH, /* const char *, an absolute path */
	FIELD_INT, /* int64_t, from min to max */
	FIELD_BOOL, /* bool */
};

#define FIELD_MANDATORY 1u
/* A table's last entry. */
#define FIELDS_END { NULL, 0, 0, 0, 0, 0 }

struct field {
	const char *name;
	enum field_type type;
	unsigned flags;
	size_t offset; /* into the command's arguments */
	int64_t min, max; /* FIELD_INT */
};

/*
 * Reads obj's fields into args as table (ended by a NULL name) says. A
 * field absent and not mandatory leaves its default in args; fields not in
 * the table are ignored, so newer clients may send more. 0, or -EINVAL
 * with err saying which field is wrong and what it must be.
 */
int fields_dispatch(struct json_object *obj, const struct field *table,
		    void *args, char *err, size_t errlen);
