// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fakeluo: an LD_PRELOAD stand-in for the kernel's Live Update
 * Orchestrator, so bench/host can run luod and its clients natively on a
 * build machine, for profiling (callgrind, massif) and for luod's own costs
 * without TCG. The kernel's side costs nothing here: never compare these
 * figures with the raw kernel path.
 *
 * $FAKELUO_DIR holds the state: out/NAME/TOKEN for what outgoing sessions
 * preserved, in/NAME/TOKEN for what the last "kexec" handed over. The
 * device is any file named $FAKELUO_DIR/dev (luod --device). A session fd
 * is a memfd named "luo_session:NAME", which any process it is passed to
 * can name with readlink(). Outgoing sessions are not unpreserved when
 * closed: the benchmark never does that.
 *
 * reboot(LINUX_REBOOT_CMD_KEXEC) moves out/ to in/, writes
 * $FAKELUO_DIR/rebooted and exits; kexec_file_load succeeds and
 * /sys/kernel/kexec_loaded reads 1. Nothing else is touched. Run it as a
 * user without CAP_SYS_BOOT anyway (bench/host does), so that a miss here
 * can never reboot the machine.
 */
/* open and open64 are both wrapped below: keep them apart. */
#undef _FILE_OFFSET_BITS
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "liveupdate-abi.h"
#include "util.h"

#define PREFIX "luo_session:"

static const char *dir(void)
{
	const char *d = getenv("FAKELUO_DIR");

	return d && *d ? d : "/dev/shm/fakeluo";
}

