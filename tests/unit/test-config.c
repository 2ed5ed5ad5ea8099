// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod.conf: the INI parser and the keys. A bad line must stop luod with
 * the file, the line and the reason, so every refusal is checked for all
 * three, and every accepted form for the value it gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <syslog.h>

#include "conf.h"
#include "daemon.h"
#include "util.h"

/* Records what the parser hands over: "section|key|value;" per line. */
struct record {
	char text[4096];
	int fail_at_key; /* handler fails on the key named "fail" */
};

static int record_handler(void *userdata, const char *section, const char *key,
			  const char *value, char *err, size_t errlen)
{
	struct record *r = userdata;
	size_t n = strlen(r->text);

	if (streq(key, "fail")) {
		snprintf(err, errlen, "handler refused %s", value);
		return -EINVAL;
	}
	snprintf(r->text + n, sizeof(r->text) - n, "%s|%s|%s;", section, key,
		 value);
	return 0;
}

static int parse(const char *text, struct record *r, unsigned *line, char *err,
		 size_t errlen)
{
	memset(r, 0, sizeof(*r));
	return ini_parse(text, strlen(text), record_handler, r, line, err,
			 errlen);
}

static void test_ini_accepts(void **state)
{
	struct record r;
	unsigned line;
	char err[256];

	assert_int_equal(parse("", &r, &line, err, sizeof(err)), 0);
	assert_string_equal(r.text, "");

	assert_int_equal(parse("\n\n# comment = no\n; also = no\n   \t\n", &r,
			       &line, err, sizeof(err)),
			 0);
	assert_string_equal(r.text, "");

	/* Keys before a section get section "", blanks are trimmed, the last
	 * line needs no newline, CRLF files work, '=' in a value stays. */
	assert_int_equal(parse("a=1\n[ s1 ]\r\n  b =  two words \t\r\n"
			       "[s2]\nc = x=y\nd =\ne = \"  quoted  \"\n"
			       "f = \"\nlast=end",
			       &r, &line, err, sizeof(err)),
			 0);
	assert_string_equal(r.text, "|a|1;s1|b|two words;s2|c|x=y;s2|d|;"
				    "s2|e|  quoted  ;s2|f|\";s2|last|end;");
	assert_int_equal(line, 9);

	/* A '#' after a value is part of it: paths may contain one. */
	assert_int_equal(
		parse("[s]\np = /run/a#b\n", &r, &line, err, sizeof(err)), 0);
	assert_string_equal(r.text, "s|p|/run/a#b;");
}

static void expect_ini_error(const char *text, unsigned want_line,
			     const char *want_reason)
{
	struct record r;
	unsigned line;
	char err[256] = "";

	assert_int_equal(parse(text, &r, &line, err, sizeof(err)), -EINVAL);
	assert_int_equal(line, want_line);
	if (!strstr(err, want_reason))
		fail_msg("error '%s' lacks '%s'", err, want_reason);
}

