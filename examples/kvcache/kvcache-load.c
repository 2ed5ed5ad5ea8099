// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * kvcache-load: fill kvcache with known data and check it later, byte for
 * byte, to show that a live update kept it.
 *
 *	kvcache-load [--connect ADDR] load N      SET key:0000000 .. N-1
 *	kvcache-load [--connect ADDR] verify N    GET them all, compare
 *	kvcache-load [--connect ADDR] stats       the server's STAT lines
 *	kvcache-load [--connect ADDR] get KEY | set KEY VALUE | delete KEY
 *	kvcache-load [--connect ADDR] probe [--timeout S]
 *	kvcache-load [--connect ADDR] poll
 *
 * Key i's value and flags are a function of i alone (16 to 256 letters),
 * so verify needs nothing but N. probe waits until the server accepts a
 * connection and prints how long its first GET took; poll sends a GET every
 * 10 ms until the connection breaks (run it while an update happens).
 * ADDR is unix:PATH or tcp:HOST:PORT (default unix:/run/kvcache.sock).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvcache.h"

#define BATCH 256
#define GET_BATCH 100
#define VALUE_MAX_GEN 256

static const char *address = KV_DEFAULT_LISTEN;
static int sock = -1;
static char rbuf[1 << 16];
static size_t rlen, roff;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void key_for(uint64_t i, char *buf)
{
	snprintf(buf, 32, "key:%07" PRIu64, i);
}

static size_t value_for(uint64_t i, char *buf, unsigned *flags)
{
	uint64_t x = mix(i + 1);
	size_t len = 16 + x % (VALUE_MAX_GEN - 15);

	*flags = (unsigned)(x >> 48);
	for (size_t j = 0; j < len; j++) {
		if (j % 8 == 0)
			x = mix(x);
		buf[j] = (char)('a' + ((x >> (j % 8 * 8)) & 0xff) % 26);
	}
	return len;
}

static int connect_to(void)
{
	struct sockaddr_storage sa;
	unsigned len;
	int r = kv_parse_address(address, &sa, &len);

	if (r < 0) {
		fprintf(stderr,
			"kvcache-load: --connect %s: expected unix:PATH or tcp:HOST:PORT\n",
			address);
		return r;
	}
	sock = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	if (connect(sock, (struct sockaddr *)&sa, len) < 0) {
		r = -errno;
		close(sock);
		sock = -1;
		return r;
	}
	rlen = roff = 0;
	return 0;
}

