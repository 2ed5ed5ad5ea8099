// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod and its service manager, with a fake one: a datagram socket as
 * $NOTIFY_SOCKET, and fds placed at 3.. with $LISTEN_FDS. Built twice, with
 * libsystemd (when found) and with luod's own fallback, which must agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "notify.h"

static char tmpdir[] = "/tmp/luod-test-notify.XXXXXX";
static char sock_path[100];
static int manager = -1; /* the fake service manager's socket */

/* The next message the fake manager got; its fd (if any) into *fd. */
static char *receive(int *fd)
{
	static char buf[4096];
	char control[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control,
			     .msg_controllen = sizeof(control) };
	ssize_t n = recvmsg(manager, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (fd)
		*fd = -1;
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		assert_int_equal(cm->cmsg_len, CMSG_LEN(sizeof(int)));
		assert_non_null(fd);
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	}
	return buf;
}

static void test_outside_systemd(void **state)
{
	int fd = memfd_create("x", MFD_CLOEXEC);

	unsetenv("NOTIFY_SOCKET");
	unsetenv("FDSTORE");
	assert_int_equal(notify_ready("serving"), 0);
	assert_int_equal(notify_status("idle"), 0);
	assert_int_equal(notify_stopping("bye"), 0);
	assert_int_equal(notify_fdstore_push("luod-manifest", fd), 0);
	assert_int_equal(notify_fdstore_remove("luod-manifest"), 0);
	assert_false(notify_fdstore_enabled());
	/* A bad name is refused even then: it is a bug in luod. */
	assert_int_equal(notify_fdstore_push("a:b", fd), -EINVAL);
	close(fd);
}

