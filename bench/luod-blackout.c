// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod-blackout: the workload and the prober of bench/blackout, run in the
 * Debian guest as systemd units (bench/README.md, "The blackout").
 *
 *   luod-blackout svc --index I --size BYTES --mode fdstore|luod
 *   luod-blackout probe --count K
 *
 * svc is one workload: a memfd of BYTES, every page written, and a socket
 * /run/luod-bench/svc-I.sock that answers each connection with one word
 * of it. The same program is carried two ways: in systemd's fd store
 * (fdstore: FDSTORE=1, FileDescriptorStorePreserve=yes) or in a luod
 * session (luod: libluod, id bench-I; READY as soon as PREPARE comes).
 * After a kexec it takes the memfd back (LISTEN_FDS, or CLAIM), checks one
 * word of every page, serves, says READY=1 and only then finishes the
 * session. It writes "restored|fresh ok CLAIM_US CONNECT_US" (or
 * "restored bad REASON") to
 * /run/luod-bench/svc-I.state.
 *
 * probe asks every workload over and over (2 ms a round) and notes, on
 * CLOCK_REALTIME, the first answer of each in this boot and the last. The
 * last answers are rewritten in place after every round in
 * /var/lib/luod-bench/last.BOOT, so that the copy on disk is as fresh as
 * the last sync: systemd's shutdown stops the workloads before the probe
 * (they are ordered after it), and luod's direct mode syncs just before
 * its reboot. Once each workload has answered, the first answers go to
 * /run/luod-bench/first.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "luod.h"
#include "util.h"

#define RUN_DIR "/run/luod-bench"
#define LIB_DIR "/var/lib/luod-bench"
#define TOKEN 1
#define MAX_K 256

static _Noreturn _printf_(1, 2) void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("luod-blackout: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t word_of(unsigned index, size_t page)
{
	return ((uint64_t)index << 40) ^ (page * 0x9e3779b97f4a7c15ULL);
}

static void sock_path(char *buf, size_t size, unsigned index)
{
	snprintf(buf, size, RUN_DIR "/svc-%u.sock", index);
}

static void state(unsigned index, const char *fmt, ...)
{
	char path[128], tmp[140];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), RUN_DIR "/svc-%u.state", index);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		die("cannot write %s: %m", tmp);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		die("cannot write %s: %m", path);
}

/* Every page written, as a workload's memory would be. */
static int fill(int fd, unsigned index, size_t size, uint64_t **map)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t *m;

	if (ftruncate(fd, size) < 0)
		return -errno;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	for (size_t p = 0; p < size / page; p++) {
		uint64_t *w = m + p * (page / 8);

		memset(w, (int)(p & 0xff), page);
		*w = word_of(index, p);
	}
	*map = m;
	return 0;
}

/* One word of every page, the first: enough to see a page lost or moved. */
static int check(int fd, unsigned index, size_t size, uint64_t **map)
{
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	uint64_t *m;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size != size)
		return -EMSGSIZE;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	for (size_t p = 0; p < size / page; p++)
		if (m[p * (page / 8)] != word_of(index, p))
			return -EILSEQ;
	*map = m;
	return 0;
}

static int listen_on(unsigned index)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	sock_path(sa.sun_path, sizeof(sa.sun_path), index);
	(void)mkdir(RUN_DIR, 0755);
	(void)unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
		die("cannot listen on %s: %m", sa.sun_path);
	return fd;
}

/* The fd named "data" that systemd handed back, or -1. */
static int fd_from_store(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(true, &names), fd = -1;

	for (int i = 0; i < n; i++) {
		if (fd < 0 && names && streq(names[i], "data"))
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
	}
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	return fd;
}

