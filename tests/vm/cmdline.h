/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kernel command line for the next boot of a live update: the current
 * one with the boot index `luod.boot=N` advanced. Kept free of test-bed
 * specifics so luod can take it over when it loads kernels itself.
 */
#pragma once

#define CMDLINE_BOOT_KEY "luod.boot="
/* x86's COMMAND_LINE_SIZE, NUL included; kexec_file_load refuses longer. */
#define CMDLINE_MAX 2048

/* /proc/cmdline without its trailing newline. */
int cmdline_read_proc(char **ret);

/* The value of the last luod.boot= in cmdline (the one the kernel would
 * honour); 0 when there is none. -EINVAL when it is not a number. */
int cmdline_get_boot(const char *cmdline, unsigned *ret);

/* cmdline with every luod.boot= dropped and luod.boot=BOOT put where the
 * first one was, or appended. Other words, quoting included, are kept. */
int cmdline_set_boot(const char *cmdline, unsigned boot, char **ret);
