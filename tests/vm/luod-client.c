// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod-client: a live-update client for the VM tests, built on libluod.
 *
 *   luod-client preserve --id ID --sessions N --size BYTES [--at-prepare K]
 *               [--on-prepare ready|not-ready|ignore] [--stay]
 *   luod-client restore  --id ID [--sessions N] [--then-preserve]
 *
 * preserve: creates N sessions (the last K of them only when PREPARE comes,
 * the first of those being the fresh session PREPARE carries), puts one
 * memfd of random bytes in each (session i gets BYTES >> i, at least 4 KiB)
 * plus a small memfd with the data's SHA-256, subscribes, waits for PREPARE,
 * says READY and exits: luod holds the sessions across the kexec.
 * --on-prepare not-ready answers NOT_READY, ignore does not answer; both
 * then wait for ABORTED and exit. --stay keeps answering READY to every
 * PREPARE and reports every ABORTED until the machine reboots; when luod
 * goes away it reconnects and re-attaches its sessions (luod_reconnect).
 * restore --crash-after-claim kills itself with SIGKILL between CLAIM and
 * FINISHED; --hold waits, after CLAIM, until luod restarts, re-attaches
 * its sessions to the new luod, and only then checks and finishes them.
 * restore: claims every session, checks each memfd against its SHA-256, that
 * a second retrieve of the same token gives the same file, and finishes.
 * Output is TAP; the exit status is non-zero when any check failed.
 */
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "luod.h"
#include "tap.h"
#include "util.h"

#define TOKEN_DATA 1
#define TOKEN_HASH 2

static const char *id;
static const char *on_prepare = "ready";
static bool stay, crash_after_claim, hold;

static int sha256_fd(int fd, unsigned char out[32])
{
	struct stat st;
	void *p;
	unsigned int len = 32;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	r = EVP_Digest(p, (size_t)st.st_size, out, &len, EVP_sha256(), NULL) ?
		    0 :
		    -EIO;
	munmap(p, (size_t)st.st_size);
	return r;
}

