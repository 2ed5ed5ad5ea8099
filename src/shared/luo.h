/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Thin wrappers of the LUO ioctls. Each returns an fd or 0, or -errno. */
#pragma once

#include <stdint.h>

#include "liveupdate-abi.h"

#define LUO_DEVICE "/dev/liveupdate"
#define LUO_NAME_MAX (LIVEUPDATE_SESSION_NAME_LENGTH - 1)

int luo_open_device(const char *path);
int luo_create_session(int dev_fd, const char *name);
int luo_retrieve_session(int dev_fd, const char *name);
int luo_preserve_fd(int session_fd, int fd, uint64_t token);
int luo_retrieve_fd(int session_fd, uint64_t token);
int luo_finish(int session_fd);
int luo_get_name(int session_fd, char name[LIVEUPDATE_SESSION_NAME_LENGTH]);
