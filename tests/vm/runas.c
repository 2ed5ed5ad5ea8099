// SPDX-License-Identifier: GPL-2.0-or-later
/* runas UID GID[,GROUP...] CMD ARGS...: run CMD as another user, so VM
 * scenarios can test luod's per-uid access control without a user database. */
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	gid_t groups[16];
	size_t n = 0;
	char *list, *tok, *save = NULL;

	if (argc < 4) {
		fprintf(stderr, "usage: runas UID GID[,GROUP...] CMD [ARGS...]\n");
		return 2;
	}
	list = strdup(argv[2]);
	for (tok = strtok_r(list, ",", &save); tok && n < 16; tok = strtok_r(NULL, ",", &save))
		groups[n++] = (gid_t)atoi(tok);
	if (setgroups(n, groups) < 0 || setgid(groups[0]) < 0 || setuid((uid_t)atoi(argv[1])) < 0) {
		perror("runas");
		return 1;
	}
	execvp(argv[3], argv + 3);
	perror(argv[3]);
	return 127;
}
