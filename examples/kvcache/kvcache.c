// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * kvcache: a small memcached-like key-value cache whose whole state lives in
 * one memfd, so that a live update keeps it warm. It uses libluod only.
 *
 *	kvcache --id cache1 [--listen unix:/run/kvcache.sock | tcp:127.0.0.1:11211]
 *	        [--memory 64M] [--socket LUOD_SOCKET] [--no-luod]
 *
 * The memfd holds a header, a bucket array and a heap of items, linked by
 * offsets from the start of the memfd rather than by pointers, so the same
 * bytes mean the same table wherever the next boot maps them.
 *
 * Its live update, in four steps:
 *  1. at start it claims its session "cache" from luod; if that came through
 *     an update it maps the memfd and serves at once; otherwise it starts
 *     empty and creates the session;
 *  2. on PREPARE it stops taking writes (SET and DELETE get SERVER_ERROR),
 *     preserves the memfd into its session and sends READY; reads go on
 *     until the machine goes down;
 *  3. luod kexecs;
 *  4. after the reboot, step 1 again: the first GET is answered from the
 *     same memory, with no warm-up and nothing read from disk. The session
 *     bookkeeping (FINISH, a new session) waits until no request is waiting.
 *
 * If the update is aborted, writes resume. The header keeps the times the
 * writes stopped and the last answer was sent, so the next boot can tell
 * how long the cache was away (the "stats" command shows them).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <luod.h>

#include "kvcache.h"

#define SESSION "cache"
#define TOKEN_MEMORY 1
#define MAGIC 0x3165686361637640ULL /* "@vcache1" */
#define LAYOUT_VERSION 1
#define ALIGN 8
#define OUT_HIGH (4u << 20) /* stop reading a connection past this */
#define MAX_EVENTS 64
#define LINE_MAX_LEN 8192
#define MAX_TOKENS 1024

/* At offset 0 of the memfd. Everything after it is found by offsets. */
struct kv_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint64_t size; /* of the memfd */
	uint64_t n_buckets; /* a power of two */
	uint64_t buckets; /* offset of uint64_t[n_buckets]: item offsets */
	uint64_t heap, heap_next, heap_end; /* items are bump-allocated */
	uint64_t n_items, value_bytes;
	uint64_t cmd_get, cmd_set, get_hits, get_misses;
	uint64_t updates; /* live updates this memory went through */
	uint64_t created_us;
	/* The last update, CLOCK_REALTIME microseconds. */
	uint64_t write_stop_us; /* PREPARE: writes refused from here */
	uint64_t last_answer_us; /* the last reply before the reboot */
	uint64_t preserved; /* 1 between READY and the restore */
};

struct kv_item {
	uint64_t next; /* offset of the next item in the bucket, or 0 */
	uint64_t hash;
	uint32_t key_len, value_len, capacity; /* capacity: for the value */
	uint32_t flags;
	char data[]; /* key, then value */
};

struct conn {
	int fd;
	char *in, *out;
	size_t in_len, in_cap, out_len, out_off, out_cap;
	bool closing;
};

static struct {
	const char *id, *listen, *socket;
	uint64_t memory;
	bool no_luod;
} arg = { .listen = KV_DEFAULT_LISTEN, .memory = 64ull << 20 };

static struct kv_header *H;
static uint8_t *base;
static int mem_fd = -1;
static struct luod_client *luod;
static int session_fd = -1, incoming_fd = -1;
static bool writes_paused, restored, subscribed, session_work, luod_lost;
static uint64_t start_us, serving_us, first_answer_us, answers;
static uint64_t prev_write_stop_us, prev_last_answer_us;
static int epfd;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("kvcache: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void luod_error(const char *what, int r)
{
	if (r == -EPROTO)
		say("%s: luod refused: %s: %s", what, luod_last_error(luod),
		    luod_last_error_message(luod));
	else
		say("%s: %s", what, strerror(-r));
}

/* The table */

static uint64_t hash_key(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ (uint8_t)*k++) * 0x100000001b3ULL;
	return h;
}

static uint64_t *buckets(void)
{
	return (uint64_t *)(base + H->buckets);
}

