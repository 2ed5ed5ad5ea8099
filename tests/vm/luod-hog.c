// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod-hog: one user trying to take luod's socket for itself, for the
 * luod-fair scenario. Prints one JSON object of what happened on stdout.
 *
 *   luod-hog hold N SECONDS [--reconnect]
 *       opens N connections at once and sends nothing on them for SECONDS.
 *       A connection luod closes within 1.5 s of its connect counts as
 *       refused, a later close as dropped (its time from connect is kept).
 *       --reconnect opens a closed connection again a second later, as an
 *       attacker would. {"opened":N,"served":S,"refused":R,"dropped":D,
 *       "drop_ms_min":..,"drop_ms_max":..,"refused_msg":"..","drop_msg":".."}
 *       "served" is the most held at once, each for 1.5 s or more (under
 *       TCG, just after a kexec, luod may take over 300 ms to refuse).
 *
 *   luod-hog flood SECONDS
 *       one connection asking STATUS as fast as luod takes it, 64 requests
 *       in flight. {"replies":N,"per_s":N,"errors":N}
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "proto.h"
#include "util.h"

#define REFUSED_WITHIN_US 1500000ULL

static const char *sock_path;

static int connect_luod(bool nonblock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(
		AF_UNIX,
		SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (fd < 0)
		return -1;
	/* EAGAIN: luod's backlog is full and this socket is not connected. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The "message" of the first JSON line in buf, if any. */
static void take_message(const char *buf, char *out, size_t len)
{
	struct json_object *o;
	const char *nl = strchr(buf, '\n');
	_cleanup_free_ char *line =
		strndup(buf, nl ? (size_t)(nl - buf) : strlen(buf));

	if (!line || *out)
		return;
	o = json_tokener_parse(line);
	if (o && proto_get_string(o, "message"))
		snprintf(out, len, "%s", proto_get_string(o, "message"));
	if (o)
		json_object_put(o);
}

struct conn {
	int fd;
	uint64_t t_us; /* connected, or when to reconnect */
	bool held; /* connected and not refused yet */
};

static int hold(int n, unsigned seconds, bool reconnect)
{
	struct conn *c = calloc((size_t)n, sizeof(*c));
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	uint64_t end = now_mono_us() + seconds * 1000000ULL;
	uint64_t drop_min = UINT64_MAX, drop_max = 0;
	unsigned opened = 0, refused = 0, dropped = 0, held = 0, peak = 0;
	char refused_msg[512] = "", drop_msg[512] = "";
	struct json_object *o;

	if (!c || !p) {
		fprintf(stderr, "luod-hog: out of memory\n");
		free(c);
		free(p);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		c[i].fd = connect_luod(true);
		c[i].t_us = now_mono_us();
		c[i].held = c[i].fd >= 0;
		opened += c[i].fd >= 0;
		held += c[i].held;
	}
	while (now_mono_us() < end) {
		uint64_t now = now_mono_us();
		int np = 0;

		for (int i = 0; i < n; i++) {
			if (c[i].fd < 0 && reconnect && now >= c[i].t_us) {
				c[i].fd = connect_luod(true);
				c[i].t_us = now;
				c[i].held = c[i].fd >= 0;
				opened += c[i].fd >= 0;
				held += c[i].held;
			}
			p[i] = (struct pollfd){ .fd = c[i].fd,
						.events = POLLIN };
			np++;
		}
		{
			unsigned settled = 0;

			for (int i = 0; i < n; i++)
				settled += c[i].fd >= 0 &&
					   now - c[i].t_us >= REFUSED_WITHIN_US;
			if (settled > peak)
				peak = settled;
		}
		if (poll(p, (nfds_t)np, 100) <= 0)
			continue;
		now = now_mono_us();
		for (int i = 0; i < n; i++) {
			char buf[2048];
			ssize_t r;

			if (c[i].fd < 0 ||
			    !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(c[i].fd, buf, sizeof(buf) - 1);
			if (r > 0) {
				buf[r] = '\0';
				take_message(buf,
					     now - c[i].t_us <
							     REFUSED_WITHIN_US ?
						     refused_msg :
						     drop_msg,
					     512);
				continue;
			}
			if (r < 0 && errno == EAGAIN)
				continue;
			/* Closed by luod. */
			if (now - c[i].t_us < REFUSED_WITHIN_US) {
				refused++;
			} else {
				uint64_t ms = (now - c[i].t_us) / 1000;

				dropped++;
				drop_min = ms < drop_min ? ms : drop_min;
				drop_max = ms > drop_max ? ms : drop_max;
			}
			held -= c[i].held;
			c[i].held = false;
			c[i].fd = safe_close(c[i].fd);
			c[i].t_us = now + 1000000ULL;
		}
	}
	/* Those luod refused are not held: count what is left at the end. */
	o = json_object_new_object();
	json_object_object_add(o, "opened", json_object_new_int((int)opened));
	json_object_object_add(o, "served", json_object_new_int((int)peak));
	json_object_object_add(o, "held_at_end",
			       json_object_new_int((int)held));
	json_object_object_add(o, "refused", json_object_new_int((int)refused));
	json_object_object_add(o, "dropped", json_object_new_int((int)dropped));
	json_object_object_add(
		o, "drop_ms_min",
		json_object_new_int64(dropped ? (int64_t)drop_min : -1));
	json_object_object_add(
		o, "drop_ms_max",
		json_object_new_int64(dropped ? (int64_t)drop_max : -1));
	json_object_object_add(o, "refused_msg",
			       json_object_new_string(refused_msg));
	json_object_object_add(o, "drop_msg", json_object_new_string(drop_msg));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	for (int i = 0; i < n; i++)
		safe_close(c[i].fd);
	free(p);
	free(c);
	return 0;
}

static int flood(unsigned seconds)
{
	const char *line = "{\"cmd\":\"STATUS\"}\n";
	int fd = connect_luod(false);
	struct proto_reader r = { .max_line = PROTO_MAX_REPLY };
	uint64_t t0 = now_mono_us(), end = t0 + seconds * 1000000ULL;
	unsigned replies = 0, errors = 0, in_flight = 0;
	struct json_object *o;

	if (fd < 0) {
		fprintf(stderr, "luod-hog: cannot connect: %m\n");
		return 1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (now_mono_us() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct proto_msg m;
		int q;

		while (in_flight < 64 &&
		       send(fd, line, strlen(line), MSG_NOSIGNAL) ==
			       (ssize_t)strlen(line))
			in_flight++;
		if (poll(&p, 1, 50) <= 0)
			continue;
		q = proto_reader_fill(&r, fd);
		if (q == 0 || (q < 0 && q != -EAGAIN))
			break;
		while (proto_reader_next(&r, &m) == 1) {
			if (proto_get_string(m.obj, "error"))
				errors++;
			else
				replies++;
			in_flight--;
			proto_msg_clear(&m);
		}
	}
	o = json_object_new_object();
	json_object_object_add(o, "replies", json_object_new_int((int)replies));
	json_object_object_add(o, "errors", json_object_new_int((int)errors));
	json_object_object_add(
		o, "per_s",
		json_object_new_int((int)(replies / (seconds ? seconds : 1))));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	proto_reader_free(&r);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct rlimit rl = { 4096, 4096 };

	sock_path = getenv("LUOD_SOCKET") ? getenv("LUOD_SOCKET") :
					    "/run/luod/liveupdate.sock";
	setrlimit(RLIMIT_NOFILE, &rl);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && streq(argv[1], "hold"))
		return hold(atoi(argv[2]), (unsigned)atoi(argv[3]),
			    argc > 4 && streq(argv[4], "--reconnect"));
	if (argc == 3 && streq(argv[1], "flood"))
		return flood((unsigned)atoi(argv[2]));
	fprintf(stderr,
		"usage: luod-hog hold N SECONDS [--reconnect] | flood SECONDS\n");
	return 2;
}
