// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * raw-memfd: the test bed's smoke test of LUO itself, no daemon involved.
 *
 * Boot 0 preserves three memfds in two sessions, plus a state memfd that
 * records what each one should look like afterwards, creates and closes a
 * third session, and kexecs through kexec-self. Each later boot retrieves
 * and checks everything, and, until the last boot, preserves the same files
 * again under new session names and kexecs once more.
 *
 * Usage: raw-memfd [--last-boot N] BOOT     (TAP on stdout)
 */
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "luo.h"
#include "util.h"

#define STATE_MAGIC UINT64_C(0x4c554f2d524157ff)
#define STATE_TOKEN UINT64_C(0x5354415445)
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define MiB (UINT64_C(1) << 20)

enum { F_SMALL, F_BIG, F_SEALED, N_FILES };

struct record {
	char what[16];
	uint64_t token;
	uint64_t size;
	int64_t pos;
	uint32_t seals;
	uint32_t in_b; /* session b rather than a */
	uint8_t sha256[32];
};

/* Written by boot N-1, read by boot N; both run this same binary. */
struct state {
	uint64_t magic;
	uint32_t boot;
	uint32_t n_files;
	struct record f[N_FILES];
};

static unsigned n_test, n_failed;

_printf_(2, 3) static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %u - ", ok ? "" : "not ", ++n_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		n_failed++;
	return ok;
}

_printf_(1, 2) static void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *err(int r)
{
	return r < 0 ? strerror(-r) : "ok";
}

static void session_name(char *buf, size_t n, const char *which, unsigned boot)
{
	snprintf(buf, n, "raw-memfd-%s.%u", which, boot);
}

/* Hashes with pread so the file position, which is under test, stays put. */
static int sha256_fd(int fd, uint8_t out[32])
{
	static uint8_t buf[1 << 20];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	off_t off = 0;
	int r = 0;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += n;
	}
	if (!EVP_DigestFinal_ex(ctx, out, NULL))
		r = -EIO;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/*
 * Random contents, so a page lost or moved cannot go unnoticed. A seeded
 * splitmix64 rather than getrandom() for the bulk: under TCG the kernel's
 * generator takes seconds for 64 MiB, and right after boot it may block.
 */
static int fill_random(int fd, uint64_t size)
{
	uint64_t seed, *p;
	size_t words = (size + 7) / 8;
	uint8_t *tail;

	if (getrandom(&seed, sizeof(seed), GRND_INSECURE) != sizeof(seed))
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	p = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	for (size_t i = 0; i < size / 8; i++) {
		uint64_t z = (seed += UINT64_C(0x9e3779b97f4a7c15));

		z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
		z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
		p[i] = z ^ (z >> 31);
	}
	tail = (uint8_t *)p + size / 8 * 8;
	for (size_t i = 0; i < size % 8; i++)
		tail[i] = (uint8_t)(seed >> (8 * i));
	/* F_SEAL_WRITE is refused while a writable shared mapping exists. */
	return munmap(p, words * 8) < 0 ? -errno : 0;
}

static int make_memfd(const char *what, uint64_t size, int64_t pos,
		      uint32_t seals)
{
	_cleanup_close_ int fd =
		memfd_create(what, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r;

	if (fd < 0)
		return -errno;
	r = fill_random(fd, size);
	if (r < 0)
		return r;
	if (lseek(fd, pos, SEEK_SET) < 0)
		return -errno;
	if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)
		return -errno;
	return take_fd(&fd);
}

/* What the next boot must find: taken from the file itself, not from intent. */
static int describe(int fd, struct record *rec)
{
	struct stat st;
	off_t pos;
	int seals;

	if (fstat(fd, &st) < 0)
		return -errno;
	pos = lseek(fd, 0, SEEK_CUR);
	if (pos < 0)
		return -errno;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -errno;
	rec->size = (uint64_t)st.st_size;
	rec->pos = pos;
	rec->seals = (uint32_t)seals;
	return sha256_fd(fd, rec->sha256);
}

