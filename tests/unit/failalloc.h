/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Allocation-failure injection for the unit tests: the test binary's
 * malloc, calloc and realloc replace libc's for every library it uses
 * (json-c included), and the Nth allocation after failalloc_at(N) fails.
 * Not available under AddressSanitizer, which owns malloc itself.
 */
#pragma once

#include <stdbool.h>

/* Whether injection works in this build. */
bool failalloc_available(void);
/* Make the nth allocation from now on fail (0: the next one), once. */
void failalloc_at(unsigned long n);
/* Stop injecting; returns how many allocations failed since failalloc_at. */
unsigned long failalloc_off(void);
