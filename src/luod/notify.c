// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * sd_notify(3) and sd_listen_fds(3) for luod. Both protocols are small and
 * documented as stable, so a build without libsystemd speaks them itself:
 * luod must run under Type=notify and luod.socket either way.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "fdmsg.h"
#include "config.h"
#include "log.h"
#include "notify.h"

#include <json-c/json.h>

#if HAVE_LIBSYSTEMD && !defined(LUOD_NO_LIBSYSTEMD)
#define USE_LIBSYSTEMD 1
#include <systemd/sd-daemon.h>
#else
#define USE_LIBSYSTEMD 0
#endif

#define LISTEN_FDS_START 3

#if USE_LIBSYSTEMD
static int notify_send(const char *msg, const int *fds, size_t n_fds)
{
	return sd_pid_notify_with_fds(0, 0, msg, fds, (unsigned)n_fds);
}
#else
static int notify_send(const char *msg, const int *fds, size_t n_fds)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	ssize_t n;
	size_t plen;

	if (!e || !*e)
		return 0;
	/* Newer systemd also offers vsock:...; only libsystemd speaks it. */
	if (e[0] != '/' && e[0] != '@')
		return -EAFNOSUPPORT;
	plen = strlen(e);
	if (plen >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, e, plen);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				plen)) < 0)
		return -errno;
	n = fdmsg_send(fd, msg, strlen(msg), fds, n_fds, 0);
	return n < 0 ? (int)n : 1;
}
#endif

_printf_(2, 0) static int notify_v(const char *head, const char *fmt,
				   va_list ap)
{
	_cleanup_free_ char *text = NULL, *msg = NULL;

	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	if (vasprintf(&text, fmt, ap) < 0)
		return -ENOMEM;
	/* One STATUS= line: a newline would start another assignment. */
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (asprintf(&msg, "%sSTATUS=%s", head, text) < 0)
		return -ENOMEM;
	return notify_send(msg, NULL, 0);
}

int notify_ready(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = notify_v("READY=1\n", fmt, ap);
	va_end(ap);
	if (r < 0)
		log_error(
			"cannot tell the service manager that luod is ready (NOTIFY_SOCKET=%s: %s), so systemd will "
			"time the start out; check that luod.service has NotifyAccess=main (see luod(8), SYSTEMD)",
			getenv("NOTIFY_SOCKET"), strerror(-r));
	return r;
}

int notify_status(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = notify_v("", fmt, ap);
	va_end(ap);
	if (r < 0)
		log_debug("cannot send STATUS= to the service manager: %s",
			  strerror(-r));
	return r;
}

int notify_stopping(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = notify_v("STOPPING=1\n", fmt, ap);
	va_end(ap);
	return r;
}

bool notify_fdstore_enabled(void)
{
	const char *e = getenv("FDSTORE");

	/* systemd >= 254 sets $FDSTORE to FileDescriptorStoreMax=. */
	return getenv("NOTIFY_SOCKET") && e && atoi(e) > 0;
}

int systemd_version(void)
{
	static int v; /* 0: not asked yet */
	FILE *f;

	if (v)
		return v;
	if (!getenv("NOTIFY_SOCKET"))
		return v = -ENOENT;
	f = popen("systemctl --version 2>/dev/null", "re");
	if (!f)
		return -errno;
	if (fscanf(f, "systemd %d", &v) != 1 || v <= 0)
		v = -ENOENT;
	while (fgetc(f) != EOF) /* systemctl must not die of SIGPIPE */
		;
	pclose(f);
	return v;
}

/*
 * Of the fds in unit's store, those systemd-shutdown can carry across the
 * kexec: memfds (one LUO gave back reads "/ (deleted)") and LUO sessions.
 * journald's sockets, say, are lost in either reboot mode. Without
 * systemd-analyze, every fd counts.
 */
static int unit_carried_fds(const char *unit, unsigned stored)
{
	char cmd[600];
	struct json_object *fds;
	FILE *f;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "systemd-analyze fdstore --json=short '%s' 2>/dev/null", unit);
	f = popen(cmd, "re");
	if (!f)
		return (int)stored;
	fds = json_object_from_fd(fileno(f)); /* reads to the end */
	if (pclose(f) != 0 || !json_object_is_type(fds, json_type_array)) {
		json_object_put(fds);
		return (int)stored;
	}
	for (size_t i = 0; i < json_object_array_length(fds); i++) {
		struct json_object *path;
		const char *p;

		if (!json_object_object_get_ex(json_object_array_get_idx(fds, i), "path", &path))
			continue;
		p = json_object_get_string(path);
		n += p && (!strncmp(p, "/memfd:", 7) || streq(p, "/ (deleted)") ||
			   !strncmp(p, "anon_inode:[luo_session]", 24));
	}
	json_object_put(fds);
	return n;
}

