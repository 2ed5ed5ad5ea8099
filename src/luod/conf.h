/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * luod.conf: a small INI file read before the command line, which overrides
 * it. Named conf.h, not config.h: that name is meson's generated header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;

enum reboot_mode {
	REBOOT_DIRECT, /* luod calls reboot(LINUX_REBOOT_CMD_KEXEC) itself */
	REBOOT_SYSTEMD, /* sessions to the fd store, then systemctl kexec */
	REBOOT_AUTO, /* systemd under systemd >= 261 with an fd store, else direct */
};

#define CONF_LINE_MAX 4096
#define CONF_FILE_MAX (1024 * 1024)
#define CONF_GRACE_DEFAULT 600
#define CONF_GRACE_MAX (30 * 86400)
#define CONF_TIMEOUT_MAX 86400
#define CONF_MAX_CLIENTS_MAX 65536
#define CONF_MAX_CLIENTS_DEFAULT 256
#define CONF_PER_UID_DEFAULT 64
#define CONF_RESERVED_DEFAULT 16
#define CONF_IDLE_TIMEOUT_DEFAULT 30
#define CONF_REQUEST_RATE_DEFAULT 100
#define CONF_REQUEST_RATE_MAX 100000

/*
 * Called for each "key = value" line with the section it is in ("" before
 * the first one). Returns 0, or -errno with the reason in err.
 */
typedef int (*ini_handler_t)(void *userdata, const char *section,
			     const char *key, const char *value, char *err,
			     size_t errlen);

/*
 * Parses len bytes of INI text. On failure returns -errno, sets *line to the
 * 1-based line at fault and err to the reason.
 */
int ini_parse(const char *text, size_t len, ini_handler_t handler,
	      void *userdata, unsigned *line, char *err, size_t errlen);

/*
 * Sets one luod.conf key (also used for the command-line options, so both
 * check values alike). Returns 0, -ENOENT for an unknown key, or another
 * -errno for a bad value, with the reason in err, such as "'x' is not a
 * whole number of seconds from 1 to 86400".
 */
int conf_set(struct config *cfg, const char *key, const char *value, char *err,
	     size_t errlen);

/* Applies luod.conf text; err gets "PATH:LINE: reason". */
int conf_apply_text(struct config *cfg, const char *text, size_t len,
		    const char *path, char *err, size_t errlen);

/*
 * Reads and applies a luod.conf. A missing file is no error unless
 * must_exist (it was named with --config). Sets cfg->config_path when read.
 */
int conf_load(struct config *cfg, const char *path, bool must_exist, char *err,
	      size_t errlen);

const char *reboot_mode_name(enum reboot_mode m);
const char *log_level_name(int level);
