// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A program built only from the installed tree (luod.h, luod.pc,
 * libluod.so): check-install compiles it with pkg-config and runs it.
 *
 *   client SOCKET      connect and say HELLO; print "generation N"
 *   client --missing   connecting to a socket that does not exist fails
 *                      with -ENOENT, not a crash or a hang
 */
#include <errno.h>
#include <inttypes.h>
#include <luod.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct luod_client *c;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: client SOCKET | client --missing\n");
		return 2;
	}
	if (strcmp(argv[1], "--missing") == 0) {
		r = luod_connect("/nonexistent/luod.sock", "install-test", &c);
		if (r != -ENOENT) {
			fprintf(stderr,
				"connect to a missing socket: %s, want %s\n",
				strerror(-r), strerror(ENOENT));
			return 1;
		}
		printf("missing socket: %s\n", strerror(-r));
		return 0;
	}
	r = luod_connect(argv[1], "install-test", &c);
	if (r < 0) {
		fprintf(stderr, "cannot talk to luod at %s: %s\n", argv[1],
			strerror(-r));
		return 1;
	}
	printf("generation %" PRIu64 "\n", luod_generation(c));
	luod_disconnect(c);
	return 0;
}