/* Fast bytes that differ per client and session; strength is not needed. */
static int fill_memfd(size_t size, uint64_t seed)
{
	int fd = memfd_create("luod-client-data", MFD_CLOEXEC);
	uint64_t *p, x = seed * 0x9e3779b97f4a7c15ULL + 1;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -errno;
	p = mmap(NULL, size, PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	for (size_t i = 0; i < size / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
	munmap(p, size);
	return fd;
}

static int fill_session(int sfd, size_t size, uint64_t seed)
{
	_cleanup_close_ int data = fill_memfd(size, seed), hash = -1;
	unsigned char sum[32];
	int r;

	if (data < 0)
		return data;
	r = sha256_fd(data, sum);
	if (r < 0)
		return r;
	hash = memfd_create("luod-client-hash", MFD_CLOEXEC);
	if (hash < 0 || write_all(hash, sum, sizeof(sum)) < 0)
		return -errno;
	r = luod_session_preserve_fd(sfd, data, TOKEN_DATA);
	if (r == 0)
		r = luod_session_preserve_fd(sfd, hash, TOKEN_HASH);
	return r;
}

static size_t session_size(size_t size, unsigned i)
{
	size_t s = size >> i;

	return s < 4096 ? 4096 : s & ~(size_t)4095;
}

/* A long-running client (--stay) keeps its sessions open, as a VMM does:
 * that is what lets it hand them back to a restarted luod. */
static void keep_fd(int fd)
{
	static int kept[64];
	static size_t n;

	if (n < ARRAY_SIZE(kept))
		kept[n++] = fd;
}

/* Next event; with --stay, a luod that goes away is reconnected to and
 * the sessions re-attached, as a long-running client would. */
static int wait_event(struct luod_client *c, struct luod_event *ev,
		      int timeout_ms)
{
	for (;;) {
		int r = luod_next_event(c, ev, timeout_ms);

		if (!stay || (r != -ECONNRESET && r != -EPIPE))
			return r;
		r = luod_reconnect(c, 60000);
		check(r == 0,
		      "luod went away; reconnected and re-attached (%s)",
		      r == -EPROTO ? luod_last_error_message(c) : strerror(-r));
		if (r < 0)
			return r;
	}
}

static int do_preserve(struct luod_client *c, unsigned n, size_t size,
		       unsigned at_prepare)
{
	struct luod_event ev;
	char name[32];
	int r;

	for (unsigned i = 0; i < n - at_prepare; i++) {
		_cleanup_close_ int sfd = -1;

		snprintf(name, sizeof(name), "s%u", i);
		r = luod_create_session(c, name, &sfd);
		if (!check(r == 0, "CREATE_SESSION %s at start (%s)", name,
			   r ? luod_last_error_message(c) : "ok"))
			return 1;
		r = fill_session(sfd, session_size(size, i), i + 1);
		if (stay)
			keep_fd(take_fd(&sfd));
		if (!check(r == 0, "preserved %zu bytes into %s (%s)",
			   session_size(size, i), name, strerror(-r)))
			return 1;
	}
	r = luod_subscribe(c);
	if (!check(r == 0, "SUBSCRIBE"))
		return 1;
	/* The scenario waits for this line before it starts the update. */
	printf("# %s: subscribed\n", id);
	fflush(stdout);

	r = wait_event(c, &ev, 120000);
	if (!check(r == 1 && ev.type == LUOD_EVENT_PREPARE,
		   "got PREPARE (r=%d type=%d)", r, r == 1 ? ev.type : 0))
		return 1;
	for (unsigned i = n - at_prepare; i < n; i++) {
		_cleanup_close_ int sfd = -1;

		snprintf(name, sizeof(name), "s%u", i);
		if (i == n - at_prepare && ev.new_session_fd >= 0) {
			/* luod made a session because this client had none. */
			sfd = ev.new_session_fd;
			ev.new_session_fd = -1;
			check(streq(ev.new_session, "default"),
			      "PREPARE carried a fresh session '%s'",
			      ev.new_session);
		} else {
			r = luod_create_session(c, name, &sfd);
			if (!check(r == 0, "CREATE_SESSION %s at PREPARE (%s)",
				   name, r ? luod_last_error_message(c) : "ok"))
				return 1;
		}
		r = fill_session(sfd, session_size(size, i), i + 1);
		if (stay)
			keep_fd(take_fd(&sfd));
		if (!check(r == 0, "preserved %zu bytes at PREPARE (%s)",
			   session_size(size, i), strerror(-r)))
			return 1;
	}
	safe_close(ev.new_session_fd);
	if (streq(on_prepare, "unload")) {
		/* Make the kernel refuse the coming reboot(KEXEC): no image. */
		check(syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 1UL) == 0,
		      "unloaded the kexec kernel at PREPARE");
		on_prepare = "ready";
		stay = true;
	}
	if (!streq(on_prepare, "ready")) {
		if (streq(on_prepare, "not-ready"))
			check(luod_not_ready(c, "the test told me to refuse") ==
				      0,
			      "NOT_READY");
		r = luod_next_event(c, &ev, 120000);
		check(r == 1 && ev.type == LUOD_EVENT_ABORTED,
		      "got ABORTED after %s: %s", on_prepare,
		      r == 1 ? ev.reason : "nothing");
		return tap_failed ? 1 : 0;
	}
	r = luod_ready(c);
	if (stay && r == -EPROTO && streq(luod_last_error(c), "WRONG_STATE")) {
		/* Another client aborted the update before this READY. */
		printf("# %s: READY came after the abort: %s\n", id,
		       luod_last_error_message(c));
		r = 0;
	} else {
		check(r == 0, "READY");
	}
	while (stay && r == 0) {
		r = wait_event(c, &ev, -1);
		if (r < 0) {
			check(false, "waiting for the next event: %s",
			      strerror(-r));
			break;
		}
		r = 0;
		if (ev.type == LUOD_EVENT_ABORTED) {
			printf("# %s: got ABORTED: %s\n", id, ev.reason);
		} else if (ev.type == LUOD_EVENT_PREPARE) {
			safe_close(ev.new_session_fd);
			r = luod_ready(c);
			if (r == -EPROTO &&
			    streq(luod_last_error(c), "WRONG_STATE"))
				r = 0;
			else
				check(r == 0, "READY again");
		}
		fflush(stdout);
	}
	return tap_failed ? 1 : 0;
}

static int do_restore(struct luod_client *c, unsigned expect)
{
	struct luod_session *s = NULL;
	size_t n = 0;
	int r = luod_claim(c, NULL, &s, &n);

	if (!check(r == 0, "CLAIM (%s)", r ? luod_last_error_message(c) : "ok"))
		return 1;
	if (expect)
		check(n == expect, "claimed %zu sessions, expected %u", n,
		      expect);
	if (hold) {
		struct luod_event ev;

		printf("# %s: claimed, holding the sessions until luod restarts\n",
		       id);
		fflush(stdout);
		r = luod_next_event(c, &ev, 120000);
		check(r == -ECONNRESET || r == -EPIPE, "luod went away (%s)",
		      strerror(-r));
		r = luod_reconnect(c, 60000);
		check(r == 0,
		      "reconnected to the new luod and re-attached (%s)",
		      r == -EPROTO ? luod_last_error_message(c) : strerror(-r));
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int data = -1, again = -1, hash = -1;
		unsigned char want[32] = { 0 }, got[32];
		struct stat a, b;

		check(s[i].claimed,
		      "session %s came through the update (generation %" PRIu64
		      ")",
		      s[i].name, s[i].generation);
		data = luod_session_retrieve_fd(s[i].fd, TOKEN_DATA);
		hash = luod_session_retrieve_fd(s[i].fd, TOKEN_HASH);
		if (!check(data >= 0 && hash >= 0, "retrieved the memfds of %s",
			   s[i].name))
			continue;
		if (crash_after_claim) {
			printf("# %s: crashing between CLAIM and FINISHED\n",
			       id);
			fflush(stdout);
			kill(getpid(), SIGKILL);
		}
		if (pread(hash, want, sizeof(want), 0) != sizeof(want))
			check(false, "read the stored SHA-256 of %s",
			      s[i].name);
		r = sha256_fd(data, got);
		fstat(data, &a);
		check(r == 0 && memcmp(want, got, 32) == 0,
		      "%s: %lld bytes, SHA-256 matches", s[i].name,
		      (long long)a.st_size);
		again = luod_session_retrieve_fd(s[i].fd, TOKEN_DATA);
		check(again >= 0 && fstat(again, &b) == 0 &&
			      a.st_ino == b.st_ino && a.st_dev == b.st_dev,
		      "%s: a second retrieve gives the same file", s[i].name);
		r = luod_session_finish(s[i].fd);
		check(r == 0, "%s: SESSION_FINISH (%s)", s[i].name,
		      strerror(-r));
		r = luod_finished(c, s[i].name);
		check(r == 0, "%s: FINISHED (%s)", s[i].name,
		      r ? luod_last_error_message(c) : "ok");
	}
	luod_sessions_free(s, n);
	return tap_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "sessions", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "at-prepare", required_argument, NULL, 'p' },
		{ "then-preserve", no_argument, NULL, 't' },
		{ "on-prepare", required_argument, NULL, 'o' },
		{ "stay", no_argument, NULL, 'S' },
		{ "crash-after-claim", no_argument, NULL, 'K' },
		{ "hold", no_argument, NULL, 'H' },
		{}
	};
	unsigned n = 0, at_prepare = 0;
	size_t size = 1 << 20;
	bool then_preserve = false;
	struct luod_client *c = NULL;
	const char *mode = argc > 1 ? argv[1] : "";
	int o, r;

	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'i':
			id = tap_prefix = optarg;
			break;
		case 'n':
			n = (unsigned)atoi(optarg);
			break;
		case 's':
			size = strtoull(optarg, NULL, 0);
			break;
		case 'p':
			at_prepare = (unsigned)atoi(optarg);
			break;
		case 't':
			then_preserve = true;
			break;
		case 'o':
			on_prepare = optarg;
			break;
		case 'S':
			stay = true;
			break;
		case 'K':
			crash_after_claim = true;
			break;
		case 'H':
			hold = true;
			break;
		default:
			return 2;
		}
	}
	if (!id || (!streq(mode, "preserve") && !streq(mode, "restore")) ||
	    (streq(mode, "preserve") && !n) || at_prepare > n) {
		fprintf(stderr,
			"usage: luod-client preserve|restore --id ID --sessions N [--size B] [--at-prepare K]\n");
		return 2;
	}
	r = luod_connect(NULL, id, &c);
	if (!check(r == 0, "connected to luod (%s)", strerror(-r)))
		return 1;
	if (streq(mode, "restore")) {
		r = do_restore(c, n);
		if (r == 0 && then_preserve) {
			/* Reconnect: this connection's claims are done. */
			luod_disconnect(c);
			r = luod_connect(NULL, id, &c);
			if (check(r == 0, "reconnected for the next update"))
				r = do_preserve(c, n, size, at_prepare);
		}
	} else {
		r = do_preserve(c, n, size, at_prepare);
	}
	luod_disconnect(c);
	return r;
}
