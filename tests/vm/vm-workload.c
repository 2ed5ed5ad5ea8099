// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vm-workload: /init (PID 1) of the nested-VM test's inner guest, a
 * program whose whole state lives in guest RAM, so its serial output shows
 * whether a checkpointed and restored VM went on from where it was.
 *
 * It fills a buffer of vmw.mib=N MiB (kernel command line, default 64)
 * from a seeded xorshift64 and keeps a running digest of it,
 *
 *	digest = sum over 64-bit words w[i] of w[i] * k(i)  (mod 2^64)
 *
 * with k(i) = splitmix64(i) | 1, which a change of w[i] from a to b
 * updates in O(1): digest += (b - a) * k(i). Once a second it changes one
 * pseudo-random word, and every tenth second it recomputes the digest
 * over the whole buffer. All on the console, flushed line by line:
 *
 *	vm-workload: start mib=64 digest=<hex>
 *	vm-workload: tick=N up=<CLOCK_BOOTTIME s> digest=<running hex>
 *	vm-workload: verify tick=N full=<hex> running=<hex> ok|FAIL
 *
 * The fill and the word changes come from fixed seeds, so the digest at
 * tick N is the same in every run of the same size, restored or not.
 * With vmw.timing=1 it also prints how long the fill and each verify took
 * ("vm-workload: timing fill ms=N", "timing verify tick=N ms=N").
 *
 * PID 1 must never exit: on a setup failure it prints
 * "vm-workload: error: ..." and sleeps forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define FILL_SEED	0x6c756f642d766d31ULL	/* "luod-vm1" */
#define TICK_SEED	0x7469636b2d726e67ULL	/* "tick-rng" */
#define DEFAULT_MIB	64
#define MAX_MIB		(1 << 20)
#define RESERVE_MIB	8	/* left free for the kernel */
#define VERIFY_EVERY	10

static int console_fd = -1;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on the console, "vm-workload: " first, in one write. */
static void say(const char *fmt, ...)
{
	char line[512];
	size_t len, off = 0;
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "vm-workload: ");
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
	line[len++] = '\n';
	if (console_fd < 0)
		return;
	while (off < len) {
		ssize_t r = write(console_fd, line + off, len - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		off += r;
	}
}

static void __attribute__((noreturn)) sleep_forever(void)
{
	for (;;)
		pause();
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say("error: %s", msg);
	sleep_forever();
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int open_console_dev(void)
{
	static const char *const paths[] = { "/dev/console", "/dev/ttyS0" };
	size_t i;
	int fd;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		fd = open(paths[i], O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			fd = open(paths[i], O_WRONLY | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0)
			return fd;
	}
	return -1;
}

/*
 * The kernel gives /init the console as fds 0-2 when the initramfs has
 * /dev/console. Otherwise: the console as it is, or after mounting
 * devtmpfs on /dev, or a node of our own (5,1 console, 4,64 ttyS0).
 */
static void open_console(void)
{
	int fd;

	if (fd_is_open(STDOUT_FILENO)) {
		console_fd = STDOUT_FILENO;
		return;
	}
	fd = open_console_dev();
	if (fd < 0) {
		mkdir("/dev", 0755);
		mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
		fd = open_console_dev();
	}
	if (fd < 0) {
		mknod("/dev/console", S_IFCHR | 0600, makedev(5, 1));
		mknod("/dev/ttyS0", S_IFCHR | 0600, makedev(4, 64));
		fd = open_console_dev();
	}
	if (fd < 0)
		return;
	/* Fill fds 0-2 so nothing else lands on them. */
	while (fd <= STDERR_FILENO) {
		int nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

		if (nfd < 0)
			break;
		fd = nfd;
	}
	for (int i = STDIN_FILENO; i <= STDERR_FILENO; i++)
		if (!fd_is_open(i))
			dup2(fd, i);
	console_fd = fd_is_open(STDOUT_FILENO) ? STDOUT_FILENO : fd;
}

/*
 * Value of "KEY=N" on the kernel command line in @v, or @def if KEY is not
 * there; false if its value is not a number.
 */
static bool cmdline_ulong(const char *cmdline, const char *key,
			  unsigned long def, unsigned long *v)
{
	size_t klen = strlen(key);
	const char *p = cmdline;

	*v = def;
	while ((p = strstr(p, key))) {
		if ((p == cmdline || p[-1] == ' ') && p[klen] == '=') {
			const char *val = p + klen + 1;
			char *end;

			errno = 0;
			*v = strtoul(val, &end, 10);
			return !errno && end != val && *val != '-' &&
			       (!*end || *end == ' ' || *end == '\n');
		}
		p += klen;
	}
	return true;
}

/*
 * The kernel keeps parameters with a dot (vmw.mib=) from init's argv and
 * environment, taking them for module parameters: read /proc/cmdline.
 */
static bool read_cmdline(char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mkdir("/proc", 0555);
		mount("proc", "/proc", "proc", 0, NULL);
		fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

static inline uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Odd per-index multiplier: splitmix64's output for index i. */
static inline uint64_t weight(uint64_t i)
{
	uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31)) | 1;
}

