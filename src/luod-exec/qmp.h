/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A QMP client small enough for luod-exec: one command at a time, its
 * reply or QEMU's error text. Events are skipped. Every call takes an
 * absolute CLOCK_MONOTONIC deadline (now_mono_us()) and fills err with
 * QEMU's own message when QEMU refused.
 */
#ifndef LUOD_QMP_H
#define LUOD_QMP_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qmp;

/* Connect to QEMU's QMP socket, retrying while QEMU (pid) is alive and
 * has not created it yet, then negotiate capabilities. */
int qmp_connect(const char *path, pid_t pid, uint64_t deadline_us,
		struct qmp **out, char *err, size_t errlen);
void qmp_close(struct qmp *q);

/*
 * Run one command. args (may be NULL) is consumed. On success *ret (if
 * not NULL) gets the "return" value, to be released by the caller.
 * Returns 0; -EPROTO when QEMU answered with an error (its class and desc
 * in err); -ETIMEDOUT; -ECONNRESET when QEMU closed the connection.
 */
int qmp_call(struct qmp *q, const char *command, struct json_object *args,
	     struct json_object **ret, uint64_t deadline_us, char *err,
	     size_t errlen);

#endif
