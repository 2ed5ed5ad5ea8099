// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fdstore-holder: a service of the Debian guest that keeps its memory in
 * systemd's fd store, with no luod involved: systemd's own way of carrying
 * a memfd across `systemctl kexec` (FileDescriptorStorePreserve=yes).
 *
 *   fdstore-holder [--size BYTES] [--state FILE]
 *
 * Started with no fd named "data" in LISTEN_FDS, it creates a memfd of
 * BYTES (default 64 MiB), writes every page with a seeded pattern, pushes
 * it to the fd store as FDNAME=data, waits for systemd to have it (notify
 * barrier), and writes "stored SIZE SHA256" to FILE (default
 * /run/fdstore-holder.state). Started with it, it checks the fd is a memfd
 * of the same size holding the same pattern, and writes "restored SIZE
 * SHA256 PATH" (PATH: what /proc/self/fd says of it) or "bad REASON". Either way it then reports READY=1 and waits.
 */
#include <getopt.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <systemd/sd-daemon.h>

#include "util.h"

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static const char *state_path = "/run/fdstore-holder.state";

static _printf_(1, 2) void report(const char *fmt, ...)
{
	_cleanup_fclose_ FILE *f = fopen(state_path, "we");
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}

/*
 * Fills (or, with check, compares) the pattern; 0, or the first bad offset
 * + 1. Word 0 is a random seed the rest derives from, so a memfd made
 * afresh never has the digest of the one stored.
 */
static uint64_t pattern(uint64_t *p, uint64_t words, bool check)
{
	if (!check && getrandom(&p[0], sizeof(p[0]), 0) != sizeof(p[0]))
		p[0] = now_real_us();
	for (uint64_t i = 1; i < words; i++) {
		uint64_t want = mix(p[0] ^ i);

		if (!check)
			p[i] = want;
		else if (p[i] != want)
			return i * 8 + 1;
	}
	return 0;
}

static int sha256_hex(const void *p, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	if (!EVP_Digest(p, len, md, &n, EVP_sha256(), NULL) || n != 32)
		return -EIO;
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	return 0;
}

static int stored_fd(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(true, &names);
	int fd = -1;

	for (int i = 0; i < n; i++) {
		if (fd < 0 && streq(names[i], "data"))
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
	}
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "size", required_argument, NULL, 's' },
					      { "state", required_argument, NULL, 'f' },
					      {} };
	uint64_t size = 64ULL << 20;
	char digest[65], link[64], target[256] = "";
	int c, fd;
	void *p;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			size = strtoull(optarg, NULL, 0);
		else if (c == 'f')
			state_path = optarg;
		else
			return 2;
	}
	if (size == 0 || size % 4096) {
		fprintf(stderr, "fdstore-holder: --size must be a non-zero multiple of 4096\n");
		return 2;
	}

	fd = stored_fd();
	if (fd >= 0) {
		struct stat st;

		struct statfs sfs;

		/* A memfd LUO gave back has lost its name: /proc shows
		 * "/ (deleted)", not "/memfd:NAME". It is still shmem. */
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		if (readlink(link, target, sizeof(target) - 1) < 0)
			strcpy(target, "?");
		if (fstatfs(fd, &sfs) < 0 || sfs.f_type != TMPFS_MAGIC) {
			report("bad the stored fd is not a memfd (%s)", target);
			goto wait;
		}
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
			report("bad the stored memfd has %jd bytes, not %" PRIu64, (intmax_t)st.st_size, size);
			goto wait;
		}
	} else {
		fd = memfd_create("fdstore-holder", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
			report("bad memfd_create: %m");
			return 1;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		report("bad mmap: %m");
		return 1;
	}

	if (target[0]) {
		uint64_t bad = pattern(p, size / 8, true);

		if (bad)
			report("bad the pattern differs at byte %" PRIu64, bad - 1);
		else if (sha256_hex(p, size, digest) < 0)
			report("bad SHA-256 failed");
		else
			report("restored %" PRIu64 " %s %s", size, digest, target);
		goto wait;
	}

	pattern(p, size / 8, false);
	if (sha256_hex(p, size, digest) < 0) {
		report("bad SHA-256 failed");
		return 1;
	}
	c = sd_pid_notify_with_fds(0, false, "FDSTORE=1\nFDNAME=data", &fd, 1);
	if (c <= 0) {
		report("bad FDSTORE=1 was not sent (%s): run me as a service with FileDescriptorStoreMax=",
		       c < 0 ? strerror(-c) : "no $NOTIFY_SOCKET");
		return 1;
	}
	/* Without the barrier systemd may not have taken the fd yet when a
	 * caller looks, or when this process goes away. */
	c = sd_notify_barrier(0, 5 * 1000000ULL);
	if (c < 0) {
		report("bad the notify barrier failed: %s", strerror(-c));
		return 1;
	}
	report("stored %" PRIu64 " %s", size, digest);
wait:
	sd_notify(0, "READY=1");
	for (;;)
		pause();
}
