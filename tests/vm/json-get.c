// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * json-get PATH: print the value at PATH in the JSON object on stdin, so
 * shell scenarios can assert on `luoctl --json` output exactly.
 * PATH is dot-separated keys and array indexes; a trailing '#' on a
 * component gives an array's length ("clients#"). Strings print raw,
 * anything else as JSON. Exit 1 when the path is missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

int main(int argc, char **argv)
{
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, stdin);
	struct json_object *o;
	char *path, *tok, *save = NULL;

	if (argc != 2)
		return 2;
	buf[n] = '\0';
	o = json_tokener_parse(buf);
	if (!o) {
		fprintf(stderr, "json-get: stdin is not JSON\n");
		return 1;
	}
	path = strdup(argv[1]);
	for (tok = strtok_r(path, ".", &save); tok;
	     tok = strtok_r(NULL, ".", &save)) {
		size_t len = strlen(tok);
		int count = len > 0 && tok[len - 1] == '#';

		if (count)
			tok[len - 1] = '\0';
		if (json_object_is_type(o, json_type_array) && *tok >= '0' &&
		    *tok <= '9') {
			o = json_object_array_get_idx(o, (size_t)atoi(tok));
		} else if (*tok && !json_object_object_get_ex(o, tok, &o)) {
			o = NULL;
		}
		if (!o) {
			fprintf(stderr, "json-get: no '%s' in the input\n",
				argv[1]);
			return 1;
		}
		if (count) {
			if (!json_object_is_type(o, json_type_array))
				return 1;
			printf("%zu\n", json_object_array_length(o));
			return 0;
		}
	}
	puts(json_object_is_type(o, json_type_string) ?
		     json_object_get_string(o) :
		     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	return 0;
}