static int svc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "index", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{},
	};
	struct luod_client *c = NULL;
	struct luod_session *ss = NULL;
	const char *mode = "fdstore";
	unsigned index = 0;
	size_t size = 4096, n = 0;
	uint64_t *map = NULL, claim_us = 0, connect_us = 0;
	int o, r, mfd = -1, sfd = -1, lfd;
	bool restored;
	char id[32];

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'i': index = strtoul(optarg, NULL, 10); break;
		case 's': size = strtoull(optarg, NULL, 10); break;
		case 'm': mode = optarg; break;
		default: return 2;
		}
	}
	if (size < 4096 || size % 4096)
		die("--size %zu: a multiple of 4096 is needed", size);
	snprintf(id, sizeof(id), "bench-%u", index);

	if (streq(mode, "fdstore")) {
		mfd = fd_from_store();
		restored = mfd >= 0;
		if (!restored) {
			mfd = memfd_create("bench", MFD_CLOEXEC);
			if (mfd < 0 || (r = fill(mfd, index, size, &map)) < 0)
				die("cannot make the memfd: %s", strerror(mfd < 0 ? errno : -r));
			r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=data", &mfd, 1);
			if (r <= 0 || sd_notify_barrier(0, 30 * 1000000ULL) < 0)
				die("systemd did not take the memfd into the fd store (%d)", r);
		}
	} else if (streq(mode, "luod")) {
		uint64_t a = now_mono_us(), b;

		/* The connect waits in luod.socket's backlog until luod serves;
		 * the CLAIM alone is luod's work for this client. */
		r = luod_connect(NULL, id, &c);
		if (r < 0)
			die("cannot connect to luod: %s", strerror(-r));
		b = now_mono_us();
		connect_us = b - a;
		r = luod_claim(c, "data", &ss, &n);
		claim_us = now_mono_us() - b;
		restored = r >= 0 && n == 1;
		if (restored) {
			sfd = ss[0].fd;
			ss[0].fd = -1;
			mfd = luod_session_retrieve_fd(sfd, TOKEN);
			if (mfd < 0)
				die("cannot retrieve the memfd: %s", strerror(-mfd));
		} else if (r != -ENOENT) {
			die("CLAIM failed: %s %s", strerror(-r), luod_last_error_message(c));
		} else {
			luod_disconnect(c);
			c = NULL;
			r = luod_connect_subscribed(NULL, id, "data", &sfd, &c);
			if (r < 0)
				die("cannot create a session through luod: %s", strerror(-r));
			mfd = memfd_create("bench", MFD_CLOEXEC);
			if (mfd < 0 || (r = fill(mfd, index, size, &map)) < 0)
				die("cannot make the memfd: %s", strerror(mfd < 0 ? errno : -r));
			r = luod_session_preserve_fd(sfd, mfd, TOKEN);
			if (r < 0)
				die("cannot preserve the memfd: %s", strerror(-r));
		}
	} else {
		die("--mode %s: fdstore or luod", mode);
	}

	if (restored && (r = check(mfd, index, size, &map)) < 0) {
		state(index, "restored bad %s", strerror(-r));
		die("the memfd that came back is wrong: %s", strerror(-r));
	}
	lfd = listen_on(index);
	sd_notify(0, "READY=1");
	state(index, "%s ok %llu %llu", restored ? "restored" : "fresh", (unsigned long long)claim_us,
	      (unsigned long long)connect_us);
	if (c && restored) {
		r = luod_session_finish(sfd);
		if (r >= 0)
			r = luod_finished(c, "data");
		if (r < 0)
			die("cannot finish the session: %s", strerror(-r));
		luod_sessions_free(ss, n);
		safe_close(sfd);
	}

	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = c ? luod_fd(c) : -1, .events = POLLIN } };
		struct luod_event ev;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			die("poll: %m");
		if (p[0].revents & POLLIN) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			char b;

			if (cfd >= 0) {
				if (read(cfd, &b, 1) == 1)
					(void)write_all(cfd, &map[(unsigned char)b * 512 % (size / 8)], 8);
				close(cfd);
			}
		}
		if (c && (p[1].revents & POLLIN)) {
			r = luod_next_event(c, &ev, 0);
			if (r < 0)
				die("luod went away: %s", strerror(-r));
			if (r == 1 && ev.type == LUOD_EVENT_PREPARE) {
				/* Everything is in the session already. */
				safe_close(ev.new_session_fd);
				if (luod_ready(c) < 0)
					die("READY failed: %s", luod_last_error_message(c));
			}
		}
	}
}

static uint64_t last[MAX_K], first[MAX_K];
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static bool ask(unsigned index)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t w;
	char b = 1;

	sock_path(sa.sun_path, sizeof(sa.sun_path), index);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(fd, &b, 1) != 1)
		return false;
	return poll(&p, 1, 200) == 1 && read(fd, &w, sizeof(w)) == sizeof(w);
}

static unsigned boot_index(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cmdline", "re");
	char buf[4096], *p;

	if (!f || !fgets(buf, sizeof(buf), f))
		return 0;
	p = strstr(buf, "luod.boot=");
	return p ? strtoul(p + 10, NULL, 10) : 0;
}

/* Fixed-width lines, so that each rewrite covers the last in place. */
static void put_times(int fd, const uint64_t *t, unsigned k)
{
	char buf[MAX_K * 21 + 1];
	size_t len = 0;

	for (unsigned i = 0; i < k; i++)
		len += snprintf(buf + len, sizeof(buf) - len, "%020llu\n", (unsigned long long)t[i]);
	(void)pwrite(fd, buf, len, 0);
}

static int probe(int argc, char **argv)
{
	unsigned k = argc > 1 ? strtoul(argv[1], NULL, 10) : 0, have = 0;
	struct timespec pause = { .tv_nsec = 2000000 };
	char path[128];
	int fd;

	if (argc > 2 && streq(argv[1], "--count"))
		k = strtoul(argv[2], NULL, 10);
	if (k == 0 || k > MAX_K)
		die("probe: --count K, 1 to %d", MAX_K);
	signal(SIGTERM, on_term);
	(void)mkdir(LIB_DIR, 0755);
	(void)mkdir(RUN_DIR, 0755);
	snprintf(path, sizeof(path), LIB_DIR "/last.%u", boot_index());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot write %s: %m", path);
	while (!stop) {
		bool any = false;

		for (unsigned i = 0; i < k && !stop; i++) {
			if (!ask(i))
				continue;
			last[i] = now_real_us();
			if (!first[i]) {
				first[i] = last[i];
				have++;
			}
			any = true;
		}
		if (any)
			put_times(fd, last, k);
		if (have == k) {
			int ff = open(RUN_DIR "/first.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

			if (ff >= 0) {
				put_times(ff, first, k);
				close(ff);
				rename(RUN_DIR "/first.tmp", RUN_DIR "/first");
			}
			have++;
		}
		nanosleep(&pause, NULL);
	}
	put_times(fd, last, k);
	fsync(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && streq(argv[1], "svc"))
		return svc(argc - 1, argv + 1);
	if (argc > 1 && streq(argv[1], "probe"))
		return probe(argc - 1, argv + 1);
	fprintf(stderr, "usage: luod-blackout svc --index I --size BYTES --mode fdstore|luod\n"
			"       luod-blackout probe --count K\n");
	return 2;
}
