// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * legacy-client: a client written to luo-agent's documented flow only, with
 * no HELLO and no luod extension, to prove such clients work unchanged.
 *
 *   legacy-client preserve ID   SUBSCRIBE, wait for START_PRESERVATION and
 *                               its session fd, preserve a memfd, READY
 *   legacy-client restore ID    CLAIM, receive the fd, retrieve, verify, FINISH
 *
 * It reads lines until the one it waits for, as such a client would.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "luo.h"
#include "proto.h"
#include "util.h"

#define SIZE (4u << 20)

static const char *id;

static void check(bool ok, const char *what)
{
	printf("%sok - legacy %s: %s\n", ok ? "" : "not ", id, what);
	fflush(stdout);
	if (!ok)
		exit(1);
}

static int connect_luod(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("LUOD_SOCKET") ? getenv("LUOD_SOCKET") :
						   "/run/luod/liveupdate.sock";
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

static void send_line(int fd, const char *line)
{
	struct json_object *o = json_tokener_parse(line);

	check(o && proto_send(fd, o, NULL, 0) == 0, line);
	json_object_put(o);
}

/* Skip lines until one has key == value; the caller owns its fds. */
static void wait_for(int fd, struct proto_reader *r, const char *key,
		     const char *value, struct proto_msg *m)
{
	for (;;) {
		int q = proto_recv(fd, r, m);

		check(q == 0, "read a line from luod");
		if (streq(proto_get_string(m->obj, key), value))
			return;
		proto_msg_clear(m);
	}
}

static uint32_t checksum(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

int main(int argc, char **argv)
{
	struct proto_reader r = { 0 };
	struct proto_msg m;
	unsigned char *p;
	uint32_t sum;
	int sock;

	if (argc != 3)
		return 2;
	id = argv[2];
	sock = connect_luod();
	check(sock >= 0, "connected");

	if (streq(argv[1], "preserve")) {
		char line[256];
		int mfd = memfd_create("legacy", MFD_CLOEXEC),
		    sumfd = memfd_create("legacy-sum", MFD_CLOEXEC);

		check(mfd >= 0 && ftruncate(mfd, SIZE) == 0, "memfd");
		p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd,
			 0);
		for (size_t i = 0; i < SIZE; i++)
			p[i] = (unsigned char)(i * 7 + i / 4096);
		sum = checksum(p, SIZE);
		check(write_all(sumfd, &sum, sizeof(sum)) == 0,
		      "checksum memfd");

		snprintf(line, sizeof(line),
			 "{\"cmd\":\"SUBSCRIBE\",\"id\":\"%s\"}", id);
		send_line(sock, line);
		wait_for(sock, &r, "event", "START_PRESERVATION", &m);
		check(m.n_fds == 1, "START_PRESERVATION carried a session fd");
		check(luo_preserve_fd(m.fds[0], mfd, 1) == 0,
		      "preserved the memfd");
		check(luo_preserve_fd(m.fds[0], sumfd, 2) == 0,
		      "preserved the checksum");
		send_line(sock, "{\"cmd\":\"READY\"}");
		return 0;
	}

	if (streq(argv[1], "restore")) {
		char line[256];
		int fd, again, sumfd;
		struct stat a, b;
		uint32_t want = 0;

		snprintf(line, sizeof(line),
			 "{\"cmd\":\"CLAIM\",\"id\":\"%s\"}", id);
		send_line(sock, line);
		wait_for(sock, &r, "reply", "CLAIM", &m);
		check(m.n_fds == 1, "CLAIM returned the session fd");
		fd = luo_retrieve_fd(m.fds[0], 1);
		again = luo_retrieve_fd(m.fds[0], 1);
		sumfd = luo_retrieve_fd(m.fds[0], 2);
		check(fd >= 0 && sumfd >= 0, "retrieved the memfds");
		check(fstat(fd, &a) == 0 && fstat(again, &b) == 0 &&
			      a.st_ino == b.st_ino,
		      "same file twice");
		check(a.st_size == SIZE, "size kept");
		p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
		check(pread(sumfd, &want, sizeof(want), 0) == sizeof(want) &&
			      checksum(p, SIZE) == want,
		      "contents intact");
		check(luo_finish(m.fds[0]) == 0, "SESSION_FINISH");
		return 0;
	}
	return 2;
}
