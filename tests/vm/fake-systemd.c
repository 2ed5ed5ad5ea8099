// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fake-systemd: a stand-in for what systemd does for luod.socket and
 * luod.service, for the test guest, which has no systemd. The fd store
 * across `systemctl kexec` (FileDescriptorStorePreserve=yes) is emulated
 * here too. It is not systemd: it follows systemd's documented protocols
 * only as far as luod uses them. The Debian guest runs the real systemd
 * 262 (debian-coexist); this stays for the busybox suite and for what the
 * real one cannot be made to do on demand, such as a failing kexec.
 *
 *   fake-systemd SOCKET LOG -- PROGRAM [ARGS...]
 *
 * What it does:
 *  - luod.socket: binds a listening AF_UNIX stream socket at SOCKET and
 *    passes it as fd 3, LISTEN_FDNAMES=luod.socket.
 *  - sd_notify(3) on $NOTIFY_SOCKET: each message becomes one line of LOG,
 *    its assignments joined by " | ", followed by " [N fds]" when it
 *    carried fds.
 *  - The fd store (FDSTORE=1, FDNAME=X and fds: kept under X, replacing an
 *    earlier X, the new one last; FDSTOREREMOVE=1, FDNAME=X: closed). Every
 *    start of PROGRAM gets the stored fds as fds 4.., in order, with
 *    LISTEN_FDS=1+N and LISTEN_FDNAMES=luod.socket:NAME1:NAME2... $FDSTORE
 *    is the store's limit, 4096.
 *  - `systemctl --no-block kexec`: PROGRAM's $PATH starts with
 *    /run/fake-systemd-PID.bin, whose systemctl script turns exactly these
 *    arguments into SIGUSR1 to fake-systemd (its pid is also in
 *    $FAKE_SYSTEMD_PID) and exits 0; anything else fails with status 1.
 *    fake-systemd stops PROGRAM (SIGTERM, SIGKILL after 10 s), then does
 *    what systemd-shutdown does: opens /dev/liveupdate (waiting up to 5 s
 *    while it is busy), keeps every stored LUO session fd open (so it goes
 *    across), preserves every other stored fd into its own session
 *    "systemd.fdstore" as token 1 + its place in the store, with a memfd at
 *    token 0 listing "fd<TAB>NAME<TAB>TOKEN" and "session<TAB>NAME<TAB>
 *    KERNEL-NAME", and reboots into the kernel the caller loaded with
 *    kexec_file_load(2). Any failure: fake-systemd exits 1 without
 *    rebooting.
 *  - At start, before PROGRAM: if "systemd.fdstore" came through a kexec,
 *    everything it lists is put back into the store, in order, as PID 1
 *    does, and the session is finished; /dev/liveupdate is closed again
 *    for PROGRAM. Anything missing is an error: exit 1 before PROGRAM.
 *  - SIGUSR2: `systemctl restart`: stop PROGRAM and start it again with the
 *    store as it is.
 *
 * Its own lines in LOG start with "fake-systemd: " (errors with
 * "fake-systemd: error: ", also on stderr, as is everything from the
 * kexec on, since LOG is usually on a tmpfs the kexec wipes). When
 * PROGRAM exits by itself, fake-systemd exits with its status, and leaves
 * SOCKET in place as systemd would.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

#include "luo.h"
#include "console.h"
#include "util.h"

#define STORE_MAX 4096
#define STORE_SESSION "systemd.fdstore"
#define RECORDS_HEADER "fake-systemd fdstore 1\n"
#define STOP_TIMEOUT_MS 10000
#define DEVICE_WAIT_MS 5000
/* The kernel's SCM_MAX_FD: no message carries more. */
#define MSG_MAX_FDS 253

struct stored {
	char *name;
	int fd;
};

static struct stored store[STORE_MAX];
static size_t n_store;
static FILE *log_f;
static const char *prog;
static bool say_to_stderr; /* from the kexec on */
static char notify_path[128], bin_dir[128];

