// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stdarg.h>

#include "log.h"

static const char *log_ident = "luod";
static int log_max = LOG_INFO;
static bool log_prefix;

void log_setup(const char *ident, int max_level)
{
	log_ident = ident;
	log_max = max_level;
	log_prefix = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(int max_level)
{
	log_max = max_level;
}

static void log_v(int level, int err, const char *fmt, va_list ap)
{
	char buf[2048];
	int n;

	if (level > log_max)
		return;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	if (log_prefix)
		fprintf(stderr, "<%d>%s%s%s\n", level, buf, err ? ": " : "",
			err ? strerror(err) : "");
	else
		fprintf(stderr, "%s: %s%s%s\n", log_ident, buf, err ? ": " : "",
			err ? strerror(err) : "");
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(level, 0, fmt, ap);
	va_end(ap);
}

int log_errno(int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(LOG_ERR, r < 0 ? -r : r, fmt, ap);
	va_end(ap);
	return r;
}