static int send_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(sock, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fill(void)
{
	ssize_t n;

	if (roff == rlen)
		roff = rlen = 0;
	if (roff > 0 && rlen == sizeof(rbuf)) {
		memmove(rbuf, rbuf + roff, rlen - roff);
		rlen -= roff;
		roff = 0;
	}
	do
		n = recv(sock, rbuf + rlen, sizeof(rbuf) - rlen, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	rlen += (size_t)n;
	return 0;
}

/* The next line, without its \r\n, NUL-terminated in out. */
static int read_line(char *out, size_t size)
{
	for (;;) {
		char *nl = memchr(rbuf + roff, '\n', rlen - roff);
		int r;

		if (nl) {
			size_t n = (size_t)(nl - (rbuf + roff));

			if (n && rbuf[roff + n - 1] == '\r')
				n--;
			if (n >= size)
				return -E2BIG;
			memcpy(out, rbuf + roff, n);
			out[n] = '\0';
			roff = (size_t)(nl - rbuf) + 1;
			return 0;
		}
		if (rlen - roff >= sizeof(rbuf) - 1)
			return -E2BIG;
		r = fill();
		if (r < 0)
			return r;
	}
}

static int read_bytes(char *out, size_t n)
{
	while (n) {
		size_t k = rlen - roff < n ? rlen - roff : n;
		int r;

		memcpy(out, rbuf + roff, k);
		roff += k;
		out += k;
		n -= k;
		if (n && (r = fill()) < 0)
			return r;
	}
	return 0;
}

static int do_load(uint64_t n)
{
	static char buf[BATCH * (VALUE_MAX_GEN + 64)];
	char key[32], value[VALUE_MAX_GEN], line[512];
	uint64_t bytes = 0, refused = 0, step = n / 4 ? n / 4 : 1;
	double t = now_s();

	for (uint64_t i = 0; i < n;) {
		size_t len = 0, batch = 0;
		int r;

		for (; i < n && batch < BATCH; i++, batch++) {
			unsigned flags;
			size_t vlen = value_for(i, value, &flags);

			key_for(i, key);
			len += (size_t)sprintf(buf + len, "set %s %u 0 %zu\r\n",
					       key, flags, vlen);
			memcpy(buf + len, value, vlen);
			len += vlen;
			memcpy(buf + len, "\r\n", 2);
			len += 2;
			bytes += vlen;
		}
		r = send_all(buf, len);
		for (size_t k = 0; r == 0 && k < batch; k++) {
			r = read_line(line, sizeof(line));
			if (r == 0 && strcmp(line, "STORED")) {
				if (!refused++)
					fprintf(stderr,
						"kvcache-load: SET refused: %s\n",
						line);
			}
		}
		if (r < 0) {
			fprintf(stderr,
				"kvcache-load: lost the server after %" PRIu64
				" keys: %s\n",
				i, strerror(-r));
			return 1;
		}
		if (i % step < BATCH && i < n)
			fprintf(stderr,
				"kvcache-load: %" PRIu64 "/%" PRIu64
				" keys stored\n",
				i - i % BATCH, n);
	}
	printf("kvcache-load: stored %" PRIu64
	       " keys (%.1f MB of values) in %.2f s, %" PRIu64 " refused\n",
	       n - refused, (double)bytes / 1e6, now_s() - t, refused);
	return refused ? 1 : 0;
}

static int do_verify(uint64_t n)
{
	char key[32], want[VALUE_MAX_GEN], got[VALUE_MAX_GEN + 2], line[512];
	uint64_t bytes = 0, found = 0, missing, wrong = 0, digest = 0;
	double t = now_s();

	for (uint64_t i = 0; i < n;) {
		static char req[GET_BATCH * 32 + 16];
		uint64_t first = i;
		size_t len = 3;
		int r;

		memcpy(req, "get", 3);
		for (; i < n && i - first < GET_BATCH; i++) {
			key_for(i, key);
			len += (size_t)sprintf(req + len, " %s", key);
		}
		memcpy(req + len, "\r\n", 2);
		r = send_all(req, len + 2);
		for (uint64_t k = first; r == 0;) {
			unsigned flags, wflags, vlen;
			char rkey[64];
			size_t wlen;

			r = read_line(line, sizeof(line));
			if (r < 0)
				break;
			if (!strcmp(line, "END"))
				break;
			if (sscanf(line, "VALUE %63s %u %u", rkey, &flags,
				   &vlen) != 3 ||
			    vlen > VALUE_MAX_GEN) {
				fprintf(stderr,
					"kvcache-load: unexpected reply '%s'\n",
					line);
				return 1;
			}
			r = read_bytes(got, vlen + 2);
			if (r < 0)
				break;
			/* Replies come in key order, without the missing. */
			for (key_for(k, key); k < i && strcmp(key, rkey);
			     key_for(++k, key))
				;
			if (k == i) {
				fprintf(stderr,
					"kvcache-load: reply for a key not asked for: %s\n",
					rkey);
				return 1;
			}
			wlen = value_for(k, want, &wflags);
			if (vlen != wlen || flags != wflags ||
			    memcmp(got, want, wlen)) {
				if (!wrong++)
					fprintf(stderr,
						"kvcache-load: %s: wrong value or flags\n",
						key);
			}
			for (unsigned j = 0; j < vlen; j++)
				digest = (digest ^ (uint8_t)got[j]) *
					 0x100000001b3ULL;
			bytes += vlen;
			found++;
			k++;
			if (k == i) {
				r = read_line(line, sizeof(line));
				if (r == 0 && strcmp(line, "END"))
					r = -EPROTO;
				break;
			}
		}
		if (r < 0) {
			fprintf(stderr, "kvcache-load: lost the server: %s\n",
				strerror(-r));
			return 1;
		}
	}
	missing = n - found;
	printf("kvcache-load: verified %" PRIu64 " keys in %.2f s: %" PRIu64
	       " missing, %" PRIu64 " wrong; %" PRIu64
	       " bytes of values, digest %016" PRIx64 "\n",
	       n, now_s() - t, missing, wrong, bytes, digest);
	return missing || wrong ? 1 : 0;
}

static int simple(const char *req, bool multi)
{
	char line[1024];
	int r = send_all(req, strlen(req));

	while (r == 0 && (r = read_line(line, sizeof(line))) == 0) {
		if (!strncmp(line, "STAT ", 5))
			printf("%s\n", line + 5);
		else if (strcmp(line, "END") || !multi)
			printf("%s\n", line);
		if (!multi || !strcmp(line, "END") ||
		    !strncmp(line, "ERROR", 5) || strstr(line, "_ERROR"))
			break;
	}
	if (r < 0) {
		fprintf(stderr, "kvcache-load: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

static int do_probe(double timeout)
{
	double t0 = now_s(), t1;
	char line[512];
	int r;

	while ((r = connect_to()) < 0) {
		if (now_s() - t0 > timeout) {
			fprintf(stderr,
				"kvcache-load: no server at %s after %.0f s: %s\n",
				address, timeout, strerror(-r));
			return 1;
		}
		usleep(2000);
	}
	t1 = now_s();
	r = send_all("get key:0000000\r\n", 17);
	while (r == 0 && (r = read_line(line, sizeof(line))) == 0 &&
	       strcmp(line, "END"))
		;
	if (r < 0) {
		fprintf(stderr, "kvcache-load: probe: %s\n", strerror(-r));
		return 1;
	}
	printf("kvcache-load: server up after %.3f s of waiting; first GET answered in %.3f ms\n",
	       t1 - t0, (now_s() - t1) * 1e3);
	return 0;
}

static int do_poll(void)
{
	char line[512];
	unsigned long n = 0;

	for (;; n++) {
		int r = send_all("get key:0000000\r\n", 17);

		while (r == 0 && (r = read_line(line, sizeof(line))) == 0 &&
		       strcmp(line, "END"))
			;
		if (r < 0) {
			printf("kvcache-load: poll: %lu GETs answered, then: %s\n",
			       n, strerror(-r));
			return 0;
		}
		usleep(10000);
	}
}

static uint64_t count_arg(const char *s)
{
	char *end;
	unsigned long long v = s ? strtoull(s, &end, 10) : 0;

	if (!s || *end || !v || v > 9999999) {
		fprintf(stderr,
			"kvcache-load: give a number of keys, 1 to 9999999\n");
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{}
	};
	double timeout = 60;
	const char *cmd;
	char req[1024 + KV_KEY_MAX];
	int o, r;

	while ((o = getopt_long(argc, argv, "+c:t:", options, NULL)) != -1) {
		if (o == 'c')
			address = optarg;
		else if (o == 't')
			timeout = atof(optarg);
		else
			return 2;
	}
	if (optind >= argc) {
		fprintf(stderr,
			"usage: kvcache-load [--connect ADDR] load N | verify N | stats | get KEY | set KEY VALUE | delete KEY | probe [--timeout S] | poll\n");
		return 2;
	}
	cmd = argv[optind++];
	if (!strcmp(cmd, "probe"))
		return do_probe(timeout);
	r = connect_to();
	if (r < 0) {
		fprintf(stderr,
			"kvcache-load: cannot connect to %s: %s; is kvcache running?\n",
			address, strerror(-r));
		return 1;
	}
	if (!strcmp(cmd, "load"))
		return do_load(count_arg(argv[optind]));
	if (!strcmp(cmd, "verify"))
		return do_verify(count_arg(argv[optind]));
	if (!strcmp(cmd, "poll"))
		return do_poll();
	if (!strcmp(cmd, "stats"))
		return simple("stats\r\n", true);
	if (!strcmp(cmd, "get") && optind + 1 == argc) {
		snprintf(req, sizeof(req), "get %s\r\n", argv[optind]);
		return simple(req, true);
	}
	if (!strcmp(cmd, "delete") && optind + 1 == argc) {
		snprintf(req, sizeof(req), "delete %s\r\n", argv[optind]);
		return simple(req, false);
	}
	if (!strcmp(cmd, "set") && optind + 2 == argc &&
	    strlen(argv[optind + 1]) < 1024) {
		snprintf(req, sizeof(req), "set %s 0 0 %zu\r\n%s\r\n",
			 argv[optind], strlen(argv[optind + 1]),
			 argv[optind + 1]);
		return simple(req, false);
	}
	fprintf(stderr, "kvcache-load: unknown command or arguments: %s\n",
		cmd);
	return 2;
}
