/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QEMU's half of a live update, over QMP: cpr-reboot migration to a state
 * file with the shared guest RAM left out (x-ignore-shared), and back.
 * err gets QEMU's own message when a step fails.
 */
#ifndef LUOD_QEMU_H
#define LUOD_QEMU_H

#include "qmp.h"

/* Stop the VM and save everything but its RAM to state_path; the file is
 * on disk (fsync) when this returns 0. *bytes: the file's size. */
int qemu_save(struct qmp *q, const char *state_path, uint64_t deadline_us,
	      uint64_t *bytes, char *err, size_t errlen);
/* A QEMU started with -incoming defer: load state_path, and return once
 * the VM runs. */
int qemu_load(struct qmp *q, const char *state_path, uint64_t deadline_us,
	      char *err, size_t errlen);
/* Run the VM again if a failed save left it stopped. */
int qemu_resume(struct qmp *q, uint64_t deadline_us, char *err, size_t errlen);
/* QEMU's run state ("running", "postmigrate", ...) into buf. */
int qemu_status(struct qmp *q, uint64_t deadline_us, char *buf, size_t len,
		char *err, size_t errlen);

#endif
