/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * luod and its service manager: sd_notify(3) messages (READY, STATUS, the
 * file-descriptor store) and the fds it passes in (sd_listen_fds(3): the
 * luod.socket listener, stored sessions). Uses libsystemd when built with
 * it, and otherwise speaks the same documented protocols itself, so luod
 * works under systemd either way. Outside systemd every call is a no-op.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Names luod gives the fds it keeps in its fd store. */
#define FDNAME_MANIFEST "luod-manifest"
#define FDNAME_SESSION_PREFIX "luod-session."
#define FDNAME_MAX 255

/*
 * Each returns 1 when the message was sent, 0 when luod does not run under
 * a service manager ($NOTIFY_SOCKET unset), -errno on failure. A STATUS=
 * line is one human-readable sentence: what luod is doing now.
 */
_printf_(1, 2) int notify_ready(const char *fmt, ...);
_printf_(1, 2) int notify_status(const char *fmt, ...);
_printf_(1, 2) int notify_stopping(const char *fmt, ...);

/*
 * The fd store (FileDescriptorStoreMax= in luod.service): the service
 * manager keeps a duplicate of fd under name until notify_fdstore_remove()
 * and hands it back at luod's next start, after a restart of luod and, with
 * systemd >= 261 and FileDescriptorStorePreserve=yes, after systemctl kexec.
 * A name is 1..255 printable ASCII characters without ':'.
 */
bool notify_fdstore_enabled(void);
/* The version of the systemd running luod ("systemd 262 (...)"), asked
 * once; -ENOENT when luod is not a systemd service. */
int systemd_version(void);
/* Units other than luod.service whose fd store systemctl kexec would carry
 * (FileDescriptorStorePreserve=yes, memfds or LUO sessions stored), as
 * "a.service (2 fds), ..."
 * in buf; their number, or -errno. */
int systemd_preserved_units(char *buf, size_t len);
int notify_fdstore_push(const char *name, int fd);
int notify_fdstore_remove(const char *name);
/* FDNAME_SESSION_PREFIX + kernel_name, with ':' (not allowed) as '_'. */
int notify_session_fdname(const char *kernel_name, char *buf, size_t len);

/*
 * Fds passed at start ($LISTEN_FDS, $LISTEN_FDNAMES). listen_fds_collect()
 * takes them over once, early in main(), and clears the variables so no
 * child inherits them; the others take fds out of that set.
 */
int listen_fds_collect(void);
/* The fd named name, or -ENOENT. */
int listen_fds_take(const char *name);
/* The next fd whose name starts with prefix (its name into buf), or -ENOENT. */
int listen_fds_take_prefix(const char *prefix, char *buf, size_t len);
/* The first listening AF_UNIX stream socket (its path into path), or -ENOENT. */
int listen_fds_take_listener(char *path, size_t len);
/* Closes what nobody took, with a warning naming each. */
void listen_fds_close_rest(void);

/*
 * reboot_mode=systemd: `systemctl --no-block kexec`. Returns 0 once
 * systemd has queued the kexec (it then stops every service, luod
 * included), or -errno with systemctl's reason (its last line of output)
 * in msg.
 */
int systemd_kexec(char *msg, size_t len);