/* An item at offset off, or NULL if off does not point into the heap. */
static struct kv_item *item_at(uint64_t off)
{
	if (off < H->heap || off >= H->heap_next ||
	    off + sizeof(struct kv_item) > H->heap_next || off % ALIGN)
		return NULL;
	return (struct kv_item *)(base + off);
}

/* *link: the offset that points at the item, so it can be unlinked. */
static struct kv_item *find(const char *key, size_t len, uint64_t h,
			    uint64_t **link)
{
	uint64_t *l = &buckets()[h & (H->n_buckets - 1)];
	struct kv_item *it;

	while ((it = item_at(*l))) {
		if (it->hash == h && it->key_len == len &&
		    !memcmp(it->data, key, len)) {
			if (link)
				*link = l;
			return it;
		}
		l = &it->next;
	}
	return NULL;
}

static int store(const char *key, size_t klen, uint32_t flags,
		 const char *value, size_t vlen)
{
	uint64_t h = hash_key(key, klen), *link, off, need;
	struct kv_item *it = find(key, klen, h, &link);

	if (it && vlen <= it->capacity) {
		/* Overwrite in place: no space lost. */
		H->value_bytes += vlen - it->value_len;
		memcpy(it->data + klen, value, vlen);
		it->value_len = (uint32_t)vlen;
		it->flags = flags;
		return 0;
	}
	need = (sizeof(*it) + klen + vlen + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
	if (H->heap_next + need > H->heap_end)
		return -ENOSPC;
	off = H->heap_next;
	H->heap_next += need;
	if (it) {
		/* Unlink the old item; its space is not reused. */
		*link = it->next;
		H->n_items--;
		H->value_bytes -= it->value_len;
	}
	it = (struct kv_item *)(base + off);
	it->hash = h;
	it->key_len = (uint32_t)klen;
	it->value_len = (uint32_t)vlen;
	it->capacity = (uint32_t)(need - sizeof(*it) - klen);
	it->flags = flags;
	memcpy(it->data, key, klen);
	memcpy(it->data + klen, value, vlen);
	/* Link last, so a half-written item is never reachable. */
	it->next = buckets()[h & (H->n_buckets - 1)];
	buckets()[h & (H->n_buckets - 1)] = off;
	H->n_items++;
	H->value_bytes += vlen;
	return 0;
}

static bool remove_key(const char *key, size_t klen)
{
	uint64_t *link;
	struct kv_item *it = find(key, klen, hash_key(key, klen), &link);

	if (!it)
		return false;
	*link = it->next;
	H->n_items--;
	H->value_bytes -= it->value_len;
	return true;
}

static void init_table(uint64_t size)
{
	uint64_t n = 1;

	/* About one bucket per 256 bytes of memory. */
	while (n * 256 < size)
		n <<= 1;
	memset(H, 0, sizeof(*H));
	H->magic = MAGIC;
	H->version = LAYOUT_VERSION;
	H->header_size = sizeof(*H);
	H->size = size;
	H->n_buckets = n;
	H->buckets = 4096;
	H->heap = H->heap_next = H->buckets + n * sizeof(uint64_t);
	H->heap_end = size;
	H->created_us = now_us();
}

/* Is this memory a table we can serve from, in this mapping of size? */
static const char *check_table(uint64_t size)
{
	if (H->magic != MAGIC)
		return "no kvcache header";
	if (H->version != LAYOUT_VERSION || H->header_size != sizeof(*H))
		return "another layout version";
	if (H->size != size || H->heap_end != size)
		return "its size does not match the memfd's";
	if (!H->n_buckets || (H->n_buckets & (H->n_buckets - 1)) ||
	    H->buckets < sizeof(*H) ||
	    H->buckets + H->n_buckets * 8 > H->heap || H->heap_next < H->heap ||
	    H->heap_next > H->heap_end)
		return "its offsets point outside the memfd";
	return NULL;
}

/* Memory and luod */

static int map_memory(uint64_t size)
{
	void *p =
		mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	base = p;
	H = p;
	return 0;
}

static int new_memory(void)
{
	int r;

	mem_fd = memfd_create("kvcache", MFD_CLOEXEC);
	if (mem_fd < 0)
		return -errno;
	if (ftruncate(mem_fd, (off_t)arg.memory) < 0)
		return -errno;
	r = map_memory(arg.memory);
	if (r < 0)
		return r;
	init_table(arg.memory);
	return 0;
}

/*
 * Take the table back from the last boot. Returns 1 when restored, 0 when
 * there is nothing to restore, or -errno.
 */
static int claim_memory(void)
{
	struct luod_session *s;
	struct stat st;
	const char *bad;
	size_t n;
	int r;

	r = luod_claim(luod, SESSION, &s, &n);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		luod_error("claiming session " SESSION, r);
		return r;
	}
	if (!s[0].claimed) {
		/* Made earlier in this boot by a kvcache that has gone: LUO
		 * gives files back only after an update. */
		luod_sessions_free(s, n);
		r = luod_release(luod, arg.id, SESSION);
		if (r < 0)
			luod_error("releasing the stale session " SESSION, r);
		return r < 0 ? r : 0;
	}
	incoming_fd = s[0].fd;
	s[0].fd = -1;
	luod_sessions_free(s, n);

	mem_fd = luod_session_retrieve_fd(incoming_fd, TOKEN_MEMORY);
	if (mem_fd == -ENOENT) {
		/* The session was made, but kvcache was gone before PREPARE
		 * could put the memory in: nothing to restore. */
		say("session " SESSION
		    " came through the update without memory (was kvcache stopped before it?); starting empty");
		r = luod_session_finish(incoming_fd);
		if (r == 0)
			r = luod_finished(luod, SESSION);
		close(incoming_fd);
		incoming_fd = -1;
		if (r < 0)
			luod_error("finishing the empty session " SESSION, r);
		return r < 0 ? r : 0;
	}
	if (mem_fd < 0) {
		say("retrieving the memfd (token %d) of session " SESSION
		    ": %s",
		    TOKEN_MEMORY, strerror(-mem_fd));
		return mem_fd;
	}
	fcntl(mem_fd, F_SETFD, FD_CLOEXEC); /* LUO does not keep it */
	if (fstat(mem_fd, &st) < 0)
		return -errno;
	r = map_memory((uint64_t)st.st_size);
	if (r < 0)
		return r;
	bad = check_table((uint64_t)st.st_size);
	if (bad) {
		say("the memory that came through the update is not a table kvcache can use (%s); 'luoctl release %s " SESSION
		    "' drops it",
		    bad, arg.id);
		return -EBADMSG;
	}
	prev_write_stop_us = H->write_stop_us;
	prev_last_answer_us = H->last_answer_us;
	H->updates++;
	H->preserved = 0;
	H->write_stop_us = H->last_answer_us = 0;
	return 1;
}

