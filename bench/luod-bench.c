// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod-bench: the measuring programs bench/scenario runs in the LUO guest.
 *
 *   luod-bench raw-preserve N        baseline, before the kexec: one process
 *                                    creates N sessions bench.raw.I, one 4 KiB
 *                                    memfd in each, then keeps them open in
 *                                    the background (needs /dev/liveupdate,
 *                                    so it runs before luod starts)
 *   luod-bench raw-restore N         baseline, after the kexec: retrieves,
 *                                    checks and finishes them all
 *   luod-bench big-preserve MIB      context: one memfd of MIB MiB in session
 *   luod-bench big-restore           bench.big, preserved / restored
 *   luod-bench clients-preserve N [--luod-pid PID]
 *                                    N client processes, one at a time: each
 *                                    connects, creates one session, preserves
 *                                    one 4 KiB memfd, subscribes, and then
 *                                    (all at once) waits for PREPARE, says
 *                                    READY and exits
 *   luod-bench clients-restore N [--luod-pid PID]
 *                                    N client processes: each connects (one
 *                                    at a time, all stay connected), then one
 *                                    at a time CLAIMs, retrieves, checks,
 *                                    finishes and says FINISHED
 *   luod-bench start-luod LOG -- LUOD [ARGS]...
 *                                    start luod (output to LOG) and time its
 *                                    exec until the socket accepts
 *   luod-bench kexec TIMEOUT         send KEXEC, printing the time first
 *   luod-bench timeline              the last update's timeline from STATUS
 *   luod-bench proc PID              VmHWM, VmRSS and open fds of PID
 *
 * Each prints TAP ("ok - ..."), and its figures as one line
 * "# bench {JSON}" that bench/run collects. Durations are microseconds of
 * CLOCK_MONOTONIC; *_t_us fields are CLOCK_REALTIME.
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#include <json-c/json.h>

#include "luo.h"
#include "luod.h"
#include "util.h"

#define SMALL 4096
#define TOKEN 1
#define RAW_PREFIX "bench.raw."
#define BIG_SESSION "bench.big"
#define CLIENT_PREFIX "bench.c"

static unsigned n_failed;

_printf_(2, 3) static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok - ", ok ? "" : "not ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	n_failed += !ok;
	return ok;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* Console output is lost if a kexec comes while it is still queued. */
static void drain_console(void)
{
	fflush(NULL);
	if (isatty(STDOUT_FILENO))
		tcdrain(STDOUT_FILENO);
}

/* "# bench {JSON}": one object per line, built with json-c. */
static void emit(struct json_object *o)
{
	printf("# bench %s\n",
	       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	drain_console();
	json_object_put(o);
}

static void add_num(struct json_object *o, const char *k, double v)
{
	/* One decimal of a microsecond is more than these clocks resolve. */
	json_object_object_add(o, k,
			       json_object_new_double(round(v * 10) / 10));
}

static void add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static struct json_object *record(const char *what, unsigned n)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "what", json_object_new_string(what));
	add_int(o, "n", n);
	return o;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of v[0..n) in ns, sorted in place; in µs. */
static double pct(uint64_t *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	k = (size_t)ceil(p / 100.0 * (double)n);
	return us(v[k ? k - 1 : 0]);
}

static double sum_us(const uint64_t *v, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += v[i];
	return us(s);
}

