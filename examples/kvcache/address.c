// SPDX-License-Identifier: LGPL-2.1-or-later
/* kvcache's socket addresses: "unix:PATH", "tcp:HOST:PORT", or a path. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kvcache.h"

int kv_parse_address(const char *spec, struct sockaddr_storage *sa,
		     unsigned *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char host[256];
	const char *port;

	memset(sa, 0, sizeof(*sa));
	if (!strncmp(spec, "tcp:", 4)) {
		spec += 4;
		port = strrchr(spec, ':');
		if (!port || port == spec ||
		    (size_t)(port - spec) >= sizeof(host))
			return -EINVAL;
		memcpy(host, spec, (size_t)(port - spec));
		host[port - spec] = '\0';
		/* "[::1]:11211" */
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		if (getaddrinfo(host, port + 1, &hints, &res) != 0)
			return -EADDRNOTAVAIL;
		memcpy(sa, res->ai_addr, res->ai_addrlen);
		*len = (unsigned)res->ai_addrlen;
		freeaddrinfo(res);
		return 0;
	}
	if (!strncmp(spec, "unix:", 5))
		spec += 5;
	{
		struct sockaddr_un *un = (struct sockaddr_un *)sa;

		if (!*spec || strlen(spec) >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, spec);
		*len = (unsigned)sizeof(*un);
	}
	return 0;
}
