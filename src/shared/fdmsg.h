/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Messages with fds riding along (SCM_RIGHTS): the protocol codec's
 * writer, and luod's private channel to luod-keeper. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#define FDMSG_MAX_FDS 64

/* One sendmsg() of buf with n_fds fds attached (flags as for sendmsg;
 * MSG_NOSIGNAL is added). Returns the bytes sent or -errno. */
ssize_t fdmsg_send(int sock, const void *buf, size_t len, const int *fds,
		   size_t n_fds, int flags);
/* Receive one message into buf (NUL-terminated, at most size - 1 bytes) and
 * its first fd into *fd (-1 if none; any others are closed). Returns the
 * length, 0 at end of stream, or -errno. */
ssize_t fdmsg_recv(int sock, char *buf, size_t size, int *fd);