/* What /proc/self/fd/FD points at, into buf. */
static const char *fd_target(int fd, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, size - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static bool is_device(int fd)
{
	char buf[4096], want[4096];
	const char *t = fd_target(fd, buf, sizeof(buf));

	snprintf(want, sizeof(want), "%s/dev", dir());
	return t && streq(t, want);
}

/* The session's name, or NULL if fd is no fake session. */
static const char *session_name(int fd, char *buf, size_t size)
{
	const char *t = fd_target(fd, buf, size), *p, *end;

	if (!t || strncmp(t, "/memfd:" PREFIX, strlen("/memfd:" PREFIX)))
		return NULL;
	p = t + strlen("/memfd:" PREFIX);
	end = strstr(p, " (deleted)");
	if (end)
		*(char *)end = '\0';
	return p;
}

static int session_fd(const char *name)
{
	char mname[128];

	snprintf(mname, sizeof(mname), PREFIX "%s", name);
	return memfd_create(mname, MFD_CLOEXEC);
}

static int copy_fd_to(int src, const char *path)
{
	char buf[65536];
	off_t off = 0;
	ssize_t n;
	int dst = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (dst < 0)
		return -errno;
	while ((n = pread(src, buf, sizeof(buf), off)) > 0) {
		if (write_all(dst, buf, (size_t)n) < 0)
			break;
		off += n;
	}
	close(dst);
	return n < 0 ? -errno : 0;
}

static int memfd_from(const char *path)
{
	char buf[65536];
	ssize_t n;
	int src = open(path, O_RDONLY | O_CLOEXEC), mfd;

	if (src < 0)
		return -errno;
	mfd = memfd_create("fakeluo-file", MFD_CLOEXEC);
	while (mfd >= 0 && (n = read(src, buf, sizeof(buf))) > 0)
		write_all(mfd, buf, (size_t)n);
	close(src);
	return mfd < 0 ? -errno : mfd;
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[4096];

	while (d && (de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		unlink(sub);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

/* Returns the ioctl's result, or -errno. */
static long fake_ioctl(int fd, unsigned long req, void *arg)
{
	char path[4096], buf[256];
	const char *name;

	if (req == LIVEUPDATE_IOCTL_CREATE_SESSION && is_device(fd)) {
		struct liveupdate_ioctl_create_session *a = arg;

		snprintf(path, sizeof(path), "%s/out/%.63s", dir(), a->name);
		if (mkdir(path, 0700) < 0)
			return -errno;
		a->fd = session_fd((const char *)a->name);
		return a->fd < 0 ? -errno : a->fd;
	}
	if (req == LIVEUPDATE_IOCTL_RETRIEVE_SESSION && is_device(fd)) {
		struct liveupdate_ioctl_retrieve_session *a = arg;

		snprintf(path, sizeof(path), "%s/in/%.63s", dir(), a->name);
		if (access(path, F_OK) < 0)
			return -ENOENT;
		snprintf(path, sizeof(path), "%s/in/%.63s/retrieved", dir(),
			 a->name);
		if (mkdir(path, 0700) < 0)
			return -EINVAL;
		a->fd = session_fd((const char *)a->name);
		return a->fd < 0 ? -errno : a->fd;
	}
	name = session_name(fd, buf, sizeof(buf));
	if (!name)
		return 1; /* not ours: the real ioctl */
	if (req == LIVEUPDATE_SESSION_PRESERVE_FD) {
		struct liveupdate_session_preserve_fd *a = arg;

		snprintf(path, sizeof(path), "%s/out/%s/%llu", dir(), name,
			 (unsigned long long)a->token);
		return copy_fd_to(a->fd, path);
	}
	if (req == LIVEUPDATE_SESSION_RETRIEVE_FD) {
		struct liveupdate_session_retrieve_fd *a = arg;

		snprintf(path, sizeof(path), "%s/in/%s/%llu", dir(), name,
			 (unsigned long long)a->token);
		a->fd = memfd_from(path);
		return a->fd;
	}
	if (req == LIVEUPDATE_SESSION_FINISH) {
		snprintf(path, sizeof(path), "%s/in/%s/retrieved", dir(), name);
		rmdir(path);
		snprintf(path, sizeof(path), "%s/in/%s", dir(), name);
		rm_rf(path);
		return 0;
	}
	if (req == LIVEUPDATE_SESSION_GET_NAME) {
		struct liveupdate_session_get_name *a = arg;

		memset(a->name, 0, sizeof(a->name));
		snprintf((char *)a->name, sizeof(a->name), "%s", name);
		return 0;
	}
	return -ENOTTY;
}

int ioctl(int fd, unsigned long req, ...)
{
	static int (*real)(int, unsigned long, ...);
	va_list ap;
	void *arg;
	long r;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (_IOC_TYPE(req) == LIVEUPDATE_IOCTL_TYPE) {
		r = fake_ioctl(fd, req, arg);
		if (r != 1) {
			if (r < 0) {
				errno = (int)-r;
				return -1;
			}
			return (int)r;
		}
	}
	if (!real)
		real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT,
							       "ioctl");
	return real(fd, req, arg);
}

static _Noreturn void fake_kexec(void)
{
	char out[4096], in[4096], path[4096], sub[4096];
	DIR *d;
	struct dirent *de;
	int fd;

	snprintf(out, sizeof(out), "%s/out", dir());
	snprintf(in, sizeof(in), "%s/in", dir());
	/* Whatever the last update left unclaimed is lost, as in the kernel. */
	d = opendir(in);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s/retrieved", in, de->d_name);
		rmdir(sub);
		snprintf(sub, sizeof(sub), "%s/%s", in, de->d_name);
		rm_rf(sub);
	}
	if (d)
		closedir(d);
	rmdir(in);
	rename(out, in);
	mkdir(out, 0700);
	snprintf(path, sizeof(path), "%s/rebooted", dir());
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	safe_close(fd);
	/* The machine is gone; bench/host ends what is left. Exit rather than
	 * block, so that valgrind writes its profile. */
	_exit(0);
}

long syscall(long nr, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_kexec_file_load)
		return 0;
	if (nr == SYS_reboot && a[2] == LINUX_REBOOT_CMD_KEXEC)
		fake_kexec();
	if (nr == SYS_reboot) {
		errno = EPERM;
		return -1;
	}
	/* Everything else, as glibc would. */
	{
		static long (*real)(long, ...);

		if (!real)
			real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
		return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	}
}

int reboot(int how)
{
	if ((unsigned)how == LINUX_REBOOT_CMD_KEXEC)
		fake_kexec();
	errno = EPERM;
	return -1;
}

/* kexec_loaded(): luod reads /sys/kernel/kexec_loaded. */
static int fake_loaded(void)
{
	int fd = memfd_create("fakeluo-kexec-loaded", MFD_CLOEXEC);

	if (fd >= 0) {
		write_all(fd, "1\n", 2);
		lseek(fd, 0, SEEK_SET);
	}
	return fd;
}

#define OPEN_WRAPPER(fn)                                            \
	int fn(const char *path, int flags, ...)                    \
	{                                                           \
		static int (*real)(const char *, int, ...);         \
		va_list ap;                                         \
		mode_t mode;                                        \
                                                                    \
		va_start(ap, flags);                                \
		mode = (mode_t)va_arg(ap, int);                     \
		va_end(ap);                                         \
		if (streq(path, "/sys/kernel/kexec_loaded"))        \
			return fake_loaded();                       \
		if (!real)                                          \
			real = (int (*)(const char *, int,          \
					...))dlsym(RTLD_NEXT, #fn); \
		return real(path, flags, mode);                     \
	}

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)