/* name_sum, name_p50, name_p99, name_max of n samples (ns). */
static void add_dist(struct json_object *o, const char *name, uint64_t *v,
		     size_t n)
{
	char k[64];

	snprintf(k, sizeof(k), "%s_sum_us", name);
	add_num(o, k, sum_us(v, n));
	snprintf(k, sizeof(k), "%s_p50_us", name);
	add_num(o, k, pct(v, n, 50));
	snprintf(k, sizeof(k), "%s_p99_us", name);
	add_num(o, k, pct(v, n, 99));
	snprintf(k, sizeof(k), "%s_max_us", name);
	add_num(o, k, n ? us(v[n - 1]) : 0);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static uint64_t pattern(uint64_t seed, size_t k)
{
	return (seed + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)k;
}

/* A 4 KiB memfd whose bytes depend on seed. */
static int small_memfd(uint64_t seed)
{
	uint64_t buf[SMALL / 8];
	int fd = memfd_create("bench", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (size_t k = 0; k < ARRAY_SIZE(buf); k++)
		buf[k] = pattern(seed, k);
	if (write_all(fd, buf, sizeof(buf)) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static bool small_ok(int fd, uint64_t seed)
{
	uint64_t buf[SMALL / 8];

	if (pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		return false;
	for (size_t k = 0; k < ARRAY_SIZE(buf); k++)
		if (buf[k] != pattern(seed, k))
			return false;
	return true;
}

/* Keep fds open across the kexec: a child sleeps with them. */
static void hold_in_background(void)
{
	pid_t pid;

	drain_console();
	pid = fork();
	if (pid < 0) {
		check(false, "fork: %s", strerror(errno));
		exit(1);
	}
	if (pid > 0)
		exit(n_failed ? 1 : 0);
	setsid();
	for (;;)
		pause();
}

static int open_dev(void)
{
	int fd = luo_open_device(NULL);

	if (fd < 0)
		check(false, "open %s: %s", LUO_DEVICE, strerror(-fd));
	return fd;
}

/* ---- the baseline: one process, raw ioctls ---- */

#define RAW_WARM RAW_PREFIX "warm"
#define WARM_SEED 999999

static int warm_raw_session(int dev)
{
	int sfd = luo_create_session(dev, RAW_WARM),
	    mfd = small_memfd(WARM_SEED);
	int r = sfd < 0 || mfd < 0 ? -EBADF : luo_preserve_fd(sfd, mfd, TOKEN);

	safe_close(mfd);
	if (!check(r == 0, "warm-up session %s (%s)", RAW_WARM, strerror(-r)))
		return -1;
	return 0; /* sfd stays open: the background child holds it */
}

static int warm_raw_restore(int dev)
{
	int sfd = luo_retrieve_session(dev, RAW_WARM), mfd = -1, r = -EBADF;

	if (sfd >= 0)
		mfd = luo_retrieve_fd(sfd, TOKEN);
	if (mfd >= 0 && small_ok(mfd, WARM_SEED))
		r = luo_finish(sfd);
	safe_close(mfd);
	safe_close(sfd);
	return check(r == 0, "warm-up session %s restored (%s)", RAW_WARM,
		     strerror(-r)) ?
		       0 :
		       -1;
}

static int raw_preserve(unsigned n)
{
	_cleanup_close_ int dev = -1;
	uint64_t t0, t_create = 0, t_memfd = 0, t_preserve = 0, total;
	struct json_object *o;

	raise_nofile();
	dev = open_dev();
	if (dev < 0)
		return 1;
	/* Untimed first: under TCG the first run of any code path pays for
	 * its translation. The warm-up session crosses the kexec too, so
	 * raw-restore can warm up the same way. */
	if (warm_raw_session(dev) < 0)
		return 1;
	t0 = mono_ns();
	for (unsigned i = 0; i < n; i++) {
		char name[64];
		uint64_t a = mono_ns(), b, c;
		int sfd, mfd, r;

		snprintf(name, sizeof(name), RAW_PREFIX "%u", i);
		sfd = luo_create_session(dev, name);
		b = mono_ns();
		mfd = small_memfd(i);
		c = mono_ns();
		r = sfd < 0 || mfd < 0 ? -EBADF :
					 luo_preserve_fd(sfd, mfd, TOKEN);
		t_preserve += mono_ns() - c;
		t_memfd += c - b;
		t_create += b - a;
		if (sfd < 0 || mfd < 0 || r < 0) {
			check(false,
			      "raw session %u of %u: create %s, memfd %s, preserve %s",
			      i, n, strerror(sfd < 0 ? -sfd : 0),
			      strerror(mfd < 0 ? -mfd : 0),
			      strerror(r < 0 ? -r : 0));
			return 1;
		}
		close(mfd); /* the session holds the file */
	}
	total = mono_ns() - t0;
	/* luod opens the device next: it is exclusive. */
	dev = safe_close(dev);
	check(true, "measured the raw preserve of %u sessions: %.0f us", n,
	      us(total));
	o = record("raw_preserve", n);
	add_num(o, "us", us(total));
	add_num(o, "create_us", us(t_create));
	add_num(o, "memfd_us", us(t_memfd));
	add_num(o, "preserve_us", us(t_preserve));
	emit(o);
	hold_in_background();
	return 0;
}

static int raw_restore(unsigned n)
{
	_cleanup_close_ int dev = -1;
	uint64_t t0, t_retrieve = 0, t_fd = 0, t_check = 0, t_finish = 0, total,
		     open_ns;
	struct json_object *o;
	unsigned bad = 0;

	raise_nofile();
	/* The first open after a kexec deserializes every incoming session
	 * (luod's too): the kernel's cost, counted here. */
	t0 = mono_ns();
	dev = open_dev();
	if (dev < 0)
		return 1;
	open_ns = mono_ns() - t0;
	if (warm_raw_restore(dev) < 0)
		return 1;
	t0 = mono_ns();
	for (unsigned i = 0; i < n; i++) {
		char name[64];
		uint64_t a = mono_ns(), b, c, d;
		int sfd, mfd = -1, r = -1;

		snprintf(name, sizeof(name), RAW_PREFIX "%u", i);
		sfd = luo_retrieve_session(dev, name);
		b = mono_ns();
		if (sfd >= 0)
			mfd = luo_retrieve_fd(sfd, TOKEN);
		c = mono_ns();
		if (mfd >= 0 && !small_ok(mfd, i))
			bad++;
		d = mono_ns();
		if (sfd >= 0)
			r = luo_finish(sfd);
		safe_close(mfd);
		safe_close(sfd);
		t_finish += mono_ns() - d;
		t_check += d - c;
		t_fd += c - b;
		t_retrieve += b - a;
		if (sfd < 0 || mfd < 0 || r < 0) {
			check(false,
			      "raw session %u of %u: retrieve %s, retrieve fd %s, finish %s",
			      i, n, strerror(sfd < 0 ? -sfd : 0),
			      strerror(mfd < 0 ? -mfd : 0),
			      strerror(r < 0 ? -r : 0));
			return 1;
		}
	}
	total = mono_ns() - t0;
	dev = safe_close(dev);
	check(bad == 0, "the %u raw memfds came back intact (%u bad)", n, bad);
	check(true, "measured the raw restore of %u sessions: %.0f us", n,
	      us(total));
	o = record("raw_restore", n);
	add_num(o, "us", us(total));
	add_num(o, "open_us", us(open_ns));
	add_num(o, "retrieve_us", us(t_retrieve));
	add_num(o, "retrieve_fd_us", us(t_fd));
	add_num(o, "check_us", us(t_check));
	add_num(o, "finish_us", us(t_finish));
	emit(o);
	return n_failed ? 1 : 0;
}

/* ---- context: one big memfd ---- */

static int big_preserve(unsigned mib)
{
	_cleanup_close_ int dev = -1, mfd = -1, sfd = -1;
	size_t size = (size_t)mib << 20;
	uint64_t t0, t1, t2, t3;
	struct json_object *o;
	uint64_t *p;
	int r;

	t0 = mono_ns();
	mfd = memfd_create("bench-big", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)size) < 0)
		return check(false, "memfd of %u MiB: %m", mib), 1;
	p = mmap(NULL, size, PROT_WRITE, MAP_SHARED, mfd, 0);
	if (p == MAP_FAILED)
		return check(false, "mmap %u MiB: %m", mib), 1;
	/* One word per page: every page is allocated and recognisable. */
	for (size_t pg = 0; pg < size / 4096; pg++)
		p[pg * 512] = pattern(7, pg);
	munmap(p, size);
	t1 = mono_ns();
	dev = open_dev();
	if (dev < 0)
		return 1;
	sfd = luo_create_session(dev, BIG_SESSION);
	if (sfd < 0)
		return check(false, "create session: %s", strerror(-sfd)), 1;
	t2 = mono_ns();
	r = luo_preserve_fd(sfd, mfd, TOKEN);
	t3 = mono_ns();
	if (!check(r == 0, "preserved a %u MiB memfd (%s)", mib, strerror(-r)))
		return 1;
	dev = safe_close(dev);
	mfd = safe_close(mfd);
	check(true, "measured the preserve of %u MiB: %.0f us", mib,
	      us(t3 - t2));
	o = record("big_preserve", 1);
	add_int(o, "mib", mib);
	add_num(o, "fill_us", us(t1 - t0));
	add_num(o, "preserve_us", us(t3 - t2));
	emit(o);
	take_fd(&sfd); /* held by the background child */
	hold_in_background();
	return 0;
}

static int big_restore(void)
{
	_cleanup_close_ int dev = -1, sfd = -1, mfd = -1;
	uint64_t t0, t1, t2, t3, t4, t5;
	struct json_object *o;
	size_t size, bad = 0;
	struct stat st;
	uint64_t *p;
	int r;

	t0 = mono_ns();
	dev = open_dev();
	if (dev < 0)
		return 1;
	t1 = mono_ns();
	sfd = luo_retrieve_session(dev, BIG_SESSION);
	if (sfd < 0)
		return check(false, "retrieve %s: %s", BIG_SESSION,
			     strerror(-sfd)),
		       1;
	t2 = mono_ns();
	mfd = luo_retrieve_fd(sfd, TOKEN);
	t3 = mono_ns();
	if (mfd < 0 || fstat(mfd, &st) < 0)
		return check(false, "retrieve the big memfd: %s",
			     strerror(mfd < 0 ? -mfd : errno)),
		       1;
	size = (size_t)st.st_size;
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, mfd, 0);
	if (p == MAP_FAILED)
		return check(false, "mmap: %m"), 1;
	for (size_t pg = 0; pg < size / 4096; pg++)
		bad += p[pg * 512] != pattern(7, pg);
	munmap(p, size);
	t4 = mono_ns();
	r = luo_finish(sfd);
	t5 = mono_ns();
	check(r == 0, "finished %s (%s)", BIG_SESSION, strerror(-r));
	check(bad == 0, "all %zu pages of the big memfd came back (%zu bad)",
	      size / 4096, bad);
	check(true, "measured the restore of %zu MiB: %.0f us", size >> 20,
	      us(t3 - t1));
	o = record("big_restore", 1);
	add_int(o, "mib", (int64_t)(size >> 20));
	add_num(o, "open_us", us(t1 - t0));
	add_num(o, "retrieve_us", us(t2 - t1));
	add_num(o, "retrieve_fd_us", us(t3 - t2));
	add_num(o, "check_us", us(t4 - t3));
	add_num(o, "finish_us", us(t5 - t4));
	emit(o);
	return n_failed ? 1 : 0;
}

/* ---- luod's side: N client processes ---- */

enum {
	T_CONNECT,
	T_CREATE,
	T_PRESERVE,
	T_SUBSCRIBE,
	T_CLAIM,
	T_RETRIEVE,
	T_FINISHED,
	T_MAX
};

/* Shared with the children (MAP_SHARED before fork); go/done are futexes. */
struct slot {
	uint32_t go; /* parent -> child: 1 claim, 2 exit */
	uint32_t done; /* child -> parent: 1 step done, 2 all done, 99 failed */
	uint64_t t[T_MAX]; /* ns */
	char err[120];
};

static long futex(uint32_t *w, int op, uint32_t v, const struct timespec *ts)
{
	return syscall(SYS_futex, w, op, v, ts, NULL, 0);
}

static void set_wake(uint32_t *w, uint32_t v)
{
	__atomic_store_n(w, v, __ATOMIC_SEQ_CST);
	futex(w, FUTEX_WAKE, INT_MAX, NULL);
}

static void wait_for(uint32_t *w, uint32_t v)
{
	while (__atomic_load_n(w, __ATOMIC_SEQ_CST) != v)
		futex(w, FUTEX_WAIT, __atomic_load_n(w, __ATOMIC_SEQ_CST),
		      NULL);
}

_printf_(2, 3) static _Noreturn void child_fail(struct slot *s, const char *fmt,
						...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	set_wake(&s->done, 99);
	_exit(1);
}

/* Waits until the child sets done >= v (or dies); false if it failed. */
static bool parent_wait(struct slot *s, pid_t pid, uint32_t v, unsigned i)
{
	const struct timespec tick = { 0, 100 * 1000 * 1000 };
	uint32_t d;

	while ((d = __atomic_load_n(&s->done, __ATOMIC_SEQ_CST)) < v) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			if (__atomic_load_n(&s->done, __ATOMIC_SEQ_CST) >= v)
				break;
			check(false, "client %u (pid %d) died: %s", i, (int)pid,
			      s->err[0] ? s->err : "no message");
			return false;
		}
		futex(&s->done, FUTEX_WAIT, d, &tick);
	}
	if (s->done == 99) {
		check(false, "client %u: %s", i, s->err);
		return false;
	}
	return true;
}

