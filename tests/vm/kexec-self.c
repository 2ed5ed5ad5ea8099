// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kexec-self: reboot the test guest into its own kernel and initramfs with
 * the boot index advanced, so a scenario's next boot sees `luod.boot=N+1`.
 * Uses kexec_file_load(2) directly: kexec-tools is not in the guest.
 */
#include <fcntl.h>
#include <getopt.h>
#include <linux/reboot.h>
#include <sys/syscall.h>
#include <termios.h>

#include "cmdline.h"
#include "console.h"
#include "util.h"

#define DEFAULT_KERNEL "/boot/bzImage"
#define DEFAULT_INITRD "/boot/initrd.img"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: kexec-self [OPTION]...\n"
		"Load " DEFAULT_KERNEL " and " DEFAULT_INITRD
		" with the current kernel\n"
		"command line, luod.boot=N replaced by luod.boot=N+1, and reboot into them.\n\n"
		"  --load-only      load the kernel but do not reboot\n"
		"  --boot N         use luod.boot=N instead of the current index + 1\n"
		"  --append ARGS    add ARGS to the command line\n"
		"  --kernel PATH    kernel image (default " DEFAULT_KERNEL ")\n"
		"  --initrd PATH    initramfs (default " DEFAULT_INITRD ")\n"
		"  -h, --help       show this help\n");
}

static const char *load_hint(int err)
{
	switch (err) {
	case ENOSYS:
		return "the running kernel lacks CONFIG_KEXEC_FILE";
	case EPERM:
		return "needs CAP_SYS_BOOT, and kexec must not be disabled (kernel.kexec_load_disabled)";
	case ENOEXEC:
		return "the image is not a bzImage this kernel can load; it needs CONFIG_RELOCATABLE=y (see dmesg)";
	case EBUSY:
		return "another kexec load is in progress";
	case ENOMEM:
	case EADDRNOTAVAIL:
		return "no room for the image; give the guest more memory";
	case EINVAL:
		return "the command line may be too long, or the image is malformed (see dmesg)";
	default:
		return "see dmesg";
	}
}

static int build_cmdline(long boot, const char *append, char **ret)
{
	_cleanup_free_ char *cur = NULL, *next = NULL;
	unsigned cur_boot;
	int r;

	r = cmdline_read_proc(&cur);
	if (r < 0) {
		fprintf(stderr,
			"kexec-self: cannot read /proc/cmdline: %s (is /proc mounted?)\n",
			strerror(-r));
		return r;
	}
	r = cmdline_get_boot(cur, &cur_boot);
	if (r < 0) {
		fprintf(stderr,
			"kexec-self: /proc/cmdline has a malformed %s: %s\n",
			CMDLINE_BOOT_KEY, cur);
		return r;
	}
	r = cmdline_set_boot(cur, boot >= 0 ? (unsigned)boot : cur_boot + 1,
			     &next);
	if (r < 0) {
		fprintf(stderr,
			"kexec-self: cannot build the next command line: %s\n",
			strerror(-r));
		return r;
	}
	if (append && *append) {
		size_t n = strlen(next) + 1 + strlen(append) + 1;
		char *s = malloc(n);

		if (!s)
			return -ENOMEM;
		snprintf(s, n, "%s %s", next, append);
		free(next);
		next = s;
	}
	if (strlen(next) + 1 > CMDLINE_MAX) {
		fprintf(stderr,
			"kexec-self: the command line would be %zu bytes; the kernel takes %d\n",
			strlen(next) + 1, CMDLINE_MAX);
		return -E2BIG;
	}
	*ret = take_ptr(next);
	return 0;
}

static int open_image(const char *what, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int r = -errno;

		fprintf(stderr, "kexec-self: cannot open %s %s: %s\n", what,
			path, strerror(-r));
		if (streq(path, DEFAULT_INITRD))
			fprintf(stderr,
				"kexec-self: the test bed's /init writes %s at boot; is this the test guest?\n",
				DEFAULT_INITRD);
		return r;
	}
	return fd;
}

int main(int argc, char **argv)
{
	enum {
		OPT_LOAD_ONLY = 256,
		OPT_BOOT,
		OPT_APPEND,
		OPT_KERNEL,
		OPT_INITRD
	};
	static const struct option options[] = {
		{ "load-only", no_argument, NULL, OPT_LOAD_ONLY },
		{ "boot", required_argument, NULL, OPT_BOOT },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *kernel = DEFAULT_KERNEL, *initrd = DEFAULT_INITRD,
		   *append = NULL;
	_cleanup_close_ int kernel_fd = -1, initrd_fd = -1;
	_cleanup_free_ char *cmdline = NULL;
	bool load_only = false;
	long boot = -1;
	int c;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_LOAD_ONLY:
			load_only = true;
			break;
		case OPT_BOOT: {
			char *end;

			errno = 0;
			boot = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || boot < 0 ||
			    boot > INT32_MAX) {
				fprintf(stderr,
					"kexec-self: --boot wants a boot index, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		}
		case OPT_APPEND:
			append = optarg;
			break;
		case OPT_KERNEL:
			kernel = optarg;
			break;
		case OPT_INITRD:
			initrd = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kexec-self: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}

	if (build_cmdline(boot, append, &cmdline) < 0)
		return 1;
	kernel_fd = open_image("kernel", kernel);
	if (kernel_fd < 0)
		return 1;
	initrd_fd = open_image("initramfs", initrd);
	if (initrd_fd < 0)
		return 1;

	if (syscall(SYS_kexec_file_load, kernel_fd, initrd_fd,
		    strlen(cmdline) + 1, cmdline, 0UL) < 0) {
		int r = errno;

		fprintf(stderr, "kexec-self: kexec_file_load(%s, %s): %s: %s\n",
			kernel, initrd, strerror(r), load_hint(r));
		return 1;
	}
	fprintf(stderr, "kexec-self: loaded %s with: %s\n", kernel, cmdline);
	if (load_only)
		return 0;

	drain_console();
	sync();
	syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		LINUX_REBOOT_CMD_KEXEC, NULL);
	/* Only reached on failure: e.g. LUO failed to serialize a session. */
	fprintf(stderr,
		"kexec-self: reboot(LINUX_REBOOT_CMD_KEXEC): %s (a LUO session that fails to serialize aborts the kexec; see dmesg)\n",
		strerror(errno));
	return 1;
}
