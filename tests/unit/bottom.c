// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bottom.h"
#include "luo.h"
#include "util.h"

struct bottom bottom;

void bottom_reset(void)
{
	bottom = (struct bottom){ 0 };
}

/* device.c */
int device_open(struct daemon *d)
{
	return bottom.device_error ? bottom.device_error :
				     open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int device_probe(struct daemon *d)
{
	return bottom.device_error;
}

int device_create_session(struct daemon *d, const char *name)
{
	if (bottom.device_error)
		return bottom.device_error;
	bottom.creates++;
	return memfd_create(name, MFD_CLOEXEC);
}

int device_create_unique(struct daemon *d, device_name_fn next_name,
			 void *data, char name[64])
{
	int fd = -EEXIST;

	if (bottom.device_error)
		return bottom.device_error;
	while (fd == -EEXIST) {
		next_name(name, data);
		if (bottom.names_taken) {
			bottom.names_taken--;
			continue;
		}
		bottom.creates++;
		fd = memfd_create(name, MFD_CLOEXEC);
	}
	return fd;
}

int device_retrieve_session(struct daemon *d, const char *name)
{
	if (bottom.device_error)
		return bottom.device_error;
	for (size_t i = 0; i < ARRAY_SIZE(bottom.incoming); i++)
		if (bottom.incoming[i] && streq(bottom.incoming[i], name)) {
			bottom.incoming[i] = NULL; /* once per boot */
			bottom.retrieves++;
			return memfd_create(name, MFD_CLOEXEC);
		}
	return -ENOENT;
}

/* The ioctls on a session's own fd. */
int luo_preserve_fd(int session_fd, int fd, uint64_t token)
{
	return 0;
}

int luo_retrieve_fd(int session_fd, uint64_t token)
{
	return -ENOENT;
}

int luo_finish(int session_fd)
{
	bottom.finishes++;
	return 0;
}

int luo_get_name(int session_fd, char name[LIVEUPDATE_SESSION_NAME_LENGTH])
{
	return -ENOTTY;
}

/* keeper.c */
bool keeper_start(struct daemon *d, keeper_adopt_fn adopt)
{
	return true;
}

void keeper_hold(const char *kname, int fd)
{
	bottom.keeper_holds += fd >= 0;
}

void keeper_drop(const char *kname)
{
	bottom.keeper_drops++;
}

void keeper_detach(void)
{
}

bool keeper_running(void)
{
	return true;
}

void keeper_reap(void)
{
}

bool keeper_take_lost(char *how, size_t len)
{
	return false;
}

/* fdstore.c */
int fdstore_hold(const char *kname, int fd)
{
	return bottom.fdstore;
}

void fdstore_drop(const char *kname)
{
	bottom.fdstore_drops++;
}

int fdstore_take_session(char kname[64])
{
	return -ENOENT;
}

int fdstore_take_manifest(char *fdname, size_t len)
{
	return -ENOENT;
}

void fdstore_forget_manifest(const char *fdname)
{
}

int fdstore_store_manifest(const char *manifest_text, char *name,
			   size_t namelen, char *err, size_t errlen)
{
	snprintf(name, namelen, "luod-manifest.test");
	return 0;
}

int fdstore_kexec(const char *manifest_name, char *err, size_t errlen)
{
	bottom.reboots++;
	return 0;
}

/* kexec.c: the reboot is counted, and refused so that luod goes on. */
int kexec_reboot(void)
{
	bottom.reboots++;
	bottom.kernel_refusals++;
	return -ENOSYS;
}

int kexec_load(const char *kernel, const char *initrd, const char *cmdline,
	       char *err, size_t errlen)
{
	return 0;
}

int kexec_unload(void)
{
	return 0;
}

bool kexec_loaded(void)
{
	return true;
}

/* output.c */
void client_send(struct daemon *d, struct client *c, struct json_object *msg,
		 const int *fds, size_t n_fds)
{
	struct peer *p = (struct peer *)c;

	if (c->dead || !msg) {
		json_object_put(msg);
		return;
	}
	json_object_array_add(p->log, msg);
}

void client_flush(struct daemon *d, struct client *c)
{
}

void client_rewatch(struct daemon *d, struct client *c, bool out)
{
}

void client_fail(struct daemon *d, struct client *c, const char *why)
{
	c->dead = true;
}

struct peer *peer_new(struct daemon *d, const char *id, bool hello)
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p)
		abort();
	p->log = json_object_new_array();
	p->c.watch.fd = -1;
	p->c.pid = 4242;
	p->c.admin = true;
	p->c.hello = hello;
	snprintf(p->c.id, sizeof(p->c.id), "%s", id ? id : "");
	p->c.next = d->clients;
	d->clients = &p->c;
	d->n_clients++;
	return p;
}

void peer_free(struct peer *p)
{
	json_object_put(p->log);
	if (p->c.kexec_request)
		json_object_put(p->c.kexec_request);
	free(p);
}

struct json_object *peer_find(struct peer *p, const char *key,
			      const char *value, int i)
{
	for (size_t k = 0; k < json_object_array_length(p->log); k++) {
		struct json_object *m = json_object_array_get_idx(p->log, k);

		if (streq(proto_get_string(m, key), value) && i-- == 0)
			return m;
	}
	return NULL;
}

size_t peer_count(struct peer *p, const char *key, const char *value)
{
	size_t n = 0;

	while (peer_find(p, key, value, (int)n))
		n++;
	return n;
}
