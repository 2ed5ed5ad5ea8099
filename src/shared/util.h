/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers every luod program uses: cleanup attributes, errno style. */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void closep(int *fd)
{
	*fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand an fd out of a _cleanup_close_ variable. */
static inline int take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static inline void *take_ptr_(void **p)
{
	void *r = *p;
	*p = NULL;
	return r;
}
#define take_ptr(p) take_ptr_((void **)&(p))

static inline bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Monotonic and wall clocks in microseconds. */
uint64_t now_mono_us(void);
uint64_t now_real_us(void);
/* CLOCK_REALTIME when this kernel started (its clock, CLOCK_BOOTTIME 0). */
uint64_t kernel_start_us(void);

/* write(2) everything or fail with -errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read a whole fd (from offset 0) into a NUL-terminated buffer. */
int read_all_fd(int fd, size_t max, char **out, size_t *out_len);