static void client_id(char *buf, size_t size, unsigned i)
{
	snprintf(buf, size, CLIENT_PREFIX "%u", i);
}

static _Noreturn void preserve_child(struct slot *s, unsigned i)
{
	const char *pipeline = getenv("LUOD_BENCH_PIPELINE");
	struct luod_client *c = NULL;
	struct luod_event ev;
	uint64_t a, b;
	char id[32];
	int r, sfd = -1, mfd;

	client_id(id, sizeof(id), i);
	if (pipeline && *pipeline) {
		/* connect, HELLO, CREATE_SESSION and SUBSCRIBE in one round
		 * trip, all counted as the connect. */
		a = mono_ns();
		r = luod_connect_subscribed(NULL, id, "s", &sfd, &c);
		b = mono_ns();
		s->t[T_CONNECT] = b - a;
		if (r < 0)
			child_fail(s, "connect, CREATE_SESSION, SUBSCRIBE: %s",
				   strerror(-r));
		mfd = small_memfd(i);
		r = mfd < 0 ? mfd : luod_session_preserve_fd(sfd, mfd, TOKEN);
		s->t[T_PRESERVE] = mono_ns() - b;
		if (r < 0)
			child_fail(s, "memfd and preserve: %s", strerror(-r));
		close(mfd);
		close(sfd);
	} else {
		a = mono_ns();
		r = luod_connect(NULL, id, &c);
		b = mono_ns();
		s->t[T_CONNECT] = b - a;
		if (r < 0)
			child_fail(s, "connect: %s", strerror(-r));
		r = luod_create_session(c, "s", &sfd);
		a = mono_ns();
		s->t[T_CREATE] = a - b;
		if (r < 0)
			child_fail(s, "CREATE_SESSION: %s %s", strerror(-r),
				   luod_last_error_message(c));
		mfd = small_memfd(i);
		r = mfd < 0 ? mfd : luod_session_preserve_fd(sfd, mfd, TOKEN);
		b = mono_ns();
		s->t[T_PRESERVE] = b - a;
		if (r < 0)
			child_fail(s, "memfd and preserve: %s", strerror(-r));
		close(mfd);
		close(sfd); /* luod keeps its own copy */
		r = luod_subscribe(c);
		a = mono_ns();
		s->t[T_SUBSCRIBE] = a - b;
		if (r < 0)
			child_fail(s, "SUBSCRIBE: %s", strerror(-r));
	}
	set_wake(&s->done, 1);

	r = luod_next_event(c, &ev, -1);
	if (r == 1 && ev.type == LUOD_EVENT_PREPARE) {
		safe_close(ev.new_session_fd);
		luod_ready(c);
		/* luod holds the session across the kexec; stay until it comes
		 * so that nothing of ours runs in the blackout's way. */
		pause();
	}
	_exit(1);
}