int systemd_preserved_units(char *buf, size_t len)
{
	FILE *f = popen("systemctl show -p Id -p FileDescriptorStorePreserve "
			"-p NFileDescriptorStore '*.service' 2>/dev/null",
			"re");
	char line[512], id[512] = "";
	bool preserve = false;
	unsigned n_fds = 0;
	size_t used = 0;
	int n = 0;

	if (!f)
		return -errno;
	buf[0] = '\0';
	/* Blocks of KEY=VALUE lines, one per unit, a blank line after each. */
	for (bool more = true; more;) {
		more = fgets(line, sizeof(line), f) != NULL;
		line[strcspn(line, "\n")] = '\0';
		if (more && line[0]) {
			if (!strncmp(line, "Id=", 3))
				snprintf(id, sizeof(id), "%s", line + 3);
			else if (!strncmp(line, "FileDescriptorStorePreserve=", 28))
				preserve = streq(line + 28, "yes");
			else if (!strncmp(line, "NFileDescriptorStore=", 21))
				n_fds = (unsigned)atoi(line + 21);
			continue;
		}
		if (id[0] && preserve && n_fds && !streq(id, "luod.service") &&
		    (n_fds = (unsigned)unit_carried_fds(id, n_fds)) > 0) {
			if (used < len)
				used += (size_t)snprintf(buf + used, len - used,
							 "%s%s (%u fd%s)",
							 n ? ", " : "", id, n_fds,
							 n_fds == 1 ? "" : "s");
			n++;
		}
		id[0] = '\0';
		preserve = false;
		n_fds = 0;
	}
	pclose(f);
	return n;
}

static bool fdname_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > FDNAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (*p < 0x21 || *p > 0x7e || *p == ':')
			return false;
	return true;
}

int notify_fdstore_push(const char *name, int fd)
{
	_cleanup_free_ char *msg = NULL;

	if (!fdname_valid(name) || fd < 0)
		return -EINVAL;
	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	if (asprintf(&msg, "FDSTORE=1\nFDNAME=%s", name) < 0)
		return -ENOMEM;
	return notify_send(msg, &fd, 1);
}

int notify_fdstore_remove(const char *name)
{
	_cleanup_free_ char *msg = NULL;

	if (!fdname_valid(name))
		return -EINVAL;
	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	if (asprintf(&msg, "FDSTOREREMOVE=1\nFDNAME=%s", name) < 0)
		return -ENOMEM;
	return notify_send(msg, NULL, 0);
}

int notify_session_fdname(const char *kernel_name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", FDNAME_SESSION_PREFIX, kernel_name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	for (char *p = buf; *p; p++)
		if (*p == ':')
			*p = '_';
	return fdname_valid(buf) ? 0 : -EINVAL;
}

/* The fds passed in at start; a taken one is -1. */
static int *passed;
static char **passed_names;
static size_t n_passed;

#if USE_LIBSYSTEMD
static int listen_fds_get(char ***names)
{
	return sd_listen_fds_with_names(1, names);
}
#else
/* The sd_listen_fds(3) protocol: fds 3.. for $LISTEN_PID only. */
static int listen_fds_get(char ***names)
{
	const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");
	const char *fdnames = getenv("LISTEN_FDNAMES");
	_cleanup_free_ char *copy = NULL;
	char **v = NULL, *save = NULL, *tok;
	unsigned long n, p;
	char *end;
	int r = 0;

	*names = NULL;
	if (!pid || !nfds)
		goto out;
	errno = 0;
	p = strtoul(pid, &end, 10);
	if (errno || *end || p != (unsigned long)getpid())
		goto out;
	n = strtoul(nfds, &end, 10);
	if (errno || *end || n > 4096) {
		r = -EINVAL;
		goto out;
	}
	if (n == 0)
		goto out;
	v = calloc(n + 1, sizeof(*v));
	if (!v) {
		r = -ENOMEM;
		goto out;
	}
	copy = fdnames ? strdup(fdnames) : NULL;
	tok = copy ? strtok_r(copy, ":", &save) : NULL;
	for (unsigned long i = 0; i < n; i++) {
		int fd = LISTEN_FDS_START + (int)i;

		v[i] = strdup(tok ? tok : "unknown");
		if (!v[i]) {
			r = -ENOMEM;
			goto out;
		}
		if (tok)
			tok = strtok_r(NULL, ":", &save);
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			r = -errno;
			goto out;
		}
	}
	*names = take_ptr(v);
	r = (int)n;
out:
	if (v) {
		for (char **q = v; *q; q++)
			free(*q);
		free(v);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}
#endif