static int run_kexec_self(void)
{
	char *argv[] = { "kexec-self", NULL };
	pid_t pid;
	int r, status;

	fflush(NULL);
	/* The session fds are O_CLOEXEC: only this process keeps them open,
	 * which is what keeps the sessions alive across the reboot. */
	r = posix_spawnp(&pid, "kexec-self", NULL, NULL, argv, environ);
	if (r != 0)
		return -r;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	/* kexec-self only comes back when the kexec did not happen. */
	return -ECANCELED;
}

/*
 * Preserve files[] (described by st) in sessions a and b named after boot,
 * create and close a throw-away session, then kexec. Returns only on error.
 */
static int preserve_and_kexec(int dev, unsigned boot, int files[N_FILES],
			      struct state *st)
{
	char name_a[64], name_b[64], name_closed[64];
	_cleanup_close_ int a = -1, b = -1, state_fd = -1;
	uint64_t t0;
	int r;

	session_name(name_a, sizeof(name_a), "a", boot);
	session_name(name_b, sizeof(name_b), "b", boot);
	session_name(name_closed, sizeof(name_closed), "closed", boot);

	a = luo_create_session(dev, name_a);
	if (!check(a >= 0, "create session %s: %s", name_a, err(a)))
		return a;
	b = luo_create_session(dev, name_b);
	if (!check(b >= 0, "create session %s: %s", name_b, err(b)))
		return b;
	r = luo_create_session(dev, name_a);
	check(r == -EEXIST,
	      "a second session named %s is refused with EEXIST (got %s)",
	      name_a, err(r));
	if (r >= 0)
		close(r);

	st->magic = STATE_MAGIC;
	st->boot = boot;
	st->n_files = N_FILES;
	state_fd = memfd_create("raw-memfd-state", MFD_CLOEXEC);
	r = state_fd < 0 ? -errno : write_all(state_fd, st, sizeof(*st));
	if (!check(r == 0, "write the state memfd: %s", err(r)))
		return r;

	t0 = now_mono_us();
	for (int i = 0; i < N_FILES; i++) {
		const struct record *rec = &st->f[i];

		r = luo_preserve_fd(rec->in_b ? b : a, files[i], rec->token);
		if (!check(r == 0,
			   "preserve %s memfd (%" PRIu64
			   " bytes) as token %" PRIu64 " in %s: %s",
			   rec->what, rec->size, rec->token,
			   rec->in_b ? name_b : name_a, err(r)))
			return r;
	}
	r = luo_preserve_fd(b, state_fd, STATE_TOKEN);
	if (!check(r == 0, "preserve the state memfd in %s: %s", name_b,
		   err(r)))
		return r;
	diag("preserving took %.3f s", (double)(now_mono_us() - t0) / 1e6);

	{
		_cleanup_close_ int closed =
			luo_create_session(dev, name_closed);
		_cleanup_close_ int junk =
			memfd_create("raw-memfd-junk", MFD_CLOEXEC);

		if (!check(closed >= 0, "create session %s: %s", name_closed,
			   err(closed)))
			return closed;
		r = junk < 0 ? -errno : luo_preserve_fd(closed, junk, 1);
		if (!check(r == 0,
			   "preserve a memfd in %s, which is then closed: %s",
			   name_closed, err(r)))
			return r;
	}

	diag("kexec with sessions %s and %s open", name_a, name_b);
	r = run_kexec_self();
	check(false, "kexec-self returned instead of rebooting: %s", err(r));
	return r;
}

