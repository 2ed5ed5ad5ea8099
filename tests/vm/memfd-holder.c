// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * memfd-holder: the program the VM tests run under luod-exec. It does not
 * know luod; it only checks that it got the memory luod-exec promised.
 *
 *   memfd-holder --fd LABEL=N[:SIZE]... [--notify-parent SIG --after FILE]
 *
 * For every --fd: fd N is open, has no FD_CLOEXEC, is a memfd (of SIZE
 * bytes if given). With LUOD_EXEC_STATE=new the memory must be all zero;
 * memfd-holder fills it with a pattern from a random seed and stamps the
 * first word of every page with the start count. Otherwise the memory must
 * hold exactly what the last run left: the same pattern, the same stamps, a
 * matching digest, and the "saved" flag the last run set on SIGUSR1. Each
 * check is a TAP line on stdout; "memfd-holder: ready" follows.
 *
 * SIGUSR1 (luod-exec's PREPARE): mark the memory saved and exit 0.
 * --notify-parent SIG --after FILE: once FILE exists, send SIG to the
 * parent (luod-exec --finish-after SIG).
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "tap.h"
#include "util.h"

#define MAGIC 0x72656c6f682d666dULL /* "mf-holder" */
#define PAGE 4096
#define MAX_FDS 16

/* Page 0 of each memfd; the pattern fills the rest. */
struct header {
	uint64_t magic;
	uint64_t seed;
	uint64_t starts; /* stamped into the first word of every page */
	uint64_t saved; /* 1 after SIGUSR1, 0 while running */
	uint64_t size;
	uint64_t digest; /* of pages 1.. as the last run left them */
	uint64_t saved_us; /* CLOCK_REALTIME of the save */
	char label[64];
};

struct region {
	char label[65];
	int fd;
	uint64_t size;
	struct header *h;
};

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t stamp(uint64_t starts, uint64_t page)
{
	return mix(starts << 40 ^ page ^ 0x5354414d50ULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One pass over pages 1..: check every word against what the last run
 * left (when verify), then stamp the pages with the new start count.
 * Returns the number of wrong words; *digest gets the new digest, *old the
 * digest of what was found.
 */
static uint64_t pass(struct region *r, bool verify, uint64_t prev_starts,
		     uint64_t starts, uint64_t *old, uint64_t *digest)
{
	uint64_t *w = (uint64_t *)r->h, n = r->size / 8, bad = 0;
	uint64_t d_old = 0, d_new = 0, seed = r->h->seed;

	for (uint64_t i = PAGE / 8; i < n; i++) {
		uint64_t want = i % (PAGE / 8) ?
					mix(seed ^ i) :
					stamp(prev_starts, i / (PAGE / 8));

		if (verify) {
			bad += w[i] != want;
			d_old = (d_old ^ w[i]) * 0x100000001b3ULL;
		}
		if (i % (PAGE / 8) == 0)
			w[i] = stamp(starts, i / (PAGE / 8));
		else if (!verify)
			w[i] = want;
		d_new = (d_new ^ w[i]) * 0x100000001b3ULL;
	}
	*old = d_old;
	*digest = d_new;
	return bad;
}

static bool all_zero(const struct region *r)
{
	const uint64_t *w = (const uint64_t *)r->h;

	for (uint64_t i = 0; i < r->size / 8; i++)
		if (w[i])
			return false;
	return true;
}

static int open_region(struct region *r, const char *state)
{
	char path[64], link[256] = "";
	struct stat st;
	int flags;
	ssize_t n;

	flags = fcntl(r->fd, F_GETFD);
	if (!check(flags >= 0, "%s: fd %d is open", r->label, r->fd))
		return -EBADF;
	check(!(flags & FD_CLOEXEC), "%s: fd %d has no FD_CLOEXEC", r->label,
	      r->fd);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n > 0)
		link[n] = '\0';
	/* F_GET_SEALS works on memfds (shmem) only. */
	check(fcntl(r->fd, F_GET_SEALS) >= 0, "%s: fd %d is a memfd (%s)",
	      r->label, r->fd, link);
	/* LUO keeps a memfd's pages, size and seals, but not its name; memory
	 * restarted after an aborted update may have come across an earlier
	 * one. */
	if (streq(state, "new"))
		check(!strncmp(link, "/memfd:luod-exec:", 17),
		      "%s: fd %d is luod-exec's memfd", r->label, r->fd);
	if (fstat(r->fd, &st) < 0 || st.st_size < 2 * PAGE) {
		check(false, "%s: fd %d is at least 8 KiB", r->label, r->fd);
		return -EINVAL;
	}
	if (r->size &&
	    !check((uint64_t)st.st_size == r->size, "%s: %lld bytes, as asked",
		   r->label, (long long)st.st_size))
		return -EINVAL;
	r->size = (uint64_t)st.st_size & ~(uint64_t)(PAGE - 1);
	r->h = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd,
		    0);
	if (!check(r->h != MAP_FAILED, "%s: mapped (%s)", r->label,
		   r->h == MAP_FAILED ? strerror(errno) : "ok"))
		return -errno;
	return 0;
}

static void start_region(struct region *r, const char *state)
{
	struct header *h = r->h;
	uint64_t bad, old, digest;
	double t = now_s();

	if (streq(state, "new")) {
		check(all_zero(r), "%s: new memory is all zero", r->label);
		*h = (struct header){ .magic = MAGIC,
				      .seed = mix((uint64_t)time(NULL) ^
						  (uint64_t)getpid() << 32 ^
						  (uintptr_t)r),
				      .starts = 1,
				      .size = r->size };
		snprintf(h->label, sizeof(h->label), "%.63s", r->label);
		pass(r, false, 0, 1, &old, &digest);
		h->digest = digest;
		check(true,
		      "%s: filled %" PRIu64
		      " bytes in %.2f s, digest %016" PRIx64,
		      r->label, r->size, now_s() - t, digest);
		return;
	}
	if (!check(h->magic == MAGIC && h->size == r->size &&
			   streq(h->label, r->label),
		   "%s: %s memory carries our header (label %.64s, %" PRIu64
		   " bytes)",
		   r->label, state, h->magic == MAGIC ? h->label : "none",
		   h->size))
		return;
	check(h->saved == 1,
	      "%s: the last run saved on SIGUSR1 before it ended", r->label);
	bad = pass(r, true, h->starts, h->starts + 1, &old, &digest);
	check(bad == 0 && old == h->digest,
	      "%s: every byte as the last run left it: %" PRIu64
	      " wrong words, digest %016" PRIx64 " (saved %016" PRIx64
	      "), %.2f s",
	      r->label, bad, old, h->digest, now_s() - t);
	h->starts++;
	h->digest = digest;
	h->saved = 0;
	printf("# memfd-holder: %s: start %" PRIu64 " of this memory\n",
	       r->label, h->starts);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ "notify-parent", required_argument, NULL, 'n' },
		{ "after", required_argument, NULL, 'a' },
		{}
	};
	struct region regions[MAX_FDS];
	const char *state = getenv("LUOD_EXEC_STATE"), *after = NULL;
	int notify = 0, o, sig;
	size_t n = 0;
	sigset_t mask;

	tap_prefix = "memfd-holder";
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *eq, *colon;

		switch (o) {
		case 'f':
			if (n == MAX_FDS)
				return 2;
			eq = strchr(optarg, '=');
			if (!eq || eq - optarg > 64)
				return 2;
			regions[n] = (struct region){ 0 };
			memcpy(regions[n].label, optarg, (size_t)(eq - optarg));
			regions[n].fd = atoi(eq + 1);
			colon = strchr(eq, ':');
			if (colon)
				regions[n].size = strtoull(colon + 1, NULL, 0);
			n++;
			break;
		case 'n':
			notify = atoi(optarg);
			if (streq(optarg, "USR2") || streq(optarg, "SIGUSR2"))
				notify = SIGUSR2;
			break;
		case 'a':
			after = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!n || !state) {
		fprintf(stderr,
			"usage: memfd-holder --fd LABEL=N[:SIZE]... (run by luod-exec, which sets LUOD_EXEC_STATE)\n");
		return 2;
	}

	/* Blocked before the checks, so an early PREPARE waits for them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	printf("# memfd-holder: pid %d, state %s, LUOD_EXEC_FDS=%s\n",
	       (int)getpid(), state, getenv("LUOD_EXEC_FDS") ?: "");
	for (size_t i = 0; i < n; i++)
		if (open_region(&regions[i], state) == 0)
			start_region(&regions[i], state);
	printf("memfd-holder: ready\n");
	fflush(stdout);

	if (notify && after) {
		struct stat st;

		while (stat(after, &st) < 0)
			usleep(50 * 1000);
		kill(getppid(), notify);
		printf("# memfd-holder: %s exists; sent signal %d to luod-exec\n",
		       after, notify);
		fflush(stdout);
	}

	if (sigwait(&mask, &sig) != 0)
		return 1;
	if (sig == SIGUSR1) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < n; i++) {
			if (regions[i].h == MAP_FAILED || !regions[i].h)
				continue;
			regions[i].h->saved_us = (uint64_t)ts.tv_sec * 1000000 +
						 (uint64_t)ts.tv_nsec / 1000;
			regions[i].h->saved = 1;
		}
		printf("# memfd-holder: SIGUSR1: saved, exiting\n");
	} else {
		printf("# memfd-holder: signal %d: exiting without saving\n",
		       sig);
	}
	fflush(stdout);
	return tap_failed ? 1 : 0;
}
