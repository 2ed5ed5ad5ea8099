// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * clock-info: how far this boot's wall clock is from the RTC's, to the
 * millisecond, so timelines that span a kexec can be compared.
 *
 * Each kernel sets CLOCK_REALTIME from the RTC at boot, which has whole
 * seconds: two boots' clocks can be up to a second apart, and a blackout
 * of two seconds measured across a kexec would be off by as much. The RTC
 * itself ticks steadily through the kexec. clock-info waits for the RTC's
 * seconds to change and notes CLOCK_REALTIME at that moment:
 *
 *	kernel_start_us=...     CLOCK_REALTIME when this kernel's clock started
 *	                        (CLOCK_REALTIME - CLOCK_BOOTTIME), uncorrected
 *	offset_us=-412345       add to this boot's CLOCK_REALTIME for RTC time
 *	uncertainty_us=180      half the window the tick was seen in
 *
 * It takes up to 2 s and spins for the last few milliseconds of it; run
 * it off any path being timed.
 */
#include <fcntl.h>
#include <linux/rtc.h>
#include <sys/ioctl.h>
#include <time.h>

#include "util.h"

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int rtc_seconds(int fd, int64_t *s)
{
	struct rtc_time rt;
	struct tm tm = { 0 };

	if (ioctl(fd, RTC_RD_TIME, &rt) < 0)
		return -errno;
	tm.tm_sec = rt.tm_sec;
	tm.tm_min = rt.tm_min;
	tm.tm_hour = rt.tm_hour;
	tm.tm_mday = rt.tm_mday;
	tm.tm_mon = rt.tm_mon;
	tm.tm_year = rt.tm_year;
	*s = (int64_t)timegm(&tm); /* the guest's RTC keeps UTC */
	return 0;
}

/*
 * Wait for the RTC's seconds to change. Returns the new second, with
 * *lo..*hi the CLOCK_REALTIME window the change happened in. With spin,
 * poll without sleeping (sleeps here last a whole jiffy, 4 ms at HZ=250).
 */
static int wait_tick(int fd, bool spin, int64_t *second, int64_t *lo,
		     int64_t *hi)
{
	int64_t first, s, before, prev_before, after, start;
	int r;

	start = before = clock_us(CLOCK_REALTIME);
	r = rtc_seconds(fd, &first);
	if (r < 0)
		return r;
	for (;;) {
		prev_before = before;
		if (!spin)
			usleep(500);
		before = clock_us(CLOCK_REALTIME);
		r = rtc_seconds(fd, &s);
		after = clock_us(CLOCK_REALTIME);
		if (r < 0)
			return r;
		if (s != first)
			break;
		if (after - start > 3000000)
			return -ETIME;
	}
	/* The last read that saw the old second began at prev_before. */
	*second = s;
	*lo = prev_before;
	*hi = after;
	return 0;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/rtc0";
	_cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
	int64_t s, lo, hi, wake;
	int r;

	/* This one needs no RTC: print it first, whatever happens next. */
	printf("kernel_start_us=%" PRId64 "\n",
	       (int64_t)kernel_start_us());
	fflush(stdout);
	if (fd < 0) {
		fprintf(stderr, "clock-info: cannot open %s: %s\n", dev,
			strerror(errno));
		return 1;
	}
	/* A first tick, roughly, then spin only just before the next. */
	r = wait_tick(fd, false, &s, &lo, &hi);
	if (r == 0) {
		wake = lo + 1000000 - (hi - lo) - 20000 -
		       clock_us(CLOCK_REALTIME);
		if (wake > 0)
			usleep((useconds_t)wake);
		r = wait_tick(fd, true, &s, &lo, &hi);
	}
	if (r < 0) {
		fprintf(stderr, "clock-info: watching the RTC on %s: %s\n", dev,
			r == -ETIME ? "it did not tick in 3 s" : strerror(-r));
		return 1;
	}
	printf("offset_us=%" PRId64 "\n", s * 1000000 - (lo + hi) / 2);
	printf("uncertainty_us=%" PRId64 "\n", (hi - lo + 1) / 2);
	return 0;
}