/*
 * After a restore, once the first requests are served: give the claimed
 * session back to userspace and make a new one for the next update (a
 * retrieved session takes no new files).
 */
static int do_session_work(void)
{
	int r;

	session_work = false;
	if (incoming_fd >= 0) {
		r = luod_session_finish(incoming_fd);
		if (r == 0)
			r = luod_finished(luod, SESSION);
		if (r < 0) {
			luod_error("finishing session " SESSION, r);
			return r;
		}
		close(incoming_fd);
		incoming_fd = -1;
	}
	r = luod_create_session(luod, SESSION, &session_fd);
	if (r < 0) {
		luod_error("creating session " SESSION, r);
		return r;
	}
	r = luod_subscribe(luod);
	if (r < 0) {
		luod_error("subscribing to live updates", r);
		return r;
	}
	subscribed = true;
	return 0;
}

static void on_prepare(const struct luod_event *ev)
{
	int r;

	if (ev->new_session_fd >= 0)
		close(ev->new_session_fd);
	writes_paused = true;
	H->write_stop_us = now_us();
	/* After an aborted update the memfd is in the session already. */
	r = luod_session_preserve_fd(session_fd, mem_fd, TOKEN_MEMORY);
	if (r < 0 && r != -EEXIST) {
		char reason[128];

		snprintf(reason, sizeof(reason),
			 "kvcache cannot preserve its memory: %s",
			 strerror(-r));
		say("PREPARE: %s; NOT_READY", reason);
		luod_not_ready(luod, reason);
		writes_paused = false;
		return;
	}
	H->preserved = 1;
	r = luod_ready(luod);
	if (r < 0) {
		luod_error("sending READY", r);
		return;
	}
	say("PREPARE for update %" PRIu64 ": writes paused, %" PRIu64
	    " keys (%" PRIu64
	    " MiB of memory) preserved, READY; reads go on until the reboot",
	    ev->update, H->n_items, H->size >> 20);
}

