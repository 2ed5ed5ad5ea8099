/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One datagram with at most one fd riding along (SCM_RIGHTS), for
 * luod's private channel to luod-keeper. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Send buf with fd attached (fd < 0: none). 0 or -errno. */
int fdmsg_send(int sock, const void *buf, size_t len, int fd);
/* Receive one message into buf (NUL-terminated, at most size - 1 bytes) and
 * its first fd into *fd (-1 if none; any others are closed). Returns the
 * length, 0 at end of stream, or -errno. */
ssize_t fdmsg_recv(int sock, char *buf, size_t size, int *fd);
