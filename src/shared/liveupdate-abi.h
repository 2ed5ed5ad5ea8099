/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The /dev/liveupdate ABI. The system header is used when it exists; the
 * build machines' linux-libc-dev predates LUO, so the same layout is kept
 * here too, checked by static asserts against the sizes the kernel expects.
 */
#pragma once

#include "config.h"

#if HAVE_LINUX_LIVEUPDATE_H
#include <linux/liveupdate.h>
#else
#include <linux/ioctl.h>
#include <linux/types.h>

#define LIVEUPDATE_IOCTL_TYPE 0xBA
#define LIVEUPDATE_SESSION_NAME_LENGTH 64

struct liveupdate_ioctl_create_session {
	__u32 size;
	__s32 fd;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

struct liveupdate_ioctl_retrieve_session {
	__u32 size;
	__s32 fd;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

struct liveupdate_session_preserve_fd {
	__u32 size;
	__s32 fd;
	__aligned_u64 token;
};

struct liveupdate_session_retrieve_fd {
	__u32 size;
	__s32 fd;
	__aligned_u64 token;
};

struct liveupdate_session_finish {
	__u32 size;
	__u32 reserved;
};

struct liveupdate_session_get_name {
	__u32 size;
	__u32 reserved;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

#define LIVEUPDATE_IOCTL_CREATE_SESSION _IO(LIVEUPDATE_IOCTL_TYPE, 0x00)
#define LIVEUPDATE_IOCTL_RETRIEVE_SESSION _IO(LIVEUPDATE_IOCTL_TYPE, 0x01)
#define LIVEUPDATE_SESSION_PRESERVE_FD _IO(LIVEUPDATE_IOCTL_TYPE, 0x40)
#define LIVEUPDATE_SESSION_RETRIEVE_FD _IO(LIVEUPDATE_IOCTL_TYPE, 0x41)
#define LIVEUPDATE_SESSION_FINISH _IO(LIVEUPDATE_IOCTL_TYPE, 0x42)
#define LIVEUPDATE_SESSION_GET_NAME _IO(LIVEUPDATE_IOCTL_TYPE, 0x43)
#endif

_Static_assert(sizeof(struct liveupdate_ioctl_create_session) == 72,
	       "create_session ABI");
_Static_assert(sizeof(struct liveupdate_ioctl_retrieve_session) == 72,
	       "retrieve_session ABI");
_Static_assert(sizeof(struct liveupdate_session_preserve_fd) == 16,
	       "preserve_fd ABI");
_Static_assert(sizeof(struct liveupdate_session_retrieve_fd) == 16,
	       "retrieve_fd ABI");
_Static_assert(sizeof(struct liveupdate_session_finish) == 8, "finish ABI");
_Static_assert(sizeof(struct liveupdate_session_get_name) == 72,
	       "get_name ABI");
_Static_assert(LIVEUPDATE_SESSION_NAME_LENGTH == 64, "session name length");