static void on_luod(void)
{
	struct luod_event ev;
	int r;

	while ((r = luod_next_event(luod, &ev, 0)) == 1) {
		if (ev.type == LUOD_EVENT_PREPARE) {
			on_prepare(&ev);
		} else if (ev.type == LUOD_EVENT_ABORTED) {
			if (ev.new_session_fd >= 0)
				close(ev.new_session_fd);
			writes_paused = false;
			H->preserved = 0;
			say("update aborted (%s): taking writes again",
			    ev.reason);
		}
	}
	if (r < 0) {
		/* luod restarted or crashed; any update it ran is over. */
		luod_error("lost luod", r);
		say("serving on; reconnecting when luod is back");
		epoll_ctl(epfd, EPOLL_CTL_DEL, luod_fd(luod), NULL);
		luod_lost = true;
		writes_paused = false;
		H->preserved = 0;
	}
}

/*
 * luod_reconnect() hands our session back to the new luod (REATTACH) and
 * subscribes again. Called about once a second while luod is away.
 */
static void reconnect(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &luod };
	int r = luod_reconnect(luod, 0);

	if (r < 0)
		return;
	luod_lost = false;
	epoll_ctl(epfd, EPOLL_CTL_ADD, luod_fd(luod), &ev);
	say("luod is back: session " SESSION " re-attached");
}

/*
 * SIGTERM or SIGINT. Outside an update the cache dies with the process, so
 * its session goes too, rather than crossing the next update empty. After
 * READY, luod holds the memory for the next boot.
 */
static int stop(void)
{
	int r;

	if (!luod || session_fd < 0) {
		say("stopping");
		return 0;
	}
	if (writes_paused) {
		say("stopping after READY: the cache goes through the update");
		return 0;
	}
	r = luod_release(luod, arg.id, SESSION);
	if (r < 0)
		luod_error("releasing session " SESSION, r);
	say("stopping; released session " SESSION);
	return 0;
}

/* Connections */