static int first_boot(int dev)
{
	static const struct {
		const char *what;
		uint64_t size;
		int64_t pos;
		uint32_t seals;
		uint32_t in_b;
	} spec[N_FILES] = {
		[F_SMALL] = { "small", 4096, 100, 0, 0 },
		[F_BIG] = { "big", 64 * MiB, 5 * MiB + 7, 0, 0 },
		/* An odd size shows the size is kept, not rounded to pages. */
		[F_SEALED] = { "sealed", 12345, 4095, SEALS, 1 },
	};
	struct state st = {};
	int files[N_FILES] = { -1, -1, -1 };
	int r = 0;

	for (int i = 0; i < N_FILES; i++) {
		struct record *rec = &st.f[i];

		snprintf(rec->what, sizeof(rec->what), "%s", spec[i].what);
		rec->token = (uint64_t)i + 1;
		rec->in_b = spec[i].in_b;
		files[i] = make_memfd(spec[i].what, spec[i].size, spec[i].pos,
				      spec[i].seals);
		if (!check(files[i] >= 0, "create %s memfd: %s", spec[i].what,
			   err(files[i]))) {
			r = files[i];
			goto out;
		}
		r = describe(files[i], rec);
		if (!check(r == 0 && rec->size == spec[i].size &&
				   rec->pos == spec[i].pos &&
				   rec->seals == spec[i].seals,
			   "%s memfd: size %" PRIu64 ", position %" PRId64
			   ", seals %#x",
			   rec->what, rec->size, rec->pos, rec->seals))
			goto out;
	}
	r = preserve_and_kexec(dev, 0, files, &st);
out:
	for (int i = 0; i < N_FILES; i++)
		safe_close(files[i]);
	return r < 0 ? r : -EIO;
}

static int read_state(int session, unsigned boot, struct state *st)
{
	_cleanup_close_ int fd = luo_retrieve_fd(session, STATE_TOKEN);
	ssize_t n;

	if (!check(fd >= 0, "retrieve the state memfd: %s", err(fd)))
		return fd;
	n = pread(fd, st, sizeof(*st), 0);
	return check(n == (ssize_t)sizeof(*st) && st->magic == STATE_MAGIC &&
			     st->boot == boot - 1 && st->n_files == N_FILES,
		     "the state memfd holds what boot %u wrote", boot - 1) ?
		       0 :
		       -EBADMSG;
}

static void check_file(int fd, int session, const struct record *rec)
{
	_cleanup_close_ int again = -1;
	struct stat s1, s2;
	uint8_t sha[32];
	off_t pos;
	int fl, seals, r;

	if (fstat(fd, &s1) < 0) {
		check(false, "fstat %s: %m", rec->what);
		return;
	}
	check((uint64_t)s1.st_size == rec->size,
	      "%s: size %" PRIu64 " (want %" PRIu64 ")", rec->what,
	      (uint64_t)s1.st_size, rec->size);
	pos = lseek(fd, 0, SEEK_CUR);
	check(pos == rec->pos,
	      "%s: file position %" PRId64 " (want %" PRId64 ")", rec->what,
	      (int64_t)pos, rec->pos);
	seals = fcntl(fd, F_GET_SEALS);
	check(seals >= 0 && (uint32_t)seals == rec->seals,
	      "%s: seals %#x (want %#x)", rec->what, seals, rec->seals);
	fl = fcntl(fd, F_GETFL);
	check(fl >= 0 && (fl & O_ACCMODE) == O_RDWR, "%s: opened read-write",
	      rec->what);
	r = sha256_fd(fd, sha);
	check(r == 0 && memcmp(sha, rec->sha256, sizeof(sha)) == 0,
	      "%s: SHA-256 of the contents matches", rec->what);

	again = luo_retrieve_fd(session, rec->token);
	check(again >= 0 && fstat(again, &s2) == 0 && s1.st_dev == s2.st_dev &&
		      s1.st_ino == s2.st_ino,
	      "%s: retrieving token %" PRIu64 " again gives the same file (%s)",
	      rec->what, rec->token, err(again));

	if (rec->seals & F_SEAL_WRITE) {
		errno = 0;
		check(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM,
		      "%s: writing is still refused (EPERM)", rec->what);
	}
}