int listen_fds_collect(void)
{
	char **names = NULL;
	int n = listen_fds_get(&names);

	if (n <= 0) {
		free(names);
		if (n < 0)
			return log_errno(
				n,
				"cannot take the fds the service manager passed in (LISTEN_FDS)");
		return 0;
	}
	passed = calloc((size_t)n, sizeof(*passed));
	if (!passed) {
		for (int i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		passed[i] = LISTEN_FDS_START + i;
		log_debug("service manager passed fd %d named %s", passed[i],
			  names && names[i] ? names[i] : "unknown");
	}
	passed_names = names;
	n_passed = (size_t)n;
	return n;
}

static const char *passed_name(size_t i)
{
	return passed_names && passed_names[i] ? passed_names[i] : "unknown";
}

int listen_fds_take(const char *name)
{
	for (size_t i = 0; i < n_passed; i++)
		if (passed[i] >= 0 && streq(passed_name(i), name))
			return take_fd(&passed[i]);
	return -ENOENT;
}

int listen_fds_take_prefix(const char *prefix, char *buf, size_t len)
{
	for (size_t i = 0; i < n_passed; i++) {
		const char *n = passed_name(i);

		if (passed[i] < 0 || strncmp(n, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(buf, len, "%s", n);
		return take_fd(&passed[i]);
	}
	return -ENOENT;
}

static bool is_unix_listener(int fd, char *path, size_t len)
{
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	int v;
	socklen_t vl = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &vl) < 0 || v != AF_UNIX)
		return false;
	vl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl) < 0 ||
	    v != SOCK_STREAM)
		return false;
	vl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) < 0 || !v)
		return false;
	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0)
		return false;
	if (salen <= offsetof(struct sockaddr_un, sun_path) ||
	    sa.sun_path[0] == '\0')
		snprintf(path, len, "(abstract or unnamed socket)");
	else
		snprintf(path, len, "%.*s",
			 (int)(salen - offsetof(struct sockaddr_un, sun_path)),
			 sa.sun_path);
	return true;
}

int listen_fds_take_listener(char *path, size_t len)
{
	for (size_t i = 0; i < n_passed; i++)
		if (passed[i] >= 0 && is_unix_listener(passed[i], path, len))
			return take_fd(&passed[i]);
	return -ENOENT;
}

void listen_fds_close_rest(void)
{
	for (size_t i = 0; i < n_passed; i++) {
		if (passed[i] >= 0) {
			log_warning(
				"closing fd %d named '%s' from the service manager: luod does not know it "
				"(the service manager keeps its own copy; FDSTOREREMOVE or a stop of luod.service "
				"drops that)",
				passed[i], passed_name(i));
			passed[i] = safe_close(passed[i]);
		}
		if (passed_names)
			free(passed_names[i]);
	}
	free(passed);
	free(passed_names);
	passed = NULL;
	passed_names = NULL;
	n_passed = 0;
}

/* systemctl's last line of output: its reason, such as "Failed to start
 * kexec.target: Unit kexec.target is masked." */
static void last_line(int fd, char *msg, size_t len)
{
	char buf[2048], *end, *start;
	size_t n = 0;
	ssize_t r;

	while ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0 ||
	       (r < 0 && errno == EINTR)) {
		n += r > 0 ? (size_t)r : 0;
		if (n == sizeof(buf) - 1) { /* keep the tail */
			memmove(buf, buf + n / 2, n - n / 2);
			n -= n / 2;
		}
	}
	buf[n] = '\0';
	end = buf + n;
	while (end > buf && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(buf, '\n');
	snprintf(msg, len, "%s", start ? start + 1 : buf);
}

/*
 * systemctl's own message can hide the cause: with kexec.target masked,
 * systemd 262 says only "Call to Reboot failed: Access denied". So the
 * target's load state is added when it is not "loaded".
 */
static void kexec_target_state(char *msg, size_t len)
{
	char st[64] = "";
	FILE *f = popen(
		"systemctl show -p LoadState --value kexec.target 2>/dev/null",
		"re");
	size_t n;

	if (!f)
		return;
	if (!fgets(st, sizeof(st), f))
		st[0] = '\0';
	while (fgetc(f) != EOF) /* systemctl must not die of SIGPIPE */
		;
	pclose(f);
	st[strcspn(st, "\n")] = '\0';
	if (!st[0] || streq(st, "loaded"))
		return;
	n = strlen(msg);
	snprintf(msg + n, len - n, "%skexec.target is %s", n ? "; " : "", st);
}

int systemd_kexec(char *msg, size_t len)
{
	_cleanup_close_ int rd = -1;
	int status, p[2];
	pid_t pid;

	msg[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	rd = p[0];
	pid = fork();
	if (pid < 0) {
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		sigset_t none;

		/* luod blocks SIGTERM for its signalfd; systemctl must not. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		execlp("systemctl", "systemctl", "--no-block", "kexec",
		       (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	last_line(rd, msg, len);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		snprintf(
			msg, len,
			"cannot run systemctl: reboot_mode = systemd needs systemd; install it or set reboot_mode = direct");
		return -ENOENT;
	}
	kexec_target_state(msg, len);
	if (!msg[0])
		snprintf(msg, len, "systemctl %s %d without a message",
			 WIFEXITED(status) ? "exited with status" :
					     "was killed by signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) :
					     WTERMSIG(status));
	return -EIO;
}
