// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fdstore-holder: a service of the Debian guest that keeps its memory in
 * systemd's fd store, with no luod involved: systemd's own way of carrying
 * a memfd across `systemctl kexec` (FileDescriptorStorePreserve=yes).
 *
 *   fdstore-holder [--size BYTES] [--state FILE]
 *                  [--luo-session NAME | --allocate NAME]
 *
 * Started with no fd named "data" in LISTEN_FDS, it creates a memfd of
 * BYTES (default 64 MiB), writes every page with a seeded pattern, pushes
 * it to the fd store as FDNAME=data, waits for systemd to have it (notify
 * barrier), and writes "stored SIZE SHA256" to FILE (default
 * /run/fdstore-holder.state). Started with it, it checks the fd is a memfd
 * of the same size holding the same pattern, and writes "restored SIZE
 * SHA256 PATH" (PATH: what /proc/self/fd says of it) or "bad REASON".
 * Either way it then reports READY=1 and waits.
 *
 * With --luo-session or --allocate the memfd goes into a LUO session that
 * systemd >= 262 made, as token 1, instead of straight into the store:
 * --luo-session takes the session systemd passed for the unit's
 * LUOSession=NAME, --allocate asks PID 1 for one over Varlink
 * (io.systemd.Manager.AllocateLUOSession) and pushes it to the store as
 * FDNAME=NAME. After the kexec the session comes back through LISTEN_FDS
 * under NAME, and the memfd is retrieved from it and checked. A PID 1
 * without the method makes it report "unsupported REASON".
 */
#include <getopt.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <json-c/json.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "fdmsg.h"
#include "luo.h"
#include "util.h"

#define SESSION_TOKEN 1

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

static int stored_fd(const char *want)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(true, &names);
	int fd = -1;

	for (int i = 0; i < n; i++) {
		if (fd < 0 && streq(names[i], want))
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
	}
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	return fd;
}

/* PID 1's Varlink method: a new LUO session named name, or -1 after
 * report(). */
static int allocate_session(const char *name)
{
	static const char path[] = "/run/systemd/io.systemd.Manager";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct json_object *call, *reply = NULL, *params, *idx;
	_cleanup_close_ int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char buf[4096];
	size_t got = 0;
	const char *text;
	int fd = -1;

	strcpy(sa.sun_path, path);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		report("bad cannot connect to %s: %m", path);
		return -1;
	}
	call = json_object_new_object();
	params = json_object_new_object();
	json_object_object_add(params, "name", json_object_new_string(name));
	json_object_object_add(call, "method",
			       json_object_new_string("io.systemd.Manager.AllocateLUOSession"));
	json_object_object_add(call, "parameters", params);
	text = json_object_to_json_string_ext(call, JSON_C_TO_STRING_PLAIN);
	/* Varlink: one JSON object, ended by a NUL byte. */
	if (write_all(sock, text, strlen(text) + 1) < 0) {
		report("bad cannot send AllocateLUOSession: %m");
		json_object_put(call);
		return -1;
	}
	json_object_put(call);
	while (got < sizeof(buf) - 1 && !memchr(buf, '\0', got)) {
		int one = -1;
		ssize_t n = fdmsg_recv(sock, buf + got, sizeof(buf) - got, &one);

		if (n <= 0) {
			report("bad no reply to AllocateLUOSession (%s)",
			       n < 0 ? strerror((int)-n) : "end of stream");
			safe_close(fd);
			return -1;
		}
		if (one >= 0 && fd < 0)
			fd = one;
		else
			safe_close(one);
		got += (size_t)n;
	}
	buf[got] = '\0';
	reply = json_tokener_parse(buf);
	/* Debian's systemd 262.1 has LUOSession= but not this method. */
	if (reply && json_object_object_get_ex(reply, "error", &idx) &&
	    streq(json_object_get_string(idx), "org.varlink.service.MethodNotFound")) {
		report("unsupported PID 1 has no io.systemd.Manager.AllocateLUOSession");
		json_object_put(reply);
		safe_close(fd);
		return -1;
	}
	if (!reply || json_object_object_get_ex(reply, "error", NULL) ||
	    !json_object_object_get_ex(reply, "parameters", &params) ||
	    !json_object_object_get_ex(params, "sessionFileDescriptor", &idx) ||
	    json_object_get_int(idx) != 0 || fd < 0) {
		report("bad AllocateLUOSession %s replied %s", name, buf);
		json_object_put(reply);
		safe_close(fd);
		return -1;
	}
	json_object_put(reply);
	return fd;
}

/* The session's memfd: retrieved (*restored) or a new one preserved in it. */
static int session_memfd(int sfd, const char *name, uint64_t size,
			 bool *restored)
{
	int fd = luo_retrieve_fd(sfd, SESSION_TOKEN);

	*restored = fd >= 0;
	if (fd >= 0)
		return fd;
	fd = memfd_create("fdstore-holder", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		report("bad memfd_create: %m");
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "size", required_argument, NULL, 's' },
					      { "state", required_argument, NULL, 'f' },
					      { "luo-session", required_argument, NULL, 'l' },
					      { "allocate", required_argument, NULL, 'a' },
					      {} };
	const char *session = NULL;
	bool allocate = false, restored = false;
	int sfd = -1;
	uint64_t size = 64ULL << 20;
	char digest[65], link[64], target[256] = "";
	int c, fd;
	void *p;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			size = strtoull(optarg, NULL, 0);
		else if (c == 'f')
			state_path = optarg;
		else if (c == 'l' || c == 'a') {
			session = optarg;
			allocate = c == 'a';
		} else
			return 2;
	}
	if (size == 0 || size % 4096) {
		fprintf(stderr, "fdstore-holder: --size must be a non-zero multiple of 4096\n");
		return 2;
	}

	if (session) {
		sfd = stored_fd(session);
		if (sfd < 0 && allocate)
			sfd = allocate_session(session);
		else if (sfd < 0)
			report("bad no fd named %s in LISTEN_FDS: is LUOSession=%s set?",
			       session, session);
		if (sfd < 0)
			goto wait;
		fd = session_memfd(sfd, session, size, &restored);
		if (fd < 0)
			goto wait;
	} else {
		fd = stored_fd("data");
		restored = fd >= 0;
	}
	if (restored) {
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
	} else if (!session) {
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
		/* Ownership back: the kernel forgets the session's files. */
		if (sfd >= 0 && luo_finish(sfd) < 0)
			report("bad LIVEUPDATE_SESSION_FINISH on %s: %m", session);
		goto wait;
	}

	pattern(p, size / 8, false);
	if (sha256_hex(p, size, digest) < 0) {
		report("bad SHA-256 failed");
		return 1;
	}
	if (session) {
		char msg[128];

		c = luo_preserve_fd(sfd, fd, SESSION_TOKEN);
		if (c < 0) {
			report("bad LIVEUPDATE_SESSION_PRESERVE_FD into %s: %s", session, strerror(-c));
			goto wait;
		}
		/* A LUOSession= session is in the store already. */
		snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", session);
		c = allocate ? sd_pid_notify_with_fds(0, false, msg, &sfd, 1) : 1;
	} else {
		c = sd_pid_notify_with_fds(0, false, "FDSTORE=1\nFDNAME=data", &fd, 1);
	}
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