static void out_append(struct conn *c, const void *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *nb;

		while (cap < c->out_len + n)
			cap *= 2;
		nb = realloc(c->out, cap);
		if (!nb) {
			c->closing = true;
			return;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void out_str(struct conn *c, const char *s)
{
	out_append(c, s, strlen(s));
}

static void out_fmt(struct conn *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_append(c, buf,
			   (size_t)n < sizeof(buf) ? (size_t)n :
						     sizeof(buf) - 1);
}

static void cmd_get(struct conn *c, char **tok, int n)
{
	for (int i = 1; i < n; i++) {
		size_t klen = strlen(tok[i]);
		struct kv_item *it =
			find(tok[i], klen, hash_key(tok[i], klen), NULL);

		H->cmd_get++;
		if (!it) {
			H->get_misses++;
			continue;
		}
		H->get_hits++;
		out_fmt(c, "VALUE %s %u %u\r\n", tok[i], it->flags,
			it->value_len);
		out_append(c, it->data + it->key_len, it->value_len);
		out_str(c, "\r\n");
	}
	out_str(c, "END\r\n");
}

static void cmd_stats(struct conn *c)
{
	uint64_t now = now_us();

	out_fmt(c, "STAT pid %d\r\n", (int)getpid());
	out_fmt(c, "STAT uptime %" PRIu64 "\r\n", (now - start_us) / 1000000);
	out_str(c, "STAT version kvcache-0.1\r\n");
	out_fmt(c, "STAT curr_items %" PRIu64 "\r\n", H->n_items);
	out_fmt(c, "STAT bytes %" PRIu64 "\r\n", H->value_bytes);
	out_fmt(c, "STAT limit_maxbytes %" PRIu64 "\r\n", H->size);
	out_fmt(c, "STAT memory_used %" PRIu64 "\r\n", H->heap_next);
	out_fmt(c, "STAT cmd_get %" PRIu64 "\r\n", H->cmd_get);
	out_fmt(c, "STAT cmd_set %" PRIu64 "\r\n", H->cmd_set);
	out_fmt(c, "STAT get_hits %" PRIu64 "\r\n", H->get_hits);
	out_fmt(c, "STAT get_misses %" PRIu64 "\r\n", H->get_misses);
	out_fmt(c, "STAT live_updates %" PRIu64 "\r\n", H->updates);
	out_fmt(c, "STAT restored %d\r\n", restored);
	out_fmt(c, "STAT writes_paused %d\r\n", writes_paused);
	out_fmt(c, "STAT start_us %" PRIu64 "\r\n", start_us);
	out_fmt(c, "STAT serving_us %" PRIu64 "\r\n", serving_us);
	out_fmt(c, "STAT first_answer_us %" PRIu64 "\r\n", first_answer_us);
	out_fmt(c, "STAT prev_write_stop_us %" PRIu64 "\r\n",
		prev_write_stop_us);
	out_fmt(c, "STAT prev_last_answer_us %" PRIu64 "\r\n",
		prev_last_answer_us);
	out_str(c, "END\r\n");
}

/* Split line into at most max tokens at spaces; returns the count. */
static int tokenize(char *line, char **tok, int max)
{
	int n = 0;
	char *save = NULL, *t;

	for (t = strtok_r(line, " ", &save); t && n < max;
	     t = strtok_r(NULL, " ", &save))
		tok[n++] = t;
	return t ? -1 : n;
}

static bool valid_key(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > KV_KEY_MAX)
		return false;
	for (; *k; k++)
		if ((unsigned char)*k <= ' ' || *k == 0x7f)
			return false;
	return true;
}

/*
 * Handle the request at p (avail bytes). Returns the bytes it used, 0 when
 * it is not complete yet.
 */
static size_t handle_request(struct conn *c, const char *p, size_t avail)
{
	const char *nl = memchr(p, '\n', avail);
	char line[LINE_MAX_LEN + 1], *tok[MAX_TOKENS];
	size_t line_len, used;
	int n;

	if (!nl) {
		if (avail > LINE_MAX_LEN) {
			out_str(c, "CLIENT_ERROR line too long\r\n");
			c->closing = true;
			return avail;
		}
		return 0;
	}
	line_len = (size_t)(nl - p);
	used = line_len + 1;
	if (line_len && p[line_len - 1] == '\r')
		line_len--;
	if (line_len > LINE_MAX_LEN) {
		out_str(c, "CLIENT_ERROR line too long\r\n");
		return used;
	}
	/* Tokenized in a copy: a SET may have to wait for its data. */
	memcpy(line, p, line_len);
	line[line_len] = '\0';
	n = tokenize(line, tok, MAX_TOKENS);
	if (n <= 0) {
		out_str(c,
			n < 0 ? "CLIENT_ERROR too many keys\r\n" : "ERROR\r\n");
		return used;
	}

	if (!strcmp(tok[0], "get") || !strcmp(tok[0], "gets")) {
		cmd_get(c, tok, n);
	} else if (!strcmp(tok[0], "set")) {
		/* set KEY FLAGS EXPTIME BYTES [noreply]\r\nDATA\r\n */
		unsigned long flags, bytes;
		char *end1, *end2;
		bool noreply = n == 6 && !strcmp(tok[5], "noreply");

		if (n < 5 || n > 6 || !valid_key(tok[1])) {
			out_str(c, "CLIENT_ERROR bad command line format\r\n");
			return used;
		}
		flags = strtoul(tok[2], &end1, 10);
		bytes = strtoul(tok[4], &end2, 10);
		if (*end1 || *end2 || flags > UINT32_MAX ||
		    bytes > KV_VALUE_MAX) {
			out_str(c, "CLIENT_ERROR bad command line format\r\n");
			c->closing = bytes > KV_VALUE_MAX;
			return used;
		}
		if (avail < used + bytes + 2)
			return 0; /* the data is still coming */
		H->cmd_set++;
		if (writes_paused)
			out_str(c,
				"SERVER_ERROR writes are paused for a live update; retry after it\r\n");
		else if (store(tok[1], strlen(tok[1]), (uint32_t)flags,
			       p + used, bytes) < 0)
			out_str(c,
				"SERVER_ERROR out of memory storing object\r\n");
		else if (!noreply)
			out_str(c, "STORED\r\n");
		used += bytes + 2;
	} else if (!strcmp(tok[0], "delete") && (n == 2 || n == 3)) {
		if (writes_paused)
			out_str(c,
				"SERVER_ERROR writes are paused for a live update; retry after it\r\n");
		else if (remove_key(tok[1], strlen(tok[1])))
			out_str(c, n == 3 ? "" : "DELETED\r\n");
		else
			out_str(c, n == 3 ? "" : "NOT_FOUND\r\n");
	} else if (!strcmp(tok[0], "stats") && n == 1) {
		cmd_stats(c);
	} else if (!strcmp(tok[0], "version")) {
		out_str(c, "VERSION kvcache-0.1\r\n");
	} else if (!strcmp(tok[0], "quit")) {
		c->closing = true;
	} else {
		out_str(c, "ERROR\r\n");
	}
	return used;
}

static void conn_free(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Write what is queued; returns false when the connection is done. */
static bool conn_flush(struct conn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return false;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->closing && !c->out_len)
		return false;
	/* Backpressure: while much is queued, read no more requests. */
	ev.events = (c->out_len ? EPOLLOUT : 0) |
		    (c->out_len < OUT_HIGH ? EPOLLIN : 0);
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	return true;
}

/* Read what the socket has; returns false when the peer is gone. */
static bool conn_read(struct conn *c)
{
	while (c->in_len < OUT_HIGH) {
		ssize_t n;

		if (c->in_cap - c->in_len < 16384) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 65536;
			char *nb = realloc(c->in, cap);

			if (!nb)
				return false;
			c->in = nb;
			c->in_cap = cap;
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		c->in_len += (size_t)n;
	}
	return true;
}

/* Answer the complete requests buffered; returns how many. */
static unsigned conn_serve(struct conn *c)
{
	size_t off = 0;
	unsigned n = 0;

	while (!c->closing && c->out_len < OUT_HIGH) {
		size_t used = handle_request(c, c->in + off, c->in_len - off);

		if (!used)
			break;
		off += used;
		n++;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return n;
}

static void on_conn(struct conn *c, uint32_t events)
{
	unsigned served = 0, n;

	if ((events & EPOLLIN) && !conn_read(c)) {
		conn_free(c);
		return;
	}
	/* Requests left in the buffer by backpressure are served here too,
	 * as the socket may have nothing new to wake us for them. */
	do {
		n = conn_serve(c);
		served += n;
		if (!conn_flush(c)) {
			conn_free(c);
			return;
		}
	} while (n && c->out_len == 0 && c->in_len);

	if (served) {
		uint64_t t = now_us();

		if (!answers++) {
			first_answer_us = t;
			if (restored)
				say("first request served %.3f ms after kvcache started",
				    (double)(t - start_us) / 1e3);
		}
		/* Kept in the memfd: the next boot reads it. */
		H->last_answer_us = t;
	}
}

static int listen_on(const char *spec)
{
	struct sockaddr_storage sa;
	unsigned len;
	int fd, one = 1, r;

	r = kv_parse_address(spec, &sa, &len);
	if (r < 0) {
		say("--listen %s: expected unix:PATH or tcp:HOST:PORT", spec);
		return r;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0) {
		say("socket for %s: %s", spec, strerror(errno));
		return -errno;
	}
	if (sa.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&sa)->sun_path);
	else
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		say("cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'K':
		v <<= 10, end++;
		break;
	case 'M':
		v <<= 20, end++;
		break;
	case 'G':
		v <<= 30, end++;
		break;
	}
	if (*end || v < (1 << 20))
		return -EINVAL;
	*out = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: kvcache --id ID [--listen unix:PATH|tcp:HOST:PORT] [--memory SIZE]\n"
		"               [--socket LUOD_SOCKET] [--no-luod]\n"
		"  --listen   where to serve (default %s)\n"
		"  --memory   size of the cache's memfd (default 64M, at least 1M)\n"
		"  --no-luod  serve without live updates (no luod needed)\n",
		KV_DEFAULT_LISTEN);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "listen", required_argument, NULL, 'l' },
		{ "memory", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 's' },
		{ "no-luod", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct epoll_event ev = { .events = EPOLLIN };
	int o, r, lfd, sfd;
	sigset_t mask;

	start_us = now_us();
	while ((o = getopt_long(argc, argv, "i:l:m:s:nh", options, NULL)) !=
	       -1) {
		switch (o) {
		case 'i':
			arg.id = optarg;
			break;
		case 'l':
			arg.listen = optarg;
			break;
		case 's':
			arg.socket = optarg;
			break;
		case 'n':
			arg.no_luod = true;
			break;
		case 'm':
			if (parse_size(optarg, &arg.memory) < 0) {
				say("--memory '%s': give bytes, or a size with K, M or G; at least 1M",
				    optarg);
				return 2;
			}
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (!arg.id && !arg.no_luod) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);

	if (!arg.no_luod) {
		r = luod_connect(arg.socket, arg.id, &luod);
		if (r < 0) {
			say("cannot talk to luod: %s; check that luod runs, pass --socket if it listens elsewhere, or --no-luod to run without live updates",
			    strerror(-r));
			return 1;
		}
		r = claim_memory();
		if (r < 0)
			return 1;
		restored = r > 0;
	}
	if (!restored) {
		r = new_memory();
		if (r < 0) {
			say("cannot set up %" PRIu64 " MiB of memory: %s",
			    arg.memory >> 20, strerror(-r));
			return 1;
		}
	}

	lfd = listen_on(arg.listen);
	if (lfd < 0)
		return 1;
	serving_us = now_us();
	if (restored)
		say("restored %" PRIu64 " keys (%" PRIu64
		    " MiB of memory, through %" PRIu64
		    " live updates); serving on %s %.3f ms after start",
		    H->n_items, H->size >> 20, H->updates, arg.listen,
		    (double)(serving_us - start_us) / 1e3);
	else
		say("empty cache of %" PRIu64 " MiB; serving on %s",
		    H->size >> 20, arg.listen);

	epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.ptr = &lfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.ptr = &sfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	if (luod) {
		ev.data.ptr = &luod;
		epoll_ctl(epfd, EPOLL_CTL_ADD, luod_fd(luod), &ev);
		session_work = true;
		/* A first start has no hurry: be covered before serving. */
		if (!restored && do_session_work() < 0)
			return 1;
	}
	fflush(stderr);

	for (;;) {
		struct epoll_event evs[MAX_EVENTS];
		int n = epoll_wait(epfd, evs, MAX_EVENTS,
				   luod_lost	? 1000 :
				   session_work ? 0 :
						  -1);

		if (luod_lost)
			reconnect();

		if (n < 0 && errno != EINTR) {
			say("epoll_wait: %s", strerror(errno));
			return 1;
		}
		if (n == 0 && session_work && !luod_lost) {
			/* Nothing waiting to be served: now the bookkeeping. */
			if (do_session_work() < 0)
				say("serving on, but this cache will not survive the next live update");
			continue;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &lfd) {
				int cfd;

				while ((cfd = accept4(lfd, NULL, NULL,
						      SOCK_CLOEXEC |
							      SOCK_NONBLOCK)) >=
				       0) {
					struct conn *c = calloc(1, sizeof(*c));
					struct epoll_event cev = {
						.events = EPOLLIN, .data.ptr = c
					};

					if (!c) {
						close(cfd);
						continue;
					}
					c->fd = cfd;
					epoll_ctl(epfd, EPOLL_CTL_ADD, cfd,
						  &cev);
				}
			} else if (evs[i].data.ptr == &sfd) {
				return stop();
			} else if (evs[i].data.ptr == &luod) {
				if (!luod_lost)
					on_luod();
			} else {
				on_conn(evs[i].data.ptr, evs[i].events);
			}
		}
	}
}
