// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /dev/liveupdate, opened only for the one ioctl that needs it and closed
 * right after. The kernel lets one process hold the device at a time, and
 * systemd >= 262 opens it too (early after a kexec, for LUOSession= units,
 * for AllocateLUOSession and in systemd-shutdown): a luod that held it for
 * its whole life would make each of those fail. Session fds live on without
 * the device, so nothing luod holds depends on it staying open.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <time.h>

#include "daemon.h"
#include "log.h"
#include "luo.h"

/* PID 1 holds the device for a few milliseconds at a time; longer than
 * this is someone else holding it for good. */
#define DEVICE_WAIT_US 2000000ULL

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

static void read_comm(const char *pid, char *buf, size_t len)
{
	char path[PATH_MAX];
	_cleanup_fclose_ FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, (int)len, f))
		snprintf(buf, len, "?");
	buf[strcspn(buf, "\n")] = '\0';
}

/* Who holds the device, for the message: the first process with an fd on
 * it, "pid N (comm)", or "" when /proc does not tell. */
static void device_holder(const char *path, char *buf, size_t len)
{
	_cleanup_closedir_ DIR *proc = opendir("/proc");
	struct dirent *p;

	buf[0] = '\0';
	while (proc && (p = readdir(proc))) {
		char dir[PATH_MAX], link[PATH_MAX], comm[64];
		_cleanup_closedir_ DIR *fds = NULL;
		struct dirent *f;

		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(dir, sizeof(dir), "/proc/%s/fd", p->d_name);
		fds = opendir(dir);
		while (fds && (f = readdir(fds))) {
			char fdpath[2 * PATH_MAX];
			ssize_t n;

			snprintf(fdpath, sizeof(fdpath), "%s/%s", dir, f->d_name);
			n = readlink(fdpath, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (!streq(link, path))
				continue;
			read_comm(p->d_name, comm, sizeof(comm));
			snprintf(buf, len, "pid %.20s (%s)", p->d_name, comm);
			return;
		}
	}
}

int device_open(struct daemon *d)
{
	uint64_t start = now_mono_us(), waited;
	unsigned delay_us = 1000;
	char holder[128];
	int fd;

	while ((fd = luo_open_device(d->cfg.device_path)) == -EBUSY &&
	       now_mono_us() - start < DEVICE_WAIT_US) {
		nanosleep(&(struct timespec){ .tv_nsec = delay_us * 1000L },
			  NULL);
		if (delay_us < 64000)
			delay_us *= 2;
	}
	waited = now_mono_us() - start;
	if (fd >= 0 && waited > 100000)
		log_warning("%s was busy for %" PRIu64
			    " ms before luod could open it; see luod(8), THE DEVICE",
			    d->cfg.device_path, waited / 1000);
	if (fd != -EBUSY)
		return fd;
	device_holder(d->cfg.device_path, holder, sizeof(holder));
	log_error("%s has been held by %s for over %llu s, so luod cannot create or claim sessions; "
		  "stop that process (see luod(8), THE DEVICE)",
		  d->cfg.device_path, holder[0] ? holder : "another process",
		  DEVICE_WAIT_US / 1000000);
	return fd;
}

int device_create_session(struct daemon *d, const char *name)
{
	_cleanup_close_ int dev = device_open(d);

	return dev < 0 ? dev : luo_create_session(dev, name);
}

int device_create_unique(struct daemon *d, device_name_fn next_name,
			 void *data, char name[LIVEUPDATE_SESSION_NAME_LENGTH])
{
	_cleanup_close_ int dev = device_open(d);
	int fd = -EEXIST;

	for (int tries = 0; dev >= 0 && tries < 1000 && fd == -EEXIST;
	     tries++) {
		next_name(name, data);
		fd = luo_create_session(dev, name);
	}
	return dev < 0 ? dev : fd;
}

int device_retrieve_session(struct daemon *d, const char *name)
{
	_cleanup_close_ int dev = device_open(d);

	return dev < 0 ? dev : luo_retrieve_session(dev, name);
}

/* At start: the device is there and readable. After a kexec the first
 * open is the one that reads the sessions the old kernel handed over. */
int device_probe(struct daemon *d)
{
	_cleanup_close_ int fd = device_open(d);

	switch (fd) {
	case -ENOENT:
		log_error("%s does not exist: boot a kernel with CONFIG_LIVEUPDATE and "
			  "'liveupdate=on kho=on' (see luod(8), REQUIREMENTS)",
			  d->cfg.device_path);
		return fd;
	case -EBUSY:
		return fd; /* device_open() said who holds it */
	case -EIO:
		log_error("%s: the kernel could not read the sessions the previous kernel handed over, "
			  "so they are lost; see dmesg",
			  d->cfg.device_path);
		return fd;
	case -EACCES:
	case -EPERM:
		log_error("%s: permission denied; luod must run as root",
			  d->cfg.device_path);
		return fd;
	default:
		if (fd < 0)
			return log_errno(fd, "cannot open %s",
					 d->cfg.device_path);
	}
	return 0;
}
