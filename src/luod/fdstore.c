// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The service manager's file-descriptor store, when luod runs under systemd
 * with one: a second custodian beside luod-keeper. Every session fd luod
 * holds is stored under "luod-session.KERNEL_NAME", so systemd hands them
 * back when luod restarts; with reboot_mode = systemd, systemd (>= 261,
 * FileDescriptorStorePreserve=yes) also carries them and luod's manifest
 * across `systemctl kexec`, as luod hands them over here.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>

#include "daemon.h"
#include "log.h"
#include "luo.h"
#include "notify.h"

/* The manifest's name carries the boot it was written in, so a luod that
 * died between storing it and the kexec does not take it for an update. */
static int manifest_fdname(const char *boot_id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s.%s", FDNAME_MANIFEST, boot_id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int read_boot_id(char out[64])
{
	_cleanup_close_ int fd =
		open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, out, 63);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

int fdstore_hold(const char *kname, int fd)
{
	char name[FDNAME_MAX + 1];
	int r;

	if (!notify_fdstore_enabled() || fd < 0)
		return 0;
	r = notify_session_fdname(kname, name, sizeof(name));
	if (r >= 0)
		r = notify_fdstore_push(name, fd);
	return r;
}

void fdstore_drop(const char *kname)
{
	char name[FDNAME_MAX + 1];

	if (notify_session_fdname(kname, name, sizeof(name)) < 0)
		return;
	if (notify_fdstore_remove(name) < 0)
		log_warning("cannot remove %s from systemd's fd store, so it stays there until luod.service stops",
			    name);
}

/* The sessions systemd hands back: after a restart of luod, or those it
 * retrieved for luod across systemctl kexec. Anything else in the store
 * under a session's name is not one, and leaves it. */
int fdstore_take_session(char kname[LIVEUPDATE_SESSION_NAME_LENGTH])
{
	char fdname[FDNAME_MAX + 1];
	int fd;

	while ((fd = listen_fds_take_prefix(FDNAME_SESSION_PREFIX, fdname,
					    sizeof(fdname))) >= 0) {
		if (luo_get_name(fd, kname) == 0)
			return fd;
		log_warning("fd %s from systemd's fd store is not a LUO session, so luod removes it from the store",
			    fdname);
		notify_fdstore_remove(fdname);
		close(fd);
	}
	return -ENOENT;
}

/*
 * The manifest systemd carried across systemctl kexec: a memfd, or -ENOENT.
 * One stored in this same boot is stale (luod died before the kexec) and is
 * dropped from the store.
 */
int fdstore_take_manifest(char *fdname, size_t len)
{
	char boot_id[64], own[FDNAME_MAX + 1];
	int fd;

	fd = listen_fds_take_prefix(FDNAME_MANIFEST ".", fdname, len);
	if (fd < 0)
		return fd;
	if (read_boot_id(boot_id) == 0 &&
	    manifest_fdname(boot_id, own, sizeof(own)) == 0 &&
	    streq(own, fdname)) {
		log_warning(
			"systemd's fd store holds a manifest from this same boot (the last luod stopped between storing it and systemctl kexec), so luod drops it and uses the copy in the state directory");
		notify_fdstore_remove(fdname);
		close(fd);
		return -ENOENT;
	}
	return fd;
}

void fdstore_forget_manifest(const char *fdname)
{
	if (notify_fdstore_remove(fdname) < 0)
		log_warning("cannot remove %s from systemd's fd store", fdname);
}

/*
 * reboot_mode = systemd, first step: the manifest goes into the store
 * under a name that fdstore_kexec() needs.
 */
int fdstore_store_manifest(const char *manifest_text, char *name,
			   size_t namelen, char *err, size_t errlen)
{
	_cleanup_close_ int mfd = -1;
	char boot_id[64];
	int r;

	r = read_boot_id(boot_id);
	if (r == 0)
		r = manifest_fdname(boot_id, name, namelen);
	if (r < 0) {
		snprintf(err, errlen, "cannot read this boot's id: %s",
			 strerror(-r));
		return r;
	}
	mfd = memfd_create("luod-manifest", MFD_CLOEXEC);
	r = mfd < 0 ? -errno :
		      write_all(mfd, manifest_text, strlen(manifest_text));
	if (r < 0) {
		snprintf(err, errlen, "cannot write the manifest memfd: %s",
			 strerror(-r));
		return r;
	}
	r = notify_fdstore_push(name, mfd);
	if (r <= 0) {
		snprintf(
			err, errlen,
			"cannot put luod's manifest into systemd's fd store: %s",
			r < 0 ? strerror(-r) : "$NOTIFY_SOCKET is not set");
		return r < 0 ? r : -ENOTCONN;
	}
	return 0;
}

/*
 * Second step: luod asks systemd for the kexec; systemd-shutdown carries
 * the stored fds across it. On failure the manifest leaves the store.
 */
int fdstore_kexec(const char *manifest_name, char *err, size_t errlen)
{
	char why[400];
	int r;

	r = systemd_kexec(why, sizeof(why));
	if (r == 0)
		return 0;
	snprintf(
		err, errlen,
		"systemd refused the kexec (%s); nothing was rebooted: fix what it says and run luoctl kexec again",
		why);
	fdstore_forget_manifest(manifest_name);
	return r;
}
