// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod.conf. The format is the smallest INI that covers luod's few keys:
 * a bad line must stop luod with the file, the line and the reason, which a
 * parser that reports only "line N" cannot give, so the parser is our own
 * and every branch of it is unit-tested (tests/unit/test-config.c).
 */
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/un.h>
#include <syslog.h>

#include "conf.h"
#include "daemon.h"
#include "util.h"

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

int ini_parse(const char *text, size_t len, ini_handler_t handler,
	      void *userdata, unsigned *line, char *err, size_t errlen)
{
	char section[CONF_LINE_MAX] = "";
	const char *p = text, *end = text + len;

	*line = 0;
	if (memchr(text, '\0', len)) {
		*line = 1;
		for (const char *q = text; *q; q++)
			*line += *q == '\n';
		snprintf(err, errlen,
			 "contains a NUL byte, so it is not a text file");
		return -EINVAL;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char buf[CONF_LINE_MAX + 1], *s, *eq, *key, *value;
		int r;

		++*line;
		if (n > CONF_LINE_MAX) {
			snprintf(err, errlen, "line longer than %d bytes",
				 CONF_LINE_MAX);
			return -EINVAL;
		}
		memcpy(buf, p, n);
		buf[n] = '\0';
		p += n + (nl ? 1 : 0);
		if (n && buf[n - 1] == '\r')
			buf[n - 1] = '\0';

		s = trim(buf);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');

			if (!close || close[1] != '\0') {
				snprintf(
					err, errlen,
					"expected a section header like [luod]");
				return -EINVAL;
			}
			*close = '\0';
			s = trim(s + 1);
			if (!*s) {
				snprintf(err, errlen, "empty section name []");
				return -EINVAL;
			}
			snprintf(section, sizeof(section), "%s", s);
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			snprintf(
				err, errlen,
				"expected 'key = value' or a [section], got '%s'",
				s);
			return -EINVAL;
		}
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		if (!*key) {
			snprintf(err, errlen, "'=' without a key before it");
			return -EINVAL;
		}
		/* Quotes keep leading or trailing blanks in a value. */
		n = strlen(value);
		if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
			value[n - 1] = '\0';
			value++;
		}
		r = handler(userdata, section, key, value, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_uint(const char *value, unsigned min, unsigned max,
		      const char *unit, unsigned *out, char *err, size_t errlen)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)value[0]) ||
	    (v = strtoul(value, &end, 10), errno) || *end || v < min ||
	    v > max) {
		snprintf(err, errlen,
			 "'%s' is not a whole number%s%s from %u to %u", value,
			 *unit ? " of " : "", unit, min, max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static const char *const level_names[] = {
	[LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

const char *log_level_name(int level)
{
	if (level < 0 || (size_t)level >= ARRAY_SIZE(level_names) ||
	    !level_names[level])
		return "?";
	return level_names[level];
}

const char *reboot_mode_name(enum reboot_mode m)
{
	return m == REBOOT_SYSTEMD ? "systemd" :
	       m == REBOOT_AUTO	   ? "auto" :
					     "direct";
}

static int set_socket_path(struct config *cfg, const char *value, char *err,
			   size_t errlen)
{
	/* cfg points at it for the rest of luod's life; a later line or
	 * --socket replaces it. */
	static char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (value[0] != '/') {
		snprintf(err, errlen, "'%s' is not an absolute path", value);
		return -EINVAL;
	}
	if (strlen(value) >= sizeof(path)) {
		snprintf(
			err, errlen,
			"'%s' is longer than %zu bytes, the limit of a Unix socket path",
			value, sizeof(path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(path, value);
	cfg->socket_path = path;
	return 0;
}

static int set_admin_group(struct config *cfg, const char *value, char *err,
			   size_t errlen)
{
	struct group *g;
	unsigned gid;

	if (!*value) {
		/* Empty: only root may run admin commands. */
		cfg->have_admin_gid = false;
		return 0;
	}
	if (isdigit((unsigned char)value[0])) {
		int r = parse_uint(value, 0, INT32_MAX, "", &gid, err, errlen);

		if (r < 0)
			return r;
		cfg->admin_gid = (gid_t)gid;
		cfg->have_admin_gid = true;
		return 0;
	}
	g = getgrnam(value);
	if (!g) {
		snprintf(
			err, errlen,
			"no group named '%s'; create it (groupadd %s) or name another",
			value, value);
		return -EINVAL;
	}
	cfg->admin_gid = g->gr_gid;
	cfg->have_admin_gid = true;
	return 0;
}

int conf_set(struct config *cfg, const char *key, const char *value, char *err,
	     size_t errlen)
{
	if (streq(key, "socket_path"))
		return set_socket_path(cfg, value, err, errlen);
	if (streq(key, "timeout"))
		return parse_uint(value, 1, CONF_TIMEOUT_MAX, "seconds",
				  &cfg->timeout_s, err, errlen);
	if (streq(key, "grace_period"))
		return parse_uint(value, 0, CONF_GRACE_MAX, "seconds",
				  &cfg->grace_s, err, errlen);
	if (streq(key, "max_clients"))
		return parse_uint(value, 1, CONF_MAX_CLIENTS_MAX, "",
				  &cfg->max_clients, err, errlen);
	if (streq(key, "max_clients_per_uid"))
		return parse_uint(value, 0, CONF_MAX_CLIENTS_MAX, "",
				  &cfg->max_clients_per_uid, err, errlen);
	if (streq(key, "reserved_clients"))
		return parse_uint(value, 0, CONF_MAX_CLIENTS_MAX, "",
				  &cfg->reserved_clients, err, errlen);
	if (streq(key, "idle_timeout"))
		return parse_uint(value, 0, CONF_TIMEOUT_MAX, "seconds",
				  &cfg->idle_timeout_s, err, errlen);
	if (streq(key, "request_rate"))
		return parse_uint(value, 0, CONF_REQUEST_RATE_MAX,
				  "requests a second", &cfg->request_rate, err,
				  errlen);
	if (streq(key, "admin_group"))
		return set_admin_group(cfg, value, err, errlen);
	if (streq(key, "reboot_mode")) {
		if (streq(value, "direct"))
			cfg->reboot_mode = REBOOT_DIRECT;
		else if (streq(value, "systemd"))
			cfg->reboot_mode = REBOOT_SYSTEMD;
		else if (streq(value, "auto"))
			cfg->reboot_mode = REBOOT_AUTO;
		else {
			snprintf(err, errlen,
				 "'%s' is not 'auto', 'direct' or 'systemd'",
				 value);
			return -EINVAL;
		}
		return 0;
	}
	if (streq(key, "log_level")) {
		for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
			if (streq(level_names[i], value)) {
				cfg->log_level = (int)i;
				return 0;
			}
		snprintf(
			err, errlen,
			"'%s' is not one of error, warning, notice, info, debug",
			value);
		return -EINVAL;
	}
	snprintf(
		err, errlen,
		"unknown key '%s' (luod knows socket_path, timeout, grace_period, max_clients, "
		"max_clients_per_uid, reserved_clients, idle_timeout, request_rate, "
		"admin_group, reboot_mode, log_level)",
		key);
	return -ENOENT;
}

static int conf_handler(void *userdata, const char *section, const char *key,
			const char *value, char *err, size_t errlen)
{
	char reason[384];
	int r;

	if (!streq(section, "luod")) {
		snprintf(err, errlen, "'%s' is outside the [luod] section%s%s",
			 key, *section ? ", in " : "", section);
		return -EINVAL;
	}
	r = conf_set(userdata, key, value, reason, sizeof(reason));
	if (r == -ENOENT) /* an unknown key: the reason names it */
		snprintf(err, errlen, "%s", reason);
	else if (r < 0)
		snprintf(err, errlen, "%s: %s", key, reason);
	return r;
}

int conf_apply_text(struct config *cfg, const char *text, size_t len,
		    const char *path, char *err, size_t errlen)
{
	char reason[512];
	unsigned line;
	int r;

	r = ini_parse(text, len, conf_handler, cfg, &line, reason,
		      sizeof(reason));
	if (r < 0)
		snprintf(
			err, errlen,
			"%s:%u: %s; correct that line (luod.conf(5) lists the keys and values)",
			path, line, reason);
	return r;
}

int conf_load(struct config *cfg, const char *path, bool must_exist, char *err,
	      size_t errlen)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT && !must_exist)
			return 0;
		r = -errno;
		snprintf(
			err, errlen, "cannot open %s: %s; %s", path,
			strerror(-r),
			must_exist ?
				"check the path given with --config" :
				"luod reads it at start, so let root read it or remove it");
		return r;
	}
	r = read_all_fd(fd, CONF_FILE_MAX, &text, &len);
	if (r < 0) {
		snprintf(err, errlen, "cannot read %s: %s; %s", path,
			 strerror(-r),
			 r == -EFBIG ? "luod.conf is at most 1 MiB" :
				       "it must be a readable text file");
		return r;
	}
	r = conf_apply_text(cfg, text, len, path, err, errlen);
	if (r == 0)
		cfg->config_path = path;
	return r;
}
