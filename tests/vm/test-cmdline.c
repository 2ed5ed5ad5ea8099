// SPDX-License-Identifier: GPL-2.0-or-later
/* Host unit test of cmdline.c: the next boot's kernel command line. */
#include "cmdline.h"
#include "util.h"

static unsigned n, failed;

static void expect_set(const char *in, unsigned boot, const char *want)
{
	_cleanup_free_ char *out = NULL;
	int r = cmdline_set_boot(in, boot, &out);
	bool ok = r == 0 && streq(out, want);

	printf("%sok %u - set_boot(\"%s\", %u) = \"%s\"\n", ok ? "" : "not ",
	       ++n, in, boot, r == 0 ? out : strerror(-r));
	if (!ok) {
		printf("#   want \"%s\"\n", want);
		failed++;
	}
}

static void expect_get(const char *in, int want_r, unsigned want)
{
	unsigned boot = 12345;
	int r = cmdline_get_boot(in, &boot);
	bool ok = r == want_r && (r < 0 || boot == want);

	printf("%sok %u - get_boot(\"%s\") = %d, %u\n", ok ? "" : "not ", ++n,
	       in, r, boot);
	if (!ok)
		failed++;
}

int main(void)
{
	expect_get("console=ttyS0 luod.boot=0", 0, 0);
	expect_get("luod.boot=7 quiet", 0, 7);
	expect_get("quiet", 0, 0);
	expect_get("", 0, 0);
	expect_get("luod.boot=1 luod.boot=3", 0, 3);
	expect_get("luod.boot=x", -EINVAL, 0);
	expect_get("luod.boot=", -EINVAL, 0);
	expect_get("luod.booty=2", 0, 0);
	expect_get("xluod.boot=2", 0, 0);

	expect_set("console=ttyS0 liveupdate=on kho=on panic=-1 luod.boot=0", 1,
		   "console=ttyS0 liveupdate=on kho=on panic=-1 luod.boot=1");
	expect_set("luod.boot=9 quiet", 10, "luod.boot=10 quiet");
	expect_set("quiet", 1, "quiet luod.boot=1");
	expect_set("", 1, "luod.boot=1");
	expect_set("  a   b  ", 2, "a b luod.boot=2");
	expect_set("a luod.boot=1 b luod.boot=5 c", 6, "a luod.boot=6 b c");
	expect_set("x=\"luod.boot=1 y\" luod.boot=1", 2,
		   "x=\"luod.boot=1 y\" luod.boot=2");
	expect_set("\"quoted arg\" z", 3, "\"quoted arg\" z luod.boot=3");
	{
		char long_line[CMDLINE_MAX];
		_cleanup_free_ char *out = NULL;

		memset(long_line, 'a', sizeof(long_line) - 1);
		long_line[sizeof(long_line) - 1] = '\0';
		printf("%sok %u - a line too long for the kernel is refused\n",
		       cmdline_set_boot(long_line, 1, &out) == -E2BIG ? "" :
									"not ",
		       ++n);
	}
	printf("1..%u\n", n);
	return failed ? 1 : 0;
}