static _Noreturn void restore_child(struct slot *s, unsigned i)
{
	struct luod_client *c = NULL;
	struct luod_session *ss = NULL;
	size_t n = 0;
	uint64_t a, b;
	char id[32];
	int r, mfd;

	client_id(id, sizeof(id), i);
	a = mono_ns();
	r = luod_connect(NULL, id, &c);
	s->t[T_CONNECT] = mono_ns() - a;
	if (r < 0)
		child_fail(s, "connect: %s", strerror(-r));
	set_wake(&s->done, 1);

	wait_for(&s->go, 1);
	a = mono_ns();
	r = luod_claim(c, NULL, &ss, &n);
	b = mono_ns();
	s->t[T_CLAIM] = b - a;
	if (r < 0 || n != 1)
		child_fail(s, "CLAIM: %s %s (n=%zu)", strerror(-r),
			   luod_last_error_message(c), n);
	mfd = luod_session_retrieve_fd(ss[0].fd, TOKEN);
	if (mfd < 0)
		child_fail(s, "retrieve fd: %s", strerror(-mfd));
	if (!small_ok(mfd, i))
		child_fail(s, "the memfd's bytes are wrong");
	r = luod_session_finish(ss[0].fd);
	a = mono_ns();
	s->t[T_RETRIEVE] = a - b;
	if (r < 0)
		child_fail(s, "finish: %s", strerror(-r));
	close(mfd);
	r = luod_finished(c, ss[0].name);
	s->t[T_FINISHED] = mono_ns() - a;
	if (r < 0)
		child_fail(s, "FINISHED: %s", strerror(-r));
	luod_sessions_free(ss, n);
	set_wake(&s->done, 2);
	/* Stay connected until all are done: luod serves N connections. */
	wait_for(&s->go, 2);
	luod_disconnect(c);
	_exit(0);
}

