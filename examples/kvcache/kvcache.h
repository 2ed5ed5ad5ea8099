/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvcache: what the server and its client tool share. The wire protocol is
 * a subset of memcached's text protocol (get, set, delete, stats, version,
 * quit), so `nc -U /run/kvcache.sock` or any memcached client can talk to it.
 */
#ifndef KVCACHE_H
#define KVCACHE_H

#include <stdint.h>

#define KV_DEFAULT_LISTEN "unix:/run/kvcache.sock"
#define KV_KEY_MAX 250 /* memcached's limit */
#define KV_VALUE_MAX (1024 * 1024)

/* Parse "unix:PATH", "tcp:HOST:PORT" or a path; fills a sockaddr. */
struct sockaddr_storage;
int kv_parse_address(const char *spec, struct sockaddr_storage *sa,
		     unsigned *len);

#endif
