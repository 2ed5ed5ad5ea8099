/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logging to stderr. Under systemd (JOURNAL_STREAM set) each line gets a
 * "<N>" syslog priority prefix so the journal keeps the level.
 */
#pragma once

#include <syslog.h>

#include "util.h"

void log_setup(const char *ident, int max_level);
void log_set_level(int max_level);
_printf_(2, 3) void log_msg(int level, const char *fmt, ...);
/* Logs and returns r (a -errno) so callers can `return log_errno(r, ...)`. */
_printf_(2, 3) int log_errno(int r, const char *fmt, ...);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