static int later_boot(int dev, unsigned boot, unsigned last)
{
	char name_a[64], name_b[64], name_closed[64];
	_cleanup_close_ int a = -1, b = -1;
	int files[N_FILES] = { -1, -1, -1 };
	struct state st = {};
	uint64_t t0;
	int r;

	session_name(name_a, sizeof(name_a), "a", boot - 1);
	session_name(name_b, sizeof(name_b), "b", boot - 1);
	session_name(name_closed, sizeof(name_closed), "closed", boot - 1);

	a = luo_retrieve_session(dev, name_a);
	if (!check(a >= 0, "retrieve session %s: %s", name_a, err(a)))
		return a;
	b = luo_retrieve_session(dev, name_b);
	if (!check(b >= 0, "retrieve session %s: %s", name_b, err(b)))
		return b;
	r = read_state(b, boot, &st);
	if (r < 0)
		return r;

	t0 = now_mono_us();
	for (int i = 0; i < N_FILES; i++) {
		const struct record *rec = &st.f[i];

		files[i] = luo_retrieve_fd(rec->in_b ? b : a, rec->token);
		check(files[i] >= 0,
		      "retrieve %s memfd (token %" PRIu64 "): %s", rec->what,
		      rec->token, err(files[i]));
	}
	diag("retrieving took %.3f s", (double)(now_mono_us() - t0) / 1e6);
	for (int i = 0; i < N_FILES; i++)
		if (files[i] >= 0)
			check_file(files[i], st.f[i].in_b ? b : a, &st.f[i]);

	r = luo_retrieve_session(dev, name_closed);
	check(r == -ENOENT,
	      "session %s, closed before the kexec, is gone (ENOENT; got %s)",
	      name_closed, err(r));
	if (r >= 0)
		close(r);
	r = luo_retrieve_session(dev, name_a);
	check(r == -EINVAL,
	      "retrieving session %s a second time fails with EINVAL (got %s)",
	      name_a, err(r));
	if (r >= 0)
		close(r);

	r = luo_finish(a);
	check(r == 0, "FINISH session %s: %s", name_a, err(r));
	r = luo_finish(b);
	check(r == 0, "FINISH session %s: %s", name_b, err(r));
	if (files[F_SMALL] >= 0) {
		uint8_t sha[32];

		r = sha256_fd(files[F_SMALL], sha);
		check(r == 0 && memcmp(sha, st.f[F_SMALL].sha256,
				       sizeof(sha)) == 0,
		      "small memfd is intact after FINISH");
	}

	if (boot < last && n_failed == 0) {
		/* Files that crossed one kexec must be able to cross another. */
		safe_close(a);
		safe_close(b);
		a = b = -1;
		r = preserve_and_kexec(dev, boot, files, &st);
	} else {
		r = 0;
	}
	for (int i = 0; i < N_FILES; i++)
		safe_close(files[i]);
	return r;
}

static int parse_uint(const char *s, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > 1000)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "last-boot", required_argument, NULL, 'l' },
		{},
	};
	_cleanup_close_ int dev = -1;
	unsigned boot, last = 1;
	int c, r;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		if (c != 'l' || parse_uint(optarg, &last) < 0 || last < 1) {
			fprintf(stderr,
				"usage: raw-memfd [--last-boot N>=1] BOOT\n");
			return 2;
		}
	}
	if (optind + 1 != argc || parse_uint(argv[optind], &boot) < 0) {
		fprintf(stderr, "usage: raw-memfd [--last-boot N>=1] BOOT\n");
		return 2;
	}
	if (boot > last) {
		printf("Bail out! boot %u is past the last boot %u\n", boot,
		       last);
		return 1;
	}

	dev = luo_open_device(NULL);
	if (!check(dev >= 0, "open %s: %s", LUO_DEVICE, err(dev))) {
		if (dev == -ENOENT)
			diag("the kernel needs CONFIG_LIVEUPDATE and liveupdate=on kho=on on its command line");
		return 1;
	}

	r = boot == 0 ? first_boot(dev) : later_boot(dev, boot, last);
	if (r < 0 || n_failed > 0)
		return 1;
	printf("# scenario complete\n");
	return 0;
}