struct proc_stats {
	long hwm_kib, rss_kib, fds;
};

static int proc_stats(pid_t pid, struct proc_stats *ps)
{
	char path[64], line[256];
	_cleanup_fclose_ FILE *f = NULL;
	DIR *dir;
	struct dirent *de;

	*ps = (struct proc_stats){ -1, -1, 0 };
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmHWM: %ld", &ps->hwm_kib);
		sscanf(line, "VmRSS: %ld", &ps->rss_kib);
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir)))
		ps->fds += de->d_name[0] != '.';
	closedir(dir);
	return 0;
}

static void add_proc(struct json_object *o, const char *prefix, pid_t pid)
{
	struct proc_stats ps;
	char k[64];

	if (pid <= 0 || proc_stats(pid, &ps) < 0)
		return;
	snprintf(k, sizeof(k), "%shwm_kib", prefix);
	add_int(o, k, ps.hwm_kib);
	snprintf(k, sizeof(k), "%srss_kib", prefix);
	add_int(o, k, ps.rss_kib);
	snprintf(k, sizeof(k), "%sfds", prefix);
	add_int(o, k, ps.fds);
}

static struct slot *map_slots(unsigned n)
{
	struct slot *s = mmap(NULL, sizeof(*s) * n, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return s == MAP_FAILED ? NULL : s;
}

static uint64_t *column(struct slot *s, unsigned n, int k)
{
	uint64_t *v = calloc(n ? n : 1, sizeof(*v));

	for (unsigned i = 0; v && i < n; i++)
		v[i] = s[i].t[k];
	return v;
}

static void add_column(struct json_object *o, const char *name, struct slot *s,
		       unsigned n, int k)
{
	_cleanup_free_ uint64_t *v = column(s, n, k);

	if (v)
		add_dist(o, name, v, n);
}

static int clients_preserve(unsigned n, pid_t luod_pid)
{
	struct slot *s = map_slots(n);
	struct json_object *o;
	uint64_t t0, wall, work = 0;

	if (!s)
		return check(false, "mmap: %m"), 1;
	fflush(NULL);
	t0 = mono_ns();
	/* One at a time, as VMs start on a host: each client's own time is
	 * luod's cost for it, without the others in its way. */
	for (unsigned i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return check(false, "fork client %u: %m", i), 1;
		if (pid == 0)
			preserve_child(&s[i], i);
		if (!parent_wait(&s[i], pid, 1, i))
			return 1;
	}
	wall = mono_ns() - t0;
	for (unsigned i = 0; i < n; i++)
		for (int k = T_CONNECT; k <= T_SUBSCRIBE; k++)
			work += s[i].t[k];
	check(true,
	      "measured %u clients' setup through luod: %.0f us of client time, %.0f us wall",
	      n, us(work), us(wall));
	o = record("clients_preserve", n);
	add_num(o, "us", us(work));
	add_num(o, "wall_us", us(wall));
	add_column(o, "connect", s, n, T_CONNECT);
	add_column(o, "create", s, n, T_CREATE);
	add_column(o, "preserve", s, n, T_PRESERVE);
	add_column(o, "subscribe", s, n, T_SUBSCRIBE);
	add_proc(o, "luod_", luod_pid);
	emit(o);
	/* The children wait for PREPARE on their own. */
	return 0;
}

static int clients_restore(unsigned n, pid_t luod_pid)
{
	struct slot *s = map_slots(n);
	_cleanup_free_ pid_t *pids = calloc(n ? n : 1, sizeof(pid_t));
	_cleanup_free_ uint64_t *claim = NULL, *all = NULL;
	struct json_object *o;
	uint64_t t0, t1, t2, work = 0;
	struct proc_stats connected = { -1, -1, -1 };
	int failed = 0;

	if (!s || !pids)
		return check(false, "out of memory"), 1;
	fflush(NULL);
	t0 = mono_ns();
	for (unsigned i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			return check(false, "fork client %u: %m", i), 1;
		if (pids[i] == 0) {
			/* The child needs only its slot, and never returns. */
			free(take_ptr(pids));
			restore_child(&s[i], i);
		}
		if (!parent_wait(&s[i], pids[i], 1, i))
			return 1;
	}
	t1 = mono_ns();
	if (luod_pid > 0)
		proc_stats(luod_pid, &connected);
	for (unsigned i = 0; i < n && !failed; i++) {
		set_wake(&s[i].go, 1);
		failed = !parent_wait(&s[i], pids[i], 2, i);
	}
	t2 = mono_ns();
	for (unsigned i = 0; i < n; i++)
		set_wake(&s[i].go, 2);
	for (unsigned i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	if (failed)
		return 1;
	claim = column(s, n, T_CLAIM);
	all = calloc(n ? n : 1, sizeof(*all));
	if (!claim || !all)
		return check(false, "out of memory"), 1;
	for (unsigned i = 0; i < n; i++) {
		all[i] = s[i].t[T_CONNECT] + s[i].t[T_CLAIM] +
			 s[i].t[T_RETRIEVE] + s[i].t[T_FINISHED];
		work += all[i];
	}
	check(true,
	      "measured %u clients' restore through luod: %.0f us of client time, CLAIM p99 %.0f us",
	      n, us(work), pct(claim, n, 99));
	o = record("clients_restore", n);
	add_num(o, "us", us(work));
	add_num(o, "connect_wall_us", us(t1 - t0));
	add_num(o, "claim_wall_us", us(t2 - t1));
	add_column(o, "connect", s, n, T_CONNECT);
	add_dist(o, "claim", claim, n);
	add_column(o, "retrieve", s, n, T_RETRIEVE);
	add_column(o, "finished", s, n, T_FINISHED);
	if (connected.fds >= 0) {
		add_int(o, "luod_connected_fds", connected.fds);
		add_int(o, "luod_connected_rss_kib", connected.rss_kib);
	}
	add_proc(o, "luod_", luod_pid);
	emit(o);
	return 0;
}

/* ---- warm-ups of luod's paths, untimed ---- */

#define WARM_IDS 2

/*
 * Under TCG the first run of a code path pays for translating it, in luod,
 * libluod, json-c and the kernel alike. Two clients go through everything
 * the measured ones will, including an update: warm1 says READY, warm2 does
 * not answer, and an ABORT ends it. They then say LEAVE (their sessions
 * are complete, so the next update does not wait for them) and disconnect;
 * luod keeps their sessions, which cross the kexec for warm-restore.
 */
static int warm_preserve(void)
{
	struct luod_client *c[WARM_IDS] = { 0 }, *admin = NULL;
	_cleanup_free_ char *reply = NULL;
	struct luod_event ev;
	pid_t pid;
	int r, st;

	for (int i = 0; i < WARM_IDS; i++) {
		char id[32];
		int sfd = -1, mfd;

		snprintf(id, sizeof(id), "bench.warm%d", i + 1);
		r = luod_connect(NULL, id, &c[i]);
		if (r == 0)
			r = luod_create_session(c[i], "s", &sfd);
		mfd = r < 0 ? -EBADF : small_memfd(WARM_SEED + (unsigned)i);
		if (r == 0)
			r = mfd < 0 ? mfd :
				      luod_session_preserve_fd(sfd, mfd, TOKEN);
		safe_close(mfd);
		safe_close(sfd);
		if (r == 0)
			r = luod_subscribe(c[i]);
		if (!check(r == 0, "warm-up client %s set up (%s)", id,
			   strerror(-r)))
			return 1;
	}
	r = luod_connect(NULL, NULL, &admin);
	if (r < 0)
		return check(false, "connect: %s", strerror(-r)), 1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct luod_client *k = NULL;
		_cleanup_free_ char *kr = NULL;

		if (luod_connect(NULL, NULL, &k) < 0)
			_exit(1);
		/* Refused with UPDATE_ABORTED once the ABORT comes. */
		r = luod_call_json(k, "{\"cmd\":\"KEXEC\",\"timeout\":600}",
				   &kr);
		_exit(r == -EPROTO ? 0 : 1);
	}
	r = luod_next_event(c[0], &ev, 60000);
	if (!check(r == 1 && ev.type == LUOD_EVENT_PREPARE,
		   "warm-up update: PREPARE") ||
	    !check(luod_ready(c[0]) == 0, "warm-up update: READY"))
		return 1;
	r = luod_call_json(admin, "{\"cmd\":\"ABORT\"}", &reply);
	check(r == 0, "warm-up update: ABORT (%s)", strerror(-r));
	check(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		      WEXITSTATUS(st) == 0,
	      "warm-up update: KEXEC was aborted");
	for (int i = 0; i < WARM_IDS; i++) {
		/* warm2 never took its PREPARE off the queue. */
		do
			r = luod_next_event(c[i], &ev, 60000);
		while (r == 1 && ev.type == LUOD_EVENT_PREPARE);
		check(r == 1 && ev.type == LUOD_EVENT_ABORTED,
		      "warm-up client %d got ABORTED", i + 1);
		r = luod_leave(c[i]);
		check(r == 0, "warm-up client %d: LEAVE (%s)", i + 1,
		      strerror(-r));
		luod_disconnect(c[i]);
	}
	luod_disconnect(admin);
	return n_failed ? 1 : 0;
}

static int warm_restore(void)
{
	for (int i = 0; i < WARM_IDS; i++) {
		struct luod_client *c = NULL;
		struct luod_session *ss = NULL;
		size_t n = 0;
		char id[32];
		int r, mfd = -1;

		snprintf(id, sizeof(id), "bench.warm%d", i + 1);
		r = luod_connect(NULL, id, &c);
		if (r == 0)
			r = luod_claim(c, NULL, &ss, &n);
		if (r == 0 && n == 1)
			mfd = luod_session_retrieve_fd(ss[0].fd, TOKEN);
		if (mfd >= 0 && small_ok(mfd, WARM_SEED + (unsigned)i))
			r = luod_session_finish(ss[0].fd);
		else if (r == 0)
			r = -EIO;
		if (r == 0)
			r = luod_finished(c, ss[0].name);
		safe_close(mfd);
		luod_sessions_free(ss, n);
		luod_disconnect(c);
		if (!check(r == 0, "warm-up client %s restored (%s)", id,
			   strerror(-r)))
			return 1;
	}
	return 0;
}

/*
 * The platform's floor for a request and a reply carrying one fd (what a
 * CLAIM is, without luod): two processes on a socketpair, no JSON.
 */
static int send_line(int sock, const char *line, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)line, strlen(line) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static int recv_line(int sock, int *fd)
{
	char buf[256], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

	if (r <= 0)
		return r < 0 ? -errno : -EPIPE;
	*fd = -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	return 0;
}

static int pingpong(unsigned rounds)
{
	static const char req[] = "{\"cmd\":\"CLAIM\",\"id\":\"bench.c1\"}\n";
	static const char rep[] =
		"{\"ok\":true,\"reply\":\"CLAIM\",\"sessions\":[{\"name\":\"s\"}],\"fds\":1}\n";
	_cleanup_free_ uint64_t *rtt =
		calloc(rounds ? rounds : 1, sizeof(*rtt));
	struct json_object *o;
	int sv[2], fd;
	pid_t pid;

	if (!rtt || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return check(false, "socketpair: %m"), 1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int mfd = memfd_create("pong", MFD_CLOEXEC);

		close(sv[0]);
		while (recv_line(sv[1], &fd) == 0) {
			safe_close(fd);
			if (send_line(sv[1], rep, mfd) < 0)
				break;
		}
		_exit(0);
	}
	close(sv[1]);
	for (unsigned i = 0; i < rounds + rounds / 10; i++) {
		uint64_t a = mono_ns();

		if (send_line(sv[0], req, -1) < 0 || recv_line(sv[0], &fd) < 0)
			return check(false, "pingpong: %m"), 1;
		safe_close(fd);
		/* The first tenth warms up and is not counted. */
		if (i >= rounds / 10)
			rtt[i - rounds / 10] = mono_ns() - a;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	o = record("pingpong", rounds);
	add_dist(o, "rtt", rtt, rounds);
	check(true,
	      "measured the platform's request/reply-with-fd floor: p50 %.0f us",
	      pct(rtt, rounds, 50));
	emit(o);
	return 0;
}

/* ---- luod's start, the KEXEC, the timeline ---- */

static int try_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0)
		return -errno;
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

static int start_luod(const char *log, char **argv)
{
	const char *path = getenv("LUOD_SOCKET") ?: LUOD_DEFAULT_SOCKET;
	struct json_object *o;
	uint64_t t0, t1;
	pid_t pid;

	unlink(path);
	fflush(NULL);
	t0 = mono_ns();
	pid = fork();
	if (pid < 0)
		return check(false, "fork: %m"), 1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		setsid();
		execvp(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		const struct timespec nap = { 0, 200 * 1000 };
		int st;

		if (try_connect(path) == 0)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return check(false,
				     "luod exited before serving; see %s", log),
			       1;
		if (mono_ns() - t0 > 60ULL * 1000000000)
			return check(false, "luod did not serve within 60 s"),
			       1;
		nanosleep(&nap, NULL);
	}
	t1 = mono_ns();
	if (getenv("LUOD_BENCH_PIDFILE")) {
		FILE *f = fopen(getenv("LUOD_BENCH_PIDFILE"), "we");

		if (f) {
			fprintf(f, "%d\n", (int)pid);
			fclose(f);
		}
	}
	check(true, "measured luod's start: served %s after %.0f us", path,
	      us(t1 - t0));
	o = record("luod_start", 0);
	add_num(o, "us", us(t1 - t0));
	add_int(o, "pid", pid);
	emit(o);
	return 0;
}

static int do_kexec(unsigned timeout)
{
	struct luod_client *c = NULL;
	_cleanup_free_ char *reply = NULL;
	char req[128];
	struct json_object *o;
	int r;

	r = luod_connect(NULL, NULL, &c);
	if (r < 0)
		return check(false, "connect to luod: %s", strerror(-r)), 1;
	snprintf(req, sizeof(req), "{\"cmd\":\"KEXEC\",\"timeout\":%u}",
		 timeout);
	o = record("kexec_sent", 0);
	/* The KEXEC leaves right after this line: its timestamp is the
	 * start of "KEXEC command -> reboot syscall". */
	json_object_object_add(o, "t_us",
			       json_object_new_uint64(now_real_us()));
	emit(o);
	r = luod_call_json(c, req, &reply);
	if (r < 0)
		return check(false, "KEXEC: %s %s", strerror(-r),
			     luod_last_error_message(c)),
		       1;
	/* The reply says rebooting; the kexec follows. */
	sleep(120);
	check(false, "still up two minutes after KEXEC: %s", reply);
	return 1;
}

static int do_timeline(void)
{
	struct luod_client *c = NULL;
	_cleanup_free_ char *reply = NULL;
	struct json_object *st, *tl, *o;
	int64_t prepare = 0, first_ready = 0, last_ready = 0, reboot = 0,
		up = 0;
	unsigned readies = 0;
	int r;

	r = luod_connect(NULL, NULL, &c);
	if (r < 0)
		return check(false, "connect to luod: %s", strerror(-r)), 1;
	r = luod_call_json(c, "{\"cmd\":\"STATUS\"}", &reply);
	luod_disconnect(c);
	if (r < 0)
		return check(false, "STATUS: %s", strerror(-r)), 1;
	st = json_tokener_parse(reply);
	if (!st || !json_object_object_get_ex(st, "last_update", &o) ||
	    !json_object_object_get_ex(o, "timeline", &tl))
		return check(false, "no last_update.timeline in STATUS"), 1;
	for (size_t i = 0; i < json_object_array_length(tl); i++) {
		struct json_object *e = json_object_array_get_idx(tl, i), *v;
		const char *ev;
		int64_t t;

		if (!json_object_object_get_ex(e, "event", &v))
			continue;
		ev = json_object_get_string(v);
		if (!json_object_object_get_ex(e, "t_us", &v))
			continue;
		t = json_object_get_int64(v);
		if (streq(ev, "prepare"))
			prepare = t;
		else if (streq(ev, "ready")) {
			if (!readies++)
				first_ready = t;
			last_ready = t;
		} else if (streq(ev, "reboot"))
			reboot = t;
		else if (streq(ev, "luod_up"))
			up = t;
	}
	if (!check(prepare && reboot && up,
		   "the last update's timeline has prepare, %u ready, reboot and luod_up",
		   readies))
		return 1;
	o = record("timeline", readies);
	add_int(o, "prepare_t_us", prepare);
	add_int(o, "reboot_t_us", reboot);
	add_int(o, "luod_up_t_us", up);
	add_num(o, "barrier_us",
		(double)((readies ? last_ready : prepare) - prepare));
	add_num(o, "first_ready_us",
		(double)((readies ? first_ready : prepare) - prepare));
	add_num(o, "ready_to_reboot_us",
		(double)(reboot - (readies ? last_ready : prepare)));
	add_num(o, "prepare_to_reboot_us", (double)(reboot - prepare));
	add_num(o, "blackout_us", (double)(up - reboot));
	emit(o);
	json_object_put(st);
	return 0;
}

static int do_proc(pid_t pid, const char *label)
{
	struct json_object *o = record("proc", 0);

	json_object_object_add(o, "label", json_object_new_string(label));
	add_proc(o, "", pid);
	if (!check(json_object_object_length(o) > 3,
		   "measured pid %d's memory and fds (%s)", (int)pid, label)) {
		json_object_put(o);
		return 1;
	}
	emit(o);
	return 0;
}

/*
 * On the host: the TSC's rate, for the guest's tsc_early_khz=. The guest
 * kernel cannot calibrate its TSC (no HPET, no PM timer) and falls back to
 * jiffies, 4 ms steps; under TCG its TSC is the host's.
 */
static int tsc_khz(void)
{
	uint64_t t0 = mono_ns(), c0 = __builtin_ia32_rdtsc(), t1, c1;
	const struct timespec nap = { 0, 300 * 1000 * 1000 };

	nanosleep(&nap, NULL);
	t1 = mono_ns();
	c1 = __builtin_ia32_rdtsc();
	printf("%.0f\n", (double)(c1 - c0) * 1e6 / (double)(t1 - t0));
	return 0;
}

static unsigned arg_uint(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s ? s : "", &end, 10);
	if (!s || errno || *end || v > 1000000) {
		fprintf(stderr, "luod-bench: '%s' is not a count\n",
			s ? s : "");
		exit(2);
	}
	return (unsigned)v;
}

