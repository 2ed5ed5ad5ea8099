// SPDX-License-Identifier: GPL-2.0-or-later
/* luod-call JSON: send one request to luod and print its reply, or
 * {"error":CODE,"message":...} when luod refused. Exit 0 only when ok. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "luod.h"

int main(int argc, char **argv)
{
	struct luod_client *c;
	char *reply = NULL;
	int r;

	if (argc != 2)
		return 2;
	r = luod_connect(NULL, NULL, &c);
	if (r < 0) {
		fprintf(stderr, "luod-call: cannot connect: %s\n", strerror(-r));
		return 3;
	}
	r = luod_call_json(c, argv[1], &reply);
	if (r == -EPROTO) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "error", json_object_new_string(luod_last_error(c)));
		json_object_object_add(o, "message", json_object_new_string(luod_last_error_message(c)));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "luod-call: %s\n", strerror(-r));
		return 3;
	}
	puts(reply);
	free(reply);
	luod_disconnect(c);
	return 0;
}
