// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "fields.h"
#include "proto.h"

static int bad(char *err, size_t len, const struct field *f)
{
	switch (f->type) {
	case FIELD_STRING:
		snprintf(err, len, "\"%s\" must be a string", f->name);
		break;
	case FIELD_NAME:
		snprintf(err, len,
			 "\"%s\" must be 1 to %d bytes of A-Z a-z 0-9 . _ @ : + -",
			 f->name, PROTO_ID_MAX);
		break;
	case FIELD_PATH:
		snprintf(err, len, "\"%s\" must be an absolute path", f->name);
		break;
	case FIELD_INT:
		snprintf(err, len,
			 "\"%s\" must be a whole number from %" PRId64
			 " to %" PRId64,
			 f->name, f->min, f->max);
		break;
	case FIELD_BOOL:
		snprintf(err, len, "\"%s\" must be true or false", f->name);
		break;
	}
	return -EINVAL;
}

int fields_dispatch(struct json_object *obj, const struct field *table,
		    void *args, char *err, size_t errlen)
{
	for (const struct field *f = table; f->name; f++) {
		char *p = (char *)args + f->offset;
		struct json_object *v;
		const char *str;
		int64_t n;

		if (!json_object_object_get_ex(obj, f->name, &v) || !v) {
			if (!(f->flags & FIELD_MANDATORY))
				continue;
			snprintf(err, errlen, "\"%s\" is missing", f->name);
			return -EINVAL;
		}
		switch (f->type) {
		case FIELD_STRING:
		case FIELD_NAME:
		case FIELD_PATH:
			if (!json_object_is_type(v, json_type_string))
				return bad(err, errlen, f);
			str = json_object_get_string(v);
			if (f->type == FIELD_NAME && !proto_valid_name(str))
				return bad(err, errlen, f);
			if (f->type == FIELD_PATH && str[0] != '/')
				return bad(err, errlen, f);
			*(const char **)(void *)p = str;
			break;
		case FIELD_INT:
			if (!json_object_is_type(v, json_type_int))
				return bad(err, errlen, f);
			/* json-c clamps what is out of int64_t's range. */
			n = json_object_get_int64(v);
			if (n < f->min || n > f->max)
				return bad(err, errlen, f);
			*(int64_t *)(void *)p = n;
			break;
		case FIELD_BOOL:
			if (!json_object_is_type(v, json_type_boolean))
				return bad(err, errlen, f);
			*(bool *)(void *)p = json_object_get_boolean(v);
			break;
		}
	}
	return 0;
}
