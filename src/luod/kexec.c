// SPDX-License-Identifier: GPL-2.0-or-later
/* Loading the next kernel and jumping into it. */
#include <fcntl.h>
#include <linux/kexec.h>
#include <linux/reboot.h>
#include <sys/syscall.h>

#include "daemon.h"
#include "log.h"

#ifndef KEXEC_FILE_UNLOAD
#define KEXEC_FILE_UNLOAD 0x00000001
#endif
#ifndef KEXEC_FILE_NO_INITRAMFS
#define KEXEC_FILE_NO_INITRAMFS 0x00000004
#endif

int kexec_load(const char *kernel, const char *initrd, const char *cmdline,
	       char *err, size_t errlen)
{
	_cleanup_close_ int kfd = -1, ifd = -1;
	unsigned long flags = 0;
	const char *cl = cmdline ? cmdline : "";

	/* luod opens the files itself: it runs as root, and the paths are
	 * checked by the caller's admin right, not by its file access. */
	/* errno is saved first: formatting the message may change it. */
	kfd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (kfd < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot open kernel %s: %s", kernel,
			 strerror(e));
		return -e;
	}
	if (initrd) {
		ifd = open(initrd, O_RDONLY | O_CLOEXEC);
		if (ifd < 0) {
			int e = errno;

			snprintf(err, errlen, "cannot open initrd %s: %s",
				 initrd, strerror(e));
			return -e;
		}
	} else {
		flags |= KEXEC_FILE_NO_INITRAMFS;
	}
	if (syscall(SYS_kexec_file_load, kfd, ifd, strlen(cl) + 1, cl, flags) <
	    0) {
		int e = errno;

		snprintf(
			err, errlen, "kexec_file_load(%s) failed: %s%s", kernel,
			strerror(e),
			e == ENOEXEC ?
				" (not a bzImage this kernel can load, for example one built without "
				"CONFIG_RELOCATABLE=y; see luod(8), REQUIREMENTS)" :
			e == EPERM || e == EKEYREJECTED ?
				" (kexec may be disabled by kernel.kexec_load_disabled, lockdown or signature "
				"enforcement; see luod(8), REQUIREMENTS)" :
				"");
		return -e;
	}
	return 0;
}

int kexec_unload(void)
{
	if (syscall(SYS_kexec_file_load, -1, -1, 0, NULL, KEXEC_FILE_UNLOAD) <
	    0)
		return -errno;
	return 0;
}

bool kexec_loaded(void)
{
	char c = '0';
	int fd = open("/sys/kernel/kexec_loaded", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (read(fd, &c, 1) != 1)
		c = '0';
	close(fd);
	return c == '1';
}

int kexec_reboot(void)
{
	if (syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		    LINUX_REBOOT_CMD_KEXEC, NULL) < 0)
		return -errno;
	return 0;
}
