/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

/*
 * Console output sits in the tty's transmit buffer until the UART sends it,
 * and a kexec drops whatever is still there: wait for it before a reboot,
 * or the last lines of a boot never reach the serial log.
 */
static inline void drain_console(void)
{
	_cleanup_close_ int fd =
		open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);

	fflush(NULL);
	if (isatty(STDOUT_FILENO))
		tcdrain(STDOUT_FILENO);
	if (isatty(STDERR_FILENO))
		tcdrain(STDERR_FILENO);
	if (fd >= 0)
		tcdrain(fd);
}
