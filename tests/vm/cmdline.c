// SPDX-License-Identifier: GPL-2.0-or-later
#include <fcntl.h>
#include <inttypes.h>

#include "cmdline.h"
#include "util.h"

int cmdline_read_proc(char **ret)
{
	_cleanup_close_ int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *s = NULL;
	size_t len;
	int r;

	if (fd < 0)
		return -errno;
	r = read_all_fd(fd, CMDLINE_MAX * 2, &s, &len);
	if (r < 0)
		return r;
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		s[--len] = '\0';
	*ret = take_ptr(s);
	return 0;
}

/*
 * Next word of a command line, split the way the kernel's next_arg() does:
 * blanks separate words except inside double quotes. Returns its length and
 * sets *start, or 0 at the end.
 */
static size_t next_word(const char *p, const char **start)
{
	bool quoted = false;
	size_t n = 0;

	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	*start = p;
	while (p[n] &&
	       (quoted || (p[n] != ' ' && p[n] != '\t' && p[n] != '\n'))) {
		if (p[n] == '"')
			quoted = !quoted;
		n++;
	}
	return n;
}

static bool is_boot_word(const char *w, size_t n)
{
	size_t k = strlen(CMDLINE_BOOT_KEY);

	return n >= k && strncmp(w, CMDLINE_BOOT_KEY, k) == 0;
}

int cmdline_get_boot(const char *cmdline, unsigned *ret)
{
	const char *w, *p = cmdline;
	bool found = false;
	unsigned boot = 0;
	size_t n;

	while ((n = next_word(p, &w)) > 0) {
		if (is_boot_word(w, n)) {
			const char *v = w + strlen(CMDLINE_BOOT_KEY);
			uintmax_t x = 0;

			if (v == w + n)
				return -EINVAL;
			for (; v < w + n; v++) {
				if (*v < '0' || *v > '9')
					return -EINVAL;
				x = x * 10 + (uintmax_t)(*v - '0');
				if (x > UINT32_MAX / 2)
					return -ERANGE;
			}
			boot = (unsigned)x;
			found = true;
		}
		p = w + n;
	}
	*ret = found ? boot : 0;
	return 0;
}

int cmdline_set_boot(const char *cmdline, unsigned boot, char **ret)
{
	char item[sizeof(CMDLINE_BOOT_KEY) + 12];
	size_t len = strlen(cmdline), n, o = 0;
	_cleanup_free_ char *out = NULL;
	const char *w, *p = cmdline;
	bool placed = false;

	snprintf(item, sizeof(item), CMDLINE_BOOT_KEY "%u", boot);
	out = malloc(len + strlen(item) + 2);
	if (!out)
		return -ENOMEM;

	while ((n = next_word(p, &w)) > 0) {
		p = w + n;
		if (is_boot_word(w, n)) {
			if (placed)
				continue;
			w = item;
			n = strlen(item);
			placed = true;
		}
		if (o > 0)
			out[o++] = ' ';
		memcpy(out + o, w, n);
		o += n;
	}
	if (!placed) {
		if (o > 0)
			out[o++] = ' ';
		memcpy(out + o, item, strlen(item));
		o += strlen(item);
	}
	out[o] = '\0';
	if (o + 1 > CMDLINE_MAX)
		return -E2BIG;
	*ret = take_ptr(out);
	return 0;
}