static pid_t luod_pid_arg(int argc, char **argv)
{
	for (int i = 0; i + 1 < argc; i++)
		if (streq(argv[i], "--luod-pid"))
			return (pid_t)arg_uint(argv[i + 1]);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	signal(SIGPIPE, SIG_IGN);
	if (streq(cmd, "raw-preserve") && argc == 3)
		return raw_preserve(arg_uint(argv[2]));
	if (streq(cmd, "raw-restore") && argc == 3)
		return raw_restore(arg_uint(argv[2]));
	if (streq(cmd, "big-preserve") && argc == 3)
		return big_preserve(arg_uint(argv[2]));
	if (streq(cmd, "big-restore") && argc == 2)
		return big_restore();
	if (streq(cmd, "clients-preserve") && argc >= 3)
		return clients_preserve(arg_uint(argv[2]),
					luod_pid_arg(argc, argv));
	if (streq(cmd, "clients-restore") && argc >= 3)
		return clients_restore(arg_uint(argv[2]),
				       luod_pid_arg(argc, argv));
	if (streq(cmd, "warm-preserve") && argc == 2)
		return warm_preserve();
	if (streq(cmd, "warm-restore") && argc == 2)
		return warm_restore();
	if (streq(cmd, "pingpong") && argc == 3)
		return pingpong(arg_uint(argv[2]));
	if (streq(cmd, "tsc-khz") && argc == 2)
		return tsc_khz();
	if (streq(cmd, "start-luod") && argc >= 5 && streq(argv[3], "--"))
		return start_luod(argv[2], argv + 4);
	if (streq(cmd, "kexec") && argc == 3)
		return do_kexec(arg_uint(argv[2]));
	if (streq(cmd, "timeline") && argc == 2)
		return do_timeline();
	if (streq(cmd, "proc") && argc == 4)
		return do_proc((pid_t)arg_uint(argv[2]), argv[3]);
	fprintf(stderr,
		"Usage: luod-bench raw-preserve N | raw-restore N | big-preserve MIB | big-restore\n"
		"       | clients-preserve N [--luod-pid PID] | clients-restore N [--luod-pid PID]\n"
		"       | warm-preserve | warm-restore | pingpong ROUNDS | tsc-khz\n"
		"       | start-luod LOG -- LUOD [ARGS]... | kexec TIMEOUT | timeline | proc PID LABEL\n");
	return 2;
}
