// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>

#include "qemu.h"
#include "util.h"

/* How often a migration's progress is asked for: a save of a small VM's
 * devices takes milliseconds, so polling costs little of the blackout. */
#define POLL_US (10 * 1000)

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_get_string(v);
}

/* Both sides must agree: RAM stays where it is, the rest goes to a file. */
static int cpr_setup(struct qmp *q, uint64_t deadline_us, char *err,
		     size_t errlen)
{
	struct json_object *caps = json_object_new_array();
	struct json_object *cap = json_object_new_object();
	struct json_object *args = json_object_new_object();
	struct json_object *params = json_object_new_object();
	int r;

	json_object_object_add(cap, "capability",
			       json_object_new_string("x-ignore-shared"));
	json_object_object_add(cap, "state", json_object_new_boolean(1));
	json_object_array_add(caps, cap);
	json_object_object_add(args, "capabilities", caps);
	r = qmp_call(q, "migrate-set-capabilities", args, NULL, deadline_us,
		     err, errlen);
	if (r < 0) {
		json_object_put(params);
		return r;
	}
	json_object_object_add(params, "mode",
			       json_object_new_string("cpr-reboot"));
	return qmp_call(q, "migrate-set-parameters", params, NULL, deadline_us,
			err, errlen);
}

static struct json_object *uri_args(const char *state_path)
{
	struct json_object *args = json_object_new_object();
	char uri[PATH_MAX + 8];

	snprintf(uri, sizeof(uri), "file:%s", state_path);
	json_object_object_add(args, "uri", json_object_new_string(uri));
	return args;
}

/* The state file and its directory entry reach the disk before READY:
 * the reboot that follows does not sync. */
static int sync_file(const char *path, uint64_t *bytes)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int dfd = -1;
	_cleanup_free_ char *dir = strdup(path);
	struct stat st;

	if (fd < 0 || !dir)
		return fd < 0 ? -errno : -ENOMEM;
	if (fsync(fd) < 0 || fstat(fd, &st) < 0)
		return -errno;
	*bytes = (uint64_t)st.st_size;
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return -errno;
	return 0;
}

int qemu_status(struct qmp *q, uint64_t deadline_us, char *buf, size_t len,
		char *err, size_t errlen)
{
	struct json_object *ret;
	int r = qmp_call(q, "query-status", NULL, &ret, deadline_us, err,
			 errlen);

	if (r < 0)
		return r;
	snprintf(buf, len, "%s", get_str(ret, "status") ?: "unknown");
	json_object_put(ret);
	return 0;
}

/* Wait for the migration to end. Returns 0 when it completed. */
static int wait_migration(struct qmp *q, uint64_t deadline_us, char *err,
			  size_t errlen)
{
	for (;;) {
		struct json_object *ret;
		const char *st;
		int r = qmp_call(q, "query-migrate", NULL, &ret, deadline_us,
				 err, errlen);

		if (r < 0)
			return r;
		st = get_str(ret, "status");
		if (streq(st, "completed")) {
			json_object_put(ret);
			return 0;
		}
		if (streq(st, "failed") || streq(st, "cancelled")) {
			snprintf(err, errlen, "migration %s: %s", st,
				 get_str(ret, "error-desc") ?: "QEMU gave no reason");
			json_object_put(ret);
			return -EIO;
		}
		json_object_put(ret);
		if (now_mono_us() + POLL_US >= deadline_us) {
			snprintf(err, errlen, "the migration did not end in time (status %s)",
				 st ?: "none");
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
}

int qemu_save(struct qmp *q, const char *state_path, uint64_t deadline_us,
	      uint64_t *bytes, char *err, size_t errlen)
{
	int r;

	/* Whatever an older update left there must not be taken for this one. */
	if (unlink(state_path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the old state file %s: %s",
			 state_path, strerror(errno));
		return -errno;
	}
	r = cpr_setup(q, deadline_us, err, errlen);
	if (r == 0)
		r = qmp_call(q, "migrate", uri_args(state_path), NULL,
			     deadline_us, err, errlen);
	if (r == 0)
		r = wait_migration(q, deadline_us, err, errlen);
	if (r < 0)
		return r;
	r = sync_file(state_path, bytes);
	if (r < 0)
		snprintf(err, errlen, "cannot sync the state file %s: %s",
			 state_path, strerror(-r));
	return r;
}

int qemu_load(struct qmp *q, const char *state_path, uint64_t deadline_us,
	      char *err, size_t errlen)
{
	struct json_object *args;
	struct stat st;
	char status[64];
	int r;

	if (stat(state_path, &st) < 0 || st.st_size == 0) {
		snprintf(err, errlen,
			 "the VM's state file %s is %s, so QEMU cannot resume the VM",
			 state_path, errno == ENOENT ? "missing" : "empty");
		return -ENOENT;
	}
	r = cpr_setup(q, deadline_us, err, errlen);
	if (r < 0)
		return r;
	/* On a bad file QEMU stays up to say why instead of exiting. */
	args = uri_args(state_path);
	json_object_object_add(args, "exit-on-error",
			       json_object_new_boolean(0));
	r = qmp_call(q, "migrate-incoming", args, NULL, deadline_us, err,
		     errlen);
	if (r == 0)
		r = wait_migration(q, deadline_us, err, errlen);
	if (r < 0) {
		_cleanup_free_ char *why = strdup(err);

		snprintf(err, errlen,
			 "QEMU could not load the VM's state file %s: %s",
			 state_path, why ?: "out of memory");
		return r;
	}
	for (;;) {
		r = qemu_status(q, deadline_us, status, sizeof(status), err,
				errlen);
		if (r < 0 || streq(status, "running"))
			return r;
		if (now_mono_us() + POLL_US >= deadline_us) {
			snprintf(err, errlen,
				 "the VM did not run after loading its state (status %s)",
				 status);
			return -ETIMEDOUT;
		}
		usleep(POLL_US);
	}
}

int qemu_resume(struct qmp *q, uint64_t deadline_us, char *err, size_t errlen)
{
	char status[64];
	int r = qemu_status(q, deadline_us, status, sizeof(status), err,
			    errlen);

	if (r < 0 || streq(status, "running"))
		return r;
	return qmp_call(q, "cont", NULL, NULL, deadline_us, err, errlen);
}
