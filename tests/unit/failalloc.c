// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stddef.h>

#include "failalloc.h"

#if defined(__SANITIZE_ADDRESS__)
bool failalloc_available(void)
{
	return false;
}

void failalloc_at(unsigned long n)
{
}

unsigned long failalloc_off(void)
{
	return 0;
}
#else
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);

static bool armed;
static unsigned long countdown, failures;

/* Exported so that libc, json-c and the code under test all use them. */
void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);

static bool fail_now(void)
{
	if (!armed)
		return false;
	if (countdown--)
		return false;
	armed = false;
	failures++;
	errno = ENOMEM;
	return true;
}

void *malloc(size_t size)
{
	return fail_now() ? NULL : __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	return fail_now() ? NULL : __libc_realloc(p, size);
}

bool failalloc_available(void)
{
	return true;
}

void failalloc_at(unsigned long n)
{
	countdown = n;
	failures = 0;
	armed = true;
}

unsigned long failalloc_off(void)
{
	armed = false;
	return failures;
}
#endif