static void test_ini_refuses(void **state)
{
	char big[CONF_LINE_MAX + 16];
	struct record r;
	unsigned line;
	char err[256];

	expect_ini_error("[luod]\njust words\n", 2, "expected 'key = value'");
	expect_ini_error("[luod\n", 1, "section header");
	expect_ini_error("\n[luod] x = 1\n", 2, "section header");
	expect_ini_error("[  ]\n", 1, "empty section name");
	expect_ini_error("[s]\n = 1\n", 2, "without a key");
	expect_ini_error("[s]\na = 1\nfail = here\nb = 2\n", 3,
			 "handler refused here");

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[0] = 'k';
	big[1] = '=';
	expect_ini_error(big, 1, "longer than 4096");
	/* Exactly the limit is fine. */
	big[CONF_LINE_MAX] = '\0';
	assert_int_equal(parse(big, &r, &line, err, sizeof(err)), 0);

	/* A NUL: reported on the line it is on, whatever follows. */
	assert_int_equal(ini_parse("[s]\na = 1\nb\0 = 2\n", 15, record_handler,
				   &r, &line, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(line, 3);
	assert_non_null(strstr(err, "NUL byte"));
}

static struct config defaults(void)
{
	return (struct config){
		.socket_path = "/run/luod/liveupdate.sock",
		.timeout_s = 60,
		.max_clients = CONF_MAX_CLIENTS_DEFAULT,
		.max_clients_per_uid = CONF_PER_UID_DEFAULT,
		.reserved_clients = CONF_RESERVED_DEFAULT,
		.idle_timeout_s = CONF_IDLE_TIMEOUT_DEFAULT,
		.request_rate = CONF_REQUEST_RATE_DEFAULT,
		.grace_s = CONF_GRACE_DEFAULT,
		.reboot_mode = REBOOT_DIRECT,
		.log_level = LOG_INFO,
	};
}

static int apply(struct config *cfg, const char *text, char *err, size_t errlen)
{
	return conf_apply_text(cfg, text, strlen(text), "/etc/luod/luod.conf",
			       err, errlen);
}

static void test_conf_all_keys(void **state)
{
	struct config cfg = defaults();
	char err[512] = "";

	assert_int_equal(apply(&cfg,
			       "# luod.conf\n"
			       "[luod]\n"
			       "socket_path = /run/luo/x.sock\n"
			       "timeout = 120\n"
			       "grace_period = 0\n"
			       "max_clients = 1000\n"
			       "max_clients_per_uid = 8\n"
			       "reserved_clients = 32\n"
			       "idle_timeout = 5\n"
			       "request_rate = 250\n"
			       "admin_group = root\n"
			       "reboot_mode = systemd\n"
			       "log_level = debug\n",
			       err, sizeof(err)),
			 0);
	assert_string_equal(cfg.socket_path, "/run/luo/x.sock");
	assert_int_equal(cfg.timeout_s, 120);
	assert_int_equal(cfg.grace_s, 0);
	assert_int_equal(cfg.max_clients, 1000);
	assert_int_equal(cfg.max_clients_per_uid, 8);
	assert_int_equal(cfg.reserved_clients, 32);
	assert_int_equal(cfg.idle_timeout_s, 5);
	assert_int_equal(cfg.request_rate, 250);
	assert_true(cfg.have_admin_gid);
	assert_int_equal(cfg.admin_gid, 0);
	assert_int_equal(cfg.reboot_mode, REBOOT_SYSTEMD);
	assert_int_equal(cfg.log_level, LOG_DEBUG);

	/* The last of two lines wins; an empty admin_group means root only. */
	assert_int_equal(apply(&cfg,
			       "[luod]\nreboot_mode = systemd\n"
			       "reboot_mode = auto\nreboot_mode = direct\nadmin_group =\n"
			       "admin_group = 4242\nadmin_group=\n",
			       err, sizeof(err)),
			 0);
	assert_int_equal(cfg.reboot_mode, REBOOT_DIRECT);
	assert_false(cfg.have_admin_gid);
}

static void test_conf_empty_keeps_defaults(void **state)
{
	struct config cfg = defaults(), want = defaults();
	char err[512] = "";

	assert_int_equal(apply(&cfg, "", err, sizeof(err)), 0);
	assert_int_equal(
		apply(&cfg, "[luod]\n# nothing set\n", err, sizeof(err)), 0);
	assert_string_equal(cfg.socket_path, want.socket_path);
	assert_int_equal(cfg.timeout_s, want.timeout_s);
	assert_int_equal(cfg.max_clients, want.max_clients);
	assert_int_equal(cfg.max_clients_per_uid, want.max_clients_per_uid);
	assert_int_equal(cfg.reserved_clients, want.reserved_clients);
	assert_int_equal(cfg.idle_timeout_s, want.idle_timeout_s);
	assert_int_equal(cfg.request_rate, want.request_rate);
	assert_int_equal(cfg.grace_s, want.grace_s);
	assert_int_equal(cfg.reboot_mode, want.reboot_mode);
	assert_int_equal(cfg.log_level, want.log_level);
	assert_false(cfg.have_admin_gid);
	assert_null(cfg.config_path);
}

/* A refused text stops luod with "FILE:LINE: KEY: reason". */
static void expect_conf_error(const char *text, int want_r,
			      const char *want_prefix, const char *want_reason)
{
	struct config cfg = defaults();
	char err[512] = "";

	assert_int_equal(apply(&cfg, text, err, sizeof(err)), want_r);
	if (strncmp(err, want_prefix, strlen(want_prefix)) != 0)
		fail_msg("error '%s' does not start with '%s'", err,
			 want_prefix);
	if (!strstr(err, want_reason))
		fail_msg("error '%s' lacks '%s'", err, want_reason);
}

static void test_conf_refuses(void **state)
{
	const char *f = "/etc/luod/luod.conf:";
	char line[256];
	const struct {
		const char *line;
		int r;
		const char *reason;
	} bad[] = {
		{ "timeout = 0", -EINVAL,
		  "timeout: '0' is not a whole number of seconds from 1 to 86400" },
		{ "timeout = 86401", -EINVAL, "from 1 to 86400" },
		{ "timeout = -1", -EINVAL, "'-1' is not a whole number" },
		{ "timeout = +5", -EINVAL, "'+5'" },
		{ "timeout = 10s", -EINVAL, "'10s'" },
		{ "timeout =", -EINVAL, "'' is not a whole number" },
		{ "timeout = 99999999999999999999999", -EINVAL,
		  "is not a whole number" },
		{ "grace_period = 2592001", -EINVAL,
		  "grace_period: '2592001' is not a whole number of seconds from 0 to 2592000" },
		{ "max_clients = 0", -EINVAL,
		  "max_clients: '0' is not a whole number from 1 to 65536" },
		{ "max_clients = 65537", -EINVAL, "from 1 to 65536" },
		{ "max_clients_per_uid = 65537", -EINVAL,
		  "max_clients_per_uid: '65537' is not a whole number from 0 to 65536" },
		{ "max_clients_per_uid = -1", -EINVAL, "'-1'" },
		{ "reserved_clients = 65537", -EINVAL,
		  "reserved_clients: '65537' is not a whole number from 0 to 65536" },
		{ "reserved_clients = some", -EINVAL, "'some'" },
		{ "idle_timeout = 86401", -EINVAL,
		  "idle_timeout: '86401' is not a whole number of seconds from 0 to 86400" },
		{ "idle_timeout = 30s", -EINVAL, "'30s'" },
		{ "request_rate = 100001", -EINVAL,
		  "request_rate: '100001' is not a whole number of requests a second from 0 to 100000" },
		{ "request_rate = 1.5", -EINVAL, "'1.5'" },
		{ "idle-timeout = 5", -ENOENT,
		  "max_clients_per_uid, reserved_clients, idle_timeout, request_rate" },
		{ "socket_path = run/luod.sock", -EINVAL,
		  "socket_path: 'run/luod.sock' is not an absolute path" },
		{ "socket_path = /run/luod/"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock",
		  -ENAMETOOLONG, "longer than 107 bytes" },
		{ "admin_group = no-such-group-luod-test", -EINVAL,
		  "admin_group: no group named 'no-such-group-luod-test'; create it" },
		{ "admin_group = 99999999999", -EINVAL, "admin_group:" },
		{ "reboot_mode = kexec", -EINVAL,
		  "reboot_mode: 'kexec' is not 'auto', 'direct' or 'systemd'" },
		{ "reboot_mode = Direct", -EINVAL, "'Direct'" },
		{ "log_level = loud", -EINVAL,
		  "log_level: 'loud' is not one of error, warning, notice, info, debug" },
		{ "grace_perod = 5", -ENOENT,
		  "unknown key 'grace_perod' (luod knows socket_path, timeout, grace_period" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char text[512];

		snprintf(text, sizeof(text), "[luod]\n# a comment\n%s\n",
			 bad[i].line);
		snprintf(line, sizeof(line), "%s3: ", f);
		expect_conf_error(text, bad[i].r, line, bad[i].reason);
	}

	expect_conf_error("timeout = 5\n", -EINVAL, "/etc/luod/luod.conf:1: ",
			  "'timeout' is outside the [luod] section");
	expect_conf_error("[luod]\n[daemon]\ntimeout = 5\n", -EINVAL,
			  "/etc/luod/luod.conf:3: ",
			  "'timeout' is outside the [luod] section, in daemon");
	expect_conf_error("[luod]\ntimeout 5\n", -EINVAL,
			  "/etc/luod/luod.conf:2: ", "expected 'key = value'");
}

static void test_conf_bounds(void **state)
{
	struct config cfg = defaults();
	char err[512];

	assert_int_equal(apply(&cfg, "[luod]\ntimeout=1\nmax_clients=1\n", err,
			       sizeof(err)),
			 0);
	assert_int_equal(cfg.timeout_s, 1);
	assert_int_equal(cfg.max_clients, 1);
	assert_int_equal(apply(&cfg,
			       "[luod]\ntimeout=86400\nmax_clients=65536\n"
			       "grace_period=2592000\ntimeout=007\n",
			       err, sizeof(err)),
			 0);
	assert_int_equal(cfg.timeout_s, 7);
	assert_int_equal(cfg.max_clients, 65536);
	assert_int_equal(cfg.grace_s, 2592000);

	/* 0 turns each fair-share limit off; the top of each range. */
	assert_int_equal(
		apply(&cfg,
		      "[luod]\nmax_clients_per_uid=0\nreserved_clients=0\n"
		      "idle_timeout=0\nrequest_rate=0\n",
		      err, sizeof(err)),
		0);
	assert_int_equal(cfg.max_clients_per_uid, 0);
	assert_int_equal(cfg.reserved_clients, 0);
	assert_int_equal(cfg.idle_timeout_s, 0);
	assert_int_equal(cfg.request_rate, 0);
	assert_int_equal(apply(&cfg,
			       "[luod]\nmax_clients_per_uid=65536\n"
			       "reserved_clients=65536\nidle_timeout=86400\n"
			       "request_rate=100000\n",
			       err, sizeof(err)),
			 0);
	assert_int_equal(cfg.max_clients_per_uid, 65536);
	assert_int_equal(cfg.reserved_clients, 65536);
	assert_int_equal(cfg.idle_timeout_s, 86400);
	assert_int_equal(cfg.request_rate, 100000);
}

/* The command line goes through conf_set too: same checks, same words. */
static void test_conf_set(void **state)
{
	struct config cfg = defaults();
	char err[512];

	assert_int_equal(conf_set(&cfg, "timeout", "30", err, sizeof(err)), 0);
	assert_int_equal(cfg.timeout_s, 30);
	assert_int_equal(conf_set(&cfg, "timeout", "x", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(
		err, "'x' is not a whole number of seconds from 1 to 86400");
	assert_int_equal(conf_set(&cfg, "nope", "1", err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "unknown key 'nope'"));
	assert_int_equal(cfg.timeout_s, 30);
}

static void test_names(void **state)
{
	assert_string_equal(reboot_mode_name(REBOOT_DIRECT), "direct");
	assert_string_equal(reboot_mode_name(REBOOT_SYSTEMD), "systemd");
	assert_string_equal(reboot_mode_name(REBOOT_AUTO), "auto");
	assert_string_equal(log_level_name(LOG_NOTICE), "notice");
	assert_string_equal(log_level_name(LOG_DEBUG), "debug");
	assert_string_equal(log_level_name(LOG_ALERT), "?");
	assert_string_equal(log_level_name(99), "?");
}

static char tmpdir[] = "/tmp/luod-test-config.XXXXXX";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_conf_load(void **state)
{
	struct config cfg = defaults();
	char path[256], err[512] = "";

	/* The default file may be absent: luod then runs on its defaults. */
	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	assert_int_equal(conf_load(&cfg, path, false, err, sizeof(err)), 0);
	assert_null(cfg.config_path);
	/* One named with --config must exist. */
	assert_int_equal(conf_load(&cfg, path, true, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "cannot open"));
	assert_non_null(strstr(err, "missing.conf: No such file"));

	snprintf(path, sizeof(path), "%s/good.conf", tmpdir);
	write_file(path, "[luod]\ntimeout = 9\n");
	assert_int_equal(conf_load(&cfg, path, true, err, sizeof(err)), 0);
	assert_int_equal(cfg.timeout_s, 9);
	assert_string_equal(cfg.config_path, path);

	snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
	write_file(path, "[luod]\n\ntimeout = 9\nreboot_mode = fast\n");
	assert_int_equal(conf_load(&cfg, path, true, err, sizeof(err)),
			 -EINVAL);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_non_null(strstr(err, ":4: reboot_mode: 'fast'"));

	/* A directory is refused with the reason. */
	assert_int_equal(conf_load(&cfg, tmpdir, false, err, sizeof(err)),
			 -EISDIR);
	assert_non_null(strstr(err, "cannot read"));
}

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ini_accepts),
		cmocka_unit_test(test_ini_refuses),
		cmocka_unit_test(test_conf_all_keys),
		cmocka_unit_test(test_conf_empty_keeps_defaults),
		cmocka_unit_test(test_conf_refuses),
		cmocka_unit_test(test_conf_bounds),
		cmocka_unit_test(test_conf_set),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_conf_load),
	};

	return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
