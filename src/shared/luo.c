// SPDX-License-Identifier: LGPL-2.1-or-later
#include <fcntl.h>
#include <sys/ioctl.h>

#include "luo.h"
#include "util.h"

int luo_open_device(const char *path)
{
	int fd = open(path ? path : LUO_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int set_name(__u8 dst[LIVEUPDATE_SESSION_NAME_LENGTH], const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > LUO_NAME_MAX)
		return -ENAMETOOLONG;
	memset(dst, 0, LIVEUPDATE_SESSION_NAME_LENGTH);
	memcpy(dst, name, n);
	return 0;
}

int luo_create_session(int dev_fd, const char *name)
{
	struct liveupdate_ioctl_create_session a = { .size = sizeof(a),
						     .fd = -1 };
	int r = set_name(a.name, name);

	if (r < 0)
		return r;
	if (ioctl(dev_fd, LIVEUPDATE_IOCTL_CREATE_SESSION, &a) < 0)
		return -errno;
	return a.fd;
}

int luo_retrieve_session(int dev_fd, const char *name)
{
	struct liveupdate_ioctl_retrieve_session a = { .size = sizeof(a),
						       .fd = -1 };
	int r = set_name(a.name, name);

	if (r < 0)
		return r;
	if (ioctl(dev_fd, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &a) < 0)
		return -errno;
	return a.fd;
}

int luo_preserve_fd(int session_fd, int fd, uint64_t token)
{
	struct liveupdate_session_preserve_fd a = { .size = sizeof(a),
						    .fd = fd,
						    .token = token };

	return ioctl(session_fd, LIVEUPDATE_SESSION_PRESERVE_FD, &a) < 0 ?
		       -errno :
		       0;
}

int luo_retrieve_fd(int session_fd, uint64_t token)
{
	struct liveupdate_session_retrieve_fd a = { .size = sizeof(a),
						    .fd = -1,
						    .token = token };

	if (ioctl(session_fd, LIVEUPDATE_SESSION_RETRIEVE_FD, &a) < 0)
		return -errno;
	return a.fd;
}

int luo_finish(int session_fd)
{
	struct liveupdate_session_finish a = { .size = sizeof(a) };

	return ioctl(session_fd, LIVEUPDATE_SESSION_FINISH, &a) < 0 ? -errno :
								      0;
}

int luo_get_name(int session_fd, char name[LIVEUPDATE_SESSION_NAME_LENGTH])
{
	struct liveupdate_session_get_name a = { .size = sizeof(a) };

	if (ioctl(session_fd, LIVEUPDATE_SESSION_GET_NAME, &a) < 0)
		return -errno;
	memcpy(name, a.name, LIVEUPDATE_SESSION_NAME_LENGTH);
	name[LIVEUPDATE_SESSION_NAME_LENGTH - 1] = '\0';
	return 0;
}