static void check_messages(void)
{
	struct stat a, b;
	int fd, got;

	assert_int_equal(notify_ready("serving %s: generation %d",
				      "/run/luod/liveupdate.sock", 3),
			 1);
	assert_string_equal(
		receive(NULL),
		"READY=1\nSTATUS=serving /run/luod/liveupdate.sock: generation 3");

	/* A newline in the text must not start a new assignment. */
	assert_int_equal(notify_status("update 1\nREADY=1"), 1);
	assert_string_equal(receive(NULL), "STATUS=update 1 READY=1");

	assert_int_equal(notify_stopping("shutting down"), 1);
	assert_string_equal(receive(NULL), "STOPPING=1\nSTATUS=shutting down");

	fd = memfd_create("luod-manifest", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(notify_fdstore_push("luod-manifest", fd), 1);
	assert_string_equal(receive(&got), "FDSTORE=1\nFDNAME=luod-manifest");
	assert_true(got >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(got, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(got);

	assert_int_equal(notify_fdstore_remove("luod-manifest"), 1);
	assert_string_equal(receive(NULL),
			    "FDSTOREREMOVE=1\nFDNAME=luod-manifest");

	assert_int_equal(notify_fdstore_push("", fd), -EINVAL);
	assert_int_equal(notify_fdstore_push("has space", fd), -EINVAL);
	assert_int_equal(notify_fdstore_push("a:b", fd), -EINVAL);
	assert_int_equal(notify_fdstore_push("ok", -1), -EINVAL);
	assert_int_equal(notify_fdstore_remove("a:b"), -EINVAL);
	assert_null(receive(NULL));
	close(fd);
}

static void test_messages(void **state)
{
	setenv("NOTIFY_SOCKET", sock_path, 1);
	check_messages();
}

static void test_messages_abstract(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int saved = manager;
	char name[64];

	snprintf(name, sizeof(name), "@luod-test-notify-%d", (int)getpid());
	manager = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(manager >= 0);
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	assert_int_equal(
		bind(manager, (struct sockaddr *)&sa,
		     (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				 strlen(name))),
		0);
	setenv("NOTIFY_SOCKET", name, 1);
	check_messages();
	close(manager);
	manager = saved;
}

static void test_fdstore_enabled(void **state)
{
	setenv("NOTIFY_SOCKET", sock_path, 1);
	unsetenv("FDSTORE");
	assert_false(notify_fdstore_enabled());
	setenv("FDSTORE", "0", 1);
	assert_false(notify_fdstore_enabled());
	setenv("FDSTORE", "1024", 1);
	assert_true(notify_fdstore_enabled());
	unsetenv("NOTIFY_SOCKET");
	assert_false(notify_fdstore_enabled());
	unsetenv("FDSTORE");
}

static void test_session_fdname(void **state)
{
	char buf[FDNAME_MAX + 1];

	assert_int_equal(
		notify_session_fdname("luod.7.vm1.ram", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "luod-session.luod.7.vm1.ram");
	/* Client ids may hold ':', which FDNAME= may not. */
	assert_int_equal(notify_session_fdname("luod.8.host:vm2.ram", buf,
					       sizeof(buf)),
			 0);
	assert_string_equal(buf, "luod-session.luod.8.host_vm2.ram");
	assert_int_equal(notify_session_fdname("luod.9.x", buf, 10),
			 -ENAMETOOLONG);
}

/* Puts fds[i] at 3 + i, as a service manager would. */
static void place_fds(const int *fds, int n)
{
	int high[8];

	for (int i = 0; i < n; i++) {
		high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
		assert_true(high[i] >= 100);
		close(fds[i]);
	}
	for (int i = 0; i < n; i++) {
		assert_int_equal(dup2(high[i], 3 + i), 3 + i);
		close(high[i]);
	}
}

static int listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static bool is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void set_listen_env(pid_t pid, int n, const char *names)
{
	char v[32];

	snprintf(v, sizeof(v), "%d", (int)pid);
	setenv("LISTEN_PID", v, 1);
	snprintf(v, sizeof(v), "%d", n);
	setenv("LISTEN_FDS", v, 1);
	if (names)
		setenv("LISTEN_FDNAMES", names, 1);
	else
		unsetenv("LISTEN_FDNAMES");
}

static void test_listen_fds(void **state)
{
	char path[100], got[128], name[FDNAME_MAX + 1];
	int fds[4], dgram[2];

	snprintf(path, sizeof(path), "%s/luod.sock", tmpdir);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram), 0);
	close(dgram[1]);
	fds[0] = memfd_create("manifest", 0);
	fds[1] = dgram[0]; /* a Unix socket, but no listener */
	fds[2] = listener(path);
	fds[3] = memfd_create("session", 0);
	place_fds(fds, 4);
	set_listen_env(
		getpid(), 4,
		"luod-manifest:stray:luod.socket:luod-session.luod.1.a.b");

	assert_int_equal(listen_fds_collect(), 4);
	/* Taken over: no child of luod may inherit them. */
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDNAMES"));
	for (int fd = 3; fd < 7; fd++)
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

	assert_int_equal(listen_fds_take_listener(got, sizeof(got)), 5);
	assert_string_equal(got, path);
	assert_int_equal(listen_fds_take_listener(got, sizeof(got)), -ENOENT);
	assert_int_equal(listen_fds_take("luod-manifest"), 3);
	assert_int_equal(listen_fds_take("luod-manifest"), -ENOENT);
	assert_int_equal(listen_fds_take_prefix(FDNAME_SESSION_PREFIX, name,
						sizeof(name)),
			 6);
	assert_string_equal(name, "luod-session.luod.1.a.b");
	assert_int_equal(listen_fds_take_prefix(FDNAME_SESSION_PREFIX, name,
						sizeof(name)),
			 -ENOENT);

	/* "stray" was taken by nobody: closed with a warning. */
	assert_true(is_open(4));
	listen_fds_close_rest();
	assert_false(is_open(4));
	assert_int_equal(listen_fds_take("stray"), -ENOENT);
	for (int fd = 3; fd < 7; fd++)
		if (fd != 4)
			close(fd);
	unlink(path);
}

static void test_listen_fds_unnamed(void **state)
{
	int fds[1] = { memfd_create("x", 0) };

	place_fds(fds, 1);
	set_listen_env(getpid(), 1, NULL);
	assert_int_equal(listen_fds_collect(), 1);
	assert_int_equal(listen_fds_take("unknown"), 3);
	close(3);
	listen_fds_close_rest();
}

static void test_listen_fds_not_ours(void **state)
{
	int fds[1] = { memfd_create("x", 0) };

	/* Meant for another process (LISTEN_PID): not taken, not closed. */
	place_fds(fds, 1);
	set_listen_env(getpid() + 1, 1, "luod-manifest");
	assert_int_equal(listen_fds_collect(), 0);
	assert_int_equal(listen_fds_take("luod-manifest"), -ENOENT);
	assert_true(is_open(3));
	assert_null(getenv("LISTEN_FDS"));
	close(3);

	/* Nothing passed at all. */
	assert_int_equal(listen_fds_collect(), 0);
	listen_fds_close_rest();
}

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/notify", tmpdir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	manager = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (manager < 0 ||
	    bind(manager, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	/* Out of the way of the fds the tests place at 3.. */
	fd = fcntl(manager, F_DUPFD_CLOEXEC, 200);
	close(manager);
	manager = fd;
	return manager < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	unlink(sock_path);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outside_systemd),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_messages_abstract),
		cmocka_unit_test(test_fdstore_enabled),
		cmocka_unit_test(test_session_fdname),
		cmocka_unit_test(test_listen_fds),
		cmocka_unit_test(test_listen_fds_unnamed),
		cmocka_unit_test(test_listen_fds_not_ours),
	};

	return cmocka_run_group_tests_name(NOTIFY_TEST_NAME, tests, setup,
					   teardown);
}