_printf_(1, 2) static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("fake-systemd: ", log_f);
	va_start(ap, fmt);
	vfprintf(log_f, fmt, ap);
	va_end(ap);
	fputc('\n', log_f);
	fflush(log_f);
	if (say_to_stderr) {
		fputs("fake-systemd: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
}

/* Returns -1: the callers give up. */
_printf_(1, 2) static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fake-systemd: error: ", log_f);
	vfprintf(log_f, fmt, ap);
	fputc('\n', log_f);
	fflush(log_f);
	va_end(ap);
	va_start(ap, fmt);
	fputs("fake-systemd: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

static int bind_unix(int type, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	char dir[sizeof(sa.sun_path)], *slash;

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	/* As systemd does for ListenStream= (DirectoryMode=0755). */
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

/* systemd's rule for $LISTEN_FDNAMES: printable ASCII without ':'. */
static bool fdname_valid(const char *s)
{
	size_t n = strlen(s);

	if (n > 255)
		return false;
	for (; *s; s++)
		if (*s < ' ' || *s >= 127 || *s == ':')
			return false;
	return true;
}

static size_t store_remove(const char *name)
{
	size_t j = 0, removed = 0;

	for (size_t i = 0; i < n_store; i++) {
		if (streq(store[i].name, name)) {
			close(store[i].fd);
			free(store[i].name);
			removed++;
		} else {
			store[j++] = store[i];
		}
	}
	n_store = j;
	return removed;
}

/* Takes fd; closes it when the store is full. */
static int store_add(const char *name, int fd)
{
	char *n;

	if (n_store == STORE_MAX) {
		close(fd);
		return fail("fd store full (%d): %s dropped", STORE_MAX, name);
	}
	n = strdup(name);
	if (!n) {
		close(fd);
		return fail("out of memory");
	}
	store[n_store++] = (struct stored){ .name = n, .fd = fd };
	return 0;
}

/* The value of KEY= in a notification, or NULL. */
static const char *field(char *const *lines, size_t n, const char *key)
{
	size_t k = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (strncmp(lines[i], key, k) == 0 && lines[i][k] == '=')
			return lines[i] + k + 1;
	return NULL;
}

static void apply_fdstore(char *buf, int *fds, size_t n_fds)
{
	char *lines[64], *save = NULL, *l;
	const char *name;
	size_t n = 0;

	for (l = strtok_r(buf, "\n", &save); l && n < ARRAY_SIZE(lines);
	     l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	name = field(lines, n, "FDNAME");
	if (streq(field(lines, n, "FDSTOREREMOVE"), "1") && name) {
		size_t removed = store_remove(name);

		say("fd store: removed %zu named %s (%zu stored)", removed,
		    name, n_store);
	}
	if (n_fds == 0)
		return;
	if (!streq(field(lines, n, "FDSTORE"), "1")) {
		/* As systemd: fds without FDSTORE=1 are not kept. */
		say("fd store: %zu fds without FDSTORE=1 closed", n_fds);
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		return;
	}
	if (!name)
		name = "stored"; /* systemd's default FDNAME */
	if (!fdname_valid(name)) {
		fail("fd store: invalid FDNAME=%s: %zu fds closed", name,
		     n_fds);
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		return;
	}
	store_remove(name);
	for (size_t i = 0; i < n_fds; i++)
		store_add(name, fds[i]);
	say("fd store: stored %s (%zu stored)", name, n_store);
}

static void read_notification(int nfd)
{
	char buf[4096];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * MSG_MAX_FDS)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	ssize_t n = recvmsg(nfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int fds[MSG_MAX_FDS];
	size_t n_fds = 0;

	if (n < 0)
		return;
	buf[n] = '\0';
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && n_fds < MSG_MAX_FDS; i++)
			memcpy(&fds[n_fds++], CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(int));
	}
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			fputs(" | ", log_f);
		else
			fputc(*p, log_f);
	if (n_fds)
		fprintf(log_f, " [%zu fds]", n_fds);
	fputc('\n', log_f);
	fflush(log_f);
	if (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
		fail("notification truncated: ignored, its fds closed");
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		return;
	}
	apply_fdstore(buf, fds, n_fds);
}

static void read_notifications(int nfd)
{
	for (;;) {
		struct pollfd p = { .fd = nfd, .events = POLLIN };

		if (poll(&p, 1, 0) <= 0)
			return;
		read_notification(nfd);
	}
}

/*
 * The fake systemctl: a script that knows only the one command luod's
 * reboot_mode = systemd runs, and turns it into a signal to this process.
 */
static int write_systemctl(const char *dir)
{
	char path[256];
	FILE *f;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof(path), "%s/systemctl", dir);
	f = fopen(path, "we");
	if (!f)
		return -1;
	fprintf(f,
		"#!/bin/sh\n"
		"# Written by fake-systemd (pid %d): the only systemctl command it emulates.\n"
		"if [ \"$#\" = 2 ] && [ \"$1\" = --no-block ] && [ \"$2\" = kexec ]; then\n"
		"\texec kill -USR1 %d\n"
		"fi\n"
		"echo \"systemctl: fake-systemd emulates only 'systemctl --no-block kexec', not: systemctl $*\" >&2\n"
		"exit 1\n",
		(int)getpid(), (int)getpid());
	if (fclose(f) != 0 || chmod(path, 0755) < 0)
		return -1;
	return 0;
}

/*
 * A full store is more fds than the usual soft limit of 1024, and PROGRAM
 * needs room for all of them too.
 */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = 2 * (STORE_MAX + 64);

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		struct rlimit more = { want, want };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void cleanup(void)
{
	char path[256];

	unlink(notify_path);
	snprintf(path, sizeof(path), "%s/systemctl", bin_dir);
	unlink(path);
	rmdir(bin_dir);
}

static pid_t start_program(int lfd, char **argv)
{
	size_t n = 1 + n_store, len = strlen("luod.socket") + 1;
	pid_t pid;

	for (size_t i = 0; i < n_store; i++)
		len += strlen(store[i].name) + 1;
	pid = fork();
	if (pid < 0) {
		fail("cannot fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		char v[32], *names = malloc(len), *end;
		const char *path = getenv("PATH");
		char *newpath;
		int *tmp = calloc(n, sizeof(int));
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		if (!names || !tmp)
			_exit(127);
		/* Out of the way first, so placing one cannot close another. */
		for (size_t i = 0; i < n; i++) {
			tmp[i] = fcntl(i ? store[i - 1].fd : lfd,
				       F_DUPFD_CLOEXEC, (int)(3 + n));
			if (tmp[i] < 0)
				goto fds_failed;
		}
		for (size_t i = 0; i < n; i++) /* dup2 clears FD_CLOEXEC */
			if (dup2(tmp[i], (int)(3 + i)) < 0)
				goto fds_failed;
		end = stpcpy(names, "luod.socket");
		for (size_t i = 0; i < n_store; i++) {
			*end++ = ':';
			end = stpcpy(end, store[i].name);
		}
		snprintf(v, sizeof(v), "%d", (int)getpid());
		setenv("LISTEN_PID", v, 1);
		snprintf(v, sizeof(v), "%zu", n);
		setenv("LISTEN_FDS", v, 1);
		setenv("LISTEN_FDNAMES", names, 1);
		setenv("NOTIFY_SOCKET", notify_path, 1);
		snprintf(v, sizeof(v), "%d", STORE_MAX);
		setenv("FDSTORE", v, 1);
		snprintf(v, sizeof(v), "%d", (int)getppid());
		setenv("FAKE_SYSTEMD_PID", v, 1);
		if (asprintf(&newpath, "%s:%s", bin_dir,
			     path ? path : "/usr/bin:/bin") < 0)
			_exit(127);
		setenv("PATH", newpath, 1);
		execvp(argv[4], argv + 4);
		fprintf(stderr, "fake-systemd: cannot run %s: %s\n", argv[4],
			strerror(errno));
		_exit(127);
fds_failed:
		fprintf(stderr, "fake-systemd: cannot pass %zu fds to %s: %s\n",
			n, argv[4], strerror(errno));
		_exit(127);
	}
	say("started %s (pid %d) with %zu stored fds", prog, (int)pid, n_store);
	return pid;
}

static void say_status(pid_t pid, int status)
{
	if (WIFEXITED(status))
		say("%s (pid %d) exited with status %d", prog, (int)pid,
		    WEXITSTATUS(status));
	else
		say("%s (pid %d) was killed by signal %d (%s)", prog, (int)pid,
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
}

/*
 * SIGTERM, then SIGKILL after 10 s, as systemd stops a unit. Notifications
 * keep coming while it stops (a service may update its fd store on the
 * way out), so they are read as they arrive. A SIGUSR1 meanwhile sets
 * *kexec.
 */
static void stop_program(pid_t pid, int nfd, int sfd, bool *kexec)
{
	uint64_t deadline = now_mono_us() + STOP_TIMEOUT_MS * 1000ULL;
	bool killed = false;
	int status;

	kill(pid, SIGTERM);
	for (;;) {
		struct pollfd p[2] = { { .fd = nfd, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };
		uint64_t now = now_mono_us();
		int timeout = -1;

		if (!killed)
			timeout = now >= deadline ?
					  0 :
					  (int)((deadline - now) / 1000 + 1);
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN)
			read_notifications(nfd);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				if (si.ssi_signo == SIGUSR1)
					*kexec = true;
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (!killed && now_mono_us() >= deadline) {
			say("%s (pid %d) did not stop within %d s: SIGKILL",
			    prog, (int)pid, STOP_TIMEOUT_MS / 1000);
			kill(pid, SIGKILL);
			killed = true;
		}
	}
	read_notifications(nfd);
	say_status(pid, status);
}

/* The device is exclusive: whoever had it may still be closing it. */
static int open_device(void)
{
	uint64_t start = now_mono_us(), now;

	for (;;) {
		int fd = luo_open_device(NULL);

		now = now_mono_us();
		if (fd != -EBUSY || now >= start + DEVICE_WAIT_MS * 1000ULL) {
			if (now - start >= 50 * 1000)
				say("waited %" PRIu64 " ms for %s to be free",
				    (now - start) / 1000, LUO_DEVICE);
			return fd;
		}
		usleep(50 * 1000);
	}
}

/* systemd-shutdown's part. Returns only on failure. */
static int kexec_with_store(void)
{
	_cleanup_close_ int dev = -1, session = -1, records = -1;
	_cleanup_free_ char *text = NULL;
	size_t text_len = 0, n_sessions = 0;
	FILE *f;
	int r;

	dev = open_device();
	if (dev < 0)
		return fail("kexec: cannot open %s: %s", LUO_DEVICE,
			    strerror(-dev));
	session = luo_create_session(dev, STORE_SESSION);
	if (session < 0)
		return fail("kexec: cannot create LUO session %s: %s",
			    STORE_SESSION, strerror(-session));
	f = open_memstream(&text, &text_len);
	if (!f)
		return fail("out of memory");
	fputs(RECORDS_HEADER, f);
	for (size_t i = 0; i < n_store; i++) {
		char kname[LIVEUPDATE_SESSION_NAME_LENGTH];

		/* A whole session goes across by staying open. */
		if (luo_get_name(store[i].fd, kname) == 0) {
			if (strchr(kname, '\n')) {
				fclose(f);
				return fail(
					"kexec: session %s has a newline in its name",
					store[i].name);
			}
			fprintf(f, "session\t%s\t%s\n", store[i].name, kname);
			say("kexec: %s is LUO session %s: kept open",
			    store[i].name, kname);
			n_sessions++;
			continue;
		}
		r = luo_preserve_fd(session, store[i].fd, i + 1);
		if (r < 0) {
			fclose(f);
			return fail("kexec: cannot preserve %s into %s: %s",
				    store[i].name, STORE_SESSION, strerror(-r));
		}
		fprintf(f, "fd\t%s\t%zu\n", store[i].name, i + 1);
		say("kexec: %s preserved in %s as token %zu", store[i].name,
		    STORE_SESSION, i + 1);
	}
	if (fclose(f) != 0)
		return fail("out of memory");
	records = memfd_create("fake-systemd-fdstore", MFD_CLOEXEC);
	if (records < 0)
		return fail("kexec: memfd_create: %s", strerror(errno));
	r = write_all(records, text, text_len);
	if (r >= 0)
		r = luo_preserve_fd(session, records, 0);
	if (r < 0)
		return fail("kexec: cannot preserve the list of names: %s",
			    strerror(-r));
	say("kexec: %zu stored fds (%zu sessions) go across; rebooting",
	    n_store, n_sessions);
	drain_console();
	sync();
	reboot(RB_KEXEC);
	/* LUO aborts the reboot when a session fails to serialize. */
	return fail(
		"kexec: reboot(RB_KEXEC): %s (was a kernel loaded? see dmesg)",
		strerror(errno));
}

static int restore_one(int dev, int session, char *line)
{
	char *kind = line, *name, *value;
	int fd;

	name = strchr(kind, '\t');
	value = name ? strchr(name + 1, '\t') : NULL;
	if (!value)
		return fail("restore: malformed record '%s'", line);
	*name++ = '\0';
	*value++ = '\0';
	if (streq(kind, "fd")) {
		char *end;
		unsigned long long token;

		errno = 0;
		token = strtoull(value, &end, 10);
		if (errno || *end || end == value)
			return fail("restore: malformed token '%s'", value);
		fd = luo_retrieve_fd(session, token);
		if (fd < 0)
			return fail("restore: %s (token %llu of %s): %s", name,
				    token, STORE_SESSION, strerror(-fd));
	} else if (streq(kind, "session")) {
		fd = luo_retrieve_session(dev, value);
		if (fd < 0)
			return fail("restore: %s (LUO session %s): %s", name,
				    value, strerror(-fd));
	} else {
		return fail("restore: unknown record kind '%s'", kind);
	}
	return store_add(name, fd);
}

/*
 * PID 1's part after the kexec. Everything in the list is expected back:
 * a session or fd that did not come through is an error, and so is a
 * store that comes back only in part.
 */
static int restore_store(void)
{
	_cleanup_close_ int dev = -1, session = -1, records = -1;
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL;
	size_t len;
	int r;

	dev = open_device();
	if (dev == -ENOENT || dev == -ENODEV || dev == -ENXIO)
		return 0; /* no LUO in this kernel */
	if (dev < 0)
		return fail("restore: cannot open %s: %s", LUO_DEVICE,
			    strerror(-dev));
	session = luo_retrieve_session(dev, STORE_SESSION);
	if (session == -ENOENT)
		return 0;
	if (session < 0)
		return fail("restore: cannot retrieve LUO session %s: %s",
			    STORE_SESSION, strerror(-session));
	records = luo_retrieve_fd(session, 0);
	if (records < 0)
		return fail(
			"restore: cannot retrieve the list of names (token 0 of %s): %s",
			STORE_SESSION, strerror(-records));
	r = read_all_fd(records, 1 << 20, &text, &len);
	if (r < 0)
		return fail("restore: cannot read the list of names: %s",
			    strerror(-r));
	if (strncmp(text, RECORDS_HEADER, strlen(RECORDS_HEADER)) != 0)
		return fail("restore: the list of names has no '%.*s' header",
			    (int)strlen(RECORDS_HEADER) - 1, RECORDS_HEADER);
	for (line = strtok_r(text + strlen(RECORDS_HEADER), "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (restore_one(dev, session, line) < 0)
			return -1;
	r = luo_finish(session);
	if (r < 0)
		return fail("restore: cannot finish %s: %s", STORE_SESSION,
			    strerror(-r));
	say("restored %zu fds from the last boot", n_store);
	return 0;
}

int main(int argc, char **argv)
{
	int lfd, nfd, sfd, status = 0;
	bool exited = false;
	sigset_t mask;
	pid_t pid;

	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr,
			"usage: fake-systemd SOCKET LOG -- PROGRAM [ARGS...]\n");
		return 2;
	}
	prog = strrchr(argv[4], '/') ? strrchr(argv[4], '/') + 1 : argv[4];
	log_f = fopen(argv[2], "ae");
	lfd = bind_unix(SOCK_STREAM, argv[1]);
	snprintf(notify_path, sizeof(notify_path), "/run/fake-systemd-%d",
		 (int)getpid());
	snprintf(bin_dir, sizeof(bin_dir), "/run/fake-systemd-%d.bin",
		 (int)getpid());
	nfd = bind_unix(SOCK_DGRAM, notify_path);
	if (!log_f || lfd < 0 || nfd < 0 || chmod(argv[1], 0666) < 0 ||
	    listen(lfd, 128) < 0) {
		fprintf(stderr, "fake-systemd: cannot set up %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	atexit(cleanup);
	if (write_systemctl(bin_dir) < 0) {
		fail("cannot write %s/systemctl: %s", bin_dir, strerror(errno));
		return 1;
	}
	raise_nofile();

	/* Before PROGRAM: the device is exclusive, and PROGRAM wants it. */
	if (restore_store() < 0)
		return 1;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		fail("signalfd: %s", strerror(errno));
		return 1;
	}
	signal(SIGTERM, SIG_IGN); /* the scenario signals the program */

	pid = start_program(lfd, argv);
	if (pid < 0)
		return 1;
	while (!exited) {
		struct pollfd p[2] = { { .fd = nfd, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };
		struct signalfd_siginfo si;
		bool kexec = false, restart = false;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll: %s", strerror(errno));
			return 1;
		}
		/* What PROGRAM sent before it signalled comes first. */
		read_notifications(nfd);
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGUSR1)
				kexec = true;
			else if (si.ssi_signo == SIGUSR2)
				restart = true;
		}
		if (!kexec && !restart) {
			exited = waitpid(pid, &status, WNOHANG) == pid;
			continue;
		}
		say_to_stderr = kexec;
		say("%s: stopping %s (pid %d)",
		    kexec ? "systemctl kexec" : "systemctl restart", prog,
		    (int)pid);
		stop_program(pid, nfd, sfd, &kexec);
		if (kexec) {
			kexec_with_store();
			return 1;
		}
		pid = start_program(lfd, argv);
		if (pid < 0)
			return 1;
	}
	read_notifications(nfd); /* what it sent right before it exited */
	say_status(pid, status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
