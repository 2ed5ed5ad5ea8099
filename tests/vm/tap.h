/* SPDX-License-Identifier: GPL-2.0-or-later */
/* TAP lines for the test programs the VM scenarios run: "ok - PREFIX: what"
 * or "not ok - ...", flushed at once so lines from several programs on one
 * console stay whole. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static const char *tap_prefix; /* before each description; NULL: none */
static unsigned tap_failed;

__attribute__((format(printf, 2, 3), unused)) static bool
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok - ", ok ? "" : "not ");
	if (tap_prefix)
		printf("%s: ", tap_prefix);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	tap_failed += !ok;
	return ok;
}