static uint64_t digest_all(const uint64_t *w, size_t n)
{
	uint64_t d = 0;

	for (size_t i = 0; i < n; i++)
		d += w[i] * weight(i);
	return d;
}

static uint64_t fill(uint64_t *w, size_t n)
{
	uint64_t s = FILL_SEED, d = 0;

	for (size_t i = 0; i < n; i++) {
		w[i] = xorshift64(&s);
		d += w[i] * weight(i);
	}
	return d;
}

static int64_t now_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Sleep until the next whole second of the schedule started at @t0 that
 * is still ahead: slots missed by a slow verify are skipped, not caught
 * up in a burst.
 */
static void sleep_to_next(const struct timespec *t0, uint64_t *slot)
{
	struct timespec now, next;
	int64_t elapsed_ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed_ns = (int64_t)(now.tv_sec - t0->tv_sec) * 1000000000 +
		     (now.tv_nsec - t0->tv_nsec);
	(*slot)++;
	if (elapsed_ns >= (int64_t)*slot * 1000000000)
		*slot = elapsed_ns / 1000000000 + 1;
	next.tv_sec = t0->tv_sec + *slot;
	next.tv_nsec = t0->tv_nsec;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) ==
	       EINTR)
		;
}

int main(void)
{
	char cmdline[4096] = "";
	uint64_t *w, running, rng = TICK_SEED, tick = 0, slot = 0;
	unsigned long mib, val;
	struct timespec t0, up;
	struct sysinfo si;
	bool timing;
	int64_t ms;
	size_t n;

	open_console();
	if (!read_cmdline(cmdline, sizeof(cmdline)))
		say("note: cannot read /proc/cmdline (%s): mib=%d",
		    strerror(errno), DEFAULT_MIB);
	if (!cmdline_ulong(cmdline, "vmw.mib", DEFAULT_MIB, &mib))
		fail("vmw.mib= wants a number of MiB");
	if (mib < 1 || mib > MAX_MIB)
		fail("vmw.mib=%lu is out of range (1-%d)", mib, MAX_MIB);
	if (!cmdline_ulong(cmdline, "vmw.timing", 0, &val))
		fail("vmw.timing= wants 0 or 1");
	timing = val != 0;
	n = (size_t)mib << 17;	/* 64-bit words in mib MiB */

	/* More than the guest has would end in the OOM killer's panic. */
	if (sysinfo(&si) == 0 &&
	    ((uint64_t)mib + RESERVE_MIB) << 20 >
	    (uint64_t)si.freeram * si.mem_unit)
		fail("vmw.mib=%lu does not fit in %llu MiB free (%d kept back)",
		     mib, (unsigned long long)si.freeram * si.mem_unit >> 20,
		     RESERVE_MIB);

	w = mmap(NULL, n * sizeof(*w), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (w == MAP_FAILED)
		fail("cannot allocate %lu MiB: %s", mib, strerror(errno));

	ms = now_ms(CLOCK_MONOTONIC);
	running = fill(w, n);
	if (timing)
		say("timing fill ms=%" PRId64, now_ms(CLOCK_MONOTONIC) - ms);
	say("start mib=%lu digest=%016" PRIx64, mib, running);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint64_t i, old, new;

		sleep_to_next(&t0, &slot);
		tick++;
		i = xorshift64(&rng) % n;
		old = w[i];
		new = xorshift64(&rng);
		w[i] = new;
		running += (new - old) * weight(i);
		clock_gettime(CLOCK_BOOTTIME, &up);
		say("tick=%" PRIu64 " up=%lld.%02ld digest=%016" PRIx64, tick,
		    (long long)up.tv_sec, up.tv_nsec / 10000000, running);

		if (tick % VERIFY_EVERY == 0) {
			uint64_t full;

			ms = now_ms(CLOCK_MONOTONIC);
			full = digest_all(w, n);
			ms = now_ms(CLOCK_MONOTONIC) - ms;
			say("verify tick=%" PRIu64 " full=%016" PRIx64
			    " running=%016" PRIx64 " %s", tick, full, running,
			    full == running ? "ok" : "FAIL");
			if (timing)
				say("timing verify tick=%" PRIu64 " ms=%" PRId64,
				    tick, ms);
		}
	}
}
