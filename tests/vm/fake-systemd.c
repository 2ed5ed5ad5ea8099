// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fake-systemd: the two things systemd does for luod.service and
 * luod.socket, for a guest that has no systemd: it creates the listening
 * socket and passes it as fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=luod.socket),
 * and it receives sd_notify(3) messages on $NOTIFY_SOCKET.
 *
 *   fake-systemd SOCKET LOG -- PROGRAM [ARGS...]
 *
 * Each notification becomes one line of LOG, its assignments joined by
 * " | ", followed by " [N fds]" when it carried fds. fake-systemd exits with
 * PROGRAM's exit status, and leaves SOCKET in place as systemd would.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "util.h"

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

static void log_message(int nfd, FILE *log)
{
	char buf[4096], control[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control,
			     .msg_controllen = sizeof(control) };
	ssize_t n = recvmsg(nfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	size_t fds = 0;

	if (n < 0)
		return;
	buf[n] = '\0';
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		fds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < fds; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(fd));
			close(fd);
		}
	}
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			fputs(" | ", log);
		else
			fputc(*p, log);
	if (fds)
		fprintf(log, " [%zu fds]", fds);
	fputc('\n', log);
	fflush(log);
}

int main(int argc, char **argv)
{
	char notify_path[128];
	int lfd, nfd, status;
	FILE *log;
	pid_t pid;

	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr,
			"usage: fake-systemd SOCKET LOG -- PROGRAM [ARGS...]\n");
		return 2;
	}
	log = fopen(argv[2], "a");
	lfd = bind_unix(SOCK_STREAM, argv[1]);
	snprintf(notify_path, sizeof(notify_path), "/run/fake-systemd-%d",
		 (int)getpid());
	nfd = bind_unix(SOCK_DGRAM, notify_path);
	if (!log || lfd < 0 || nfd < 0 || chmod(argv[1], 0666) < 0 ||
	    listen(lfd, 128) < 0) {
		fprintf(stderr, "fake-systemd: cannot set up %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}

	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		char v[32];

		if (dup2(lfd, 3) < 0) /* dup2 clears FD_CLOEXEC on 3 */
			_exit(127);
		snprintf(v, sizeof(v), "%d", (int)getpid());
		setenv("LISTEN_PID", v, 1);
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_FDNAMES", "luod.socket", 1);
		setenv("NOTIFY_SOCKET", notify_path, 1);
		setenv("FDSTORE", "16", 1);
		execvp(argv[4], argv + 4);
		fprintf(stderr, "fake-systemd: cannot run %s: %s\n", argv[4],
			strerror(errno));
		_exit(127);
	}
	close(lfd);
	signal(SIGTERM, SIG_IGN); /* the scenario signals the program */
	for (;;) {
		struct pollfd p = { .fd = nfd, .events = POLLIN };

		if (poll(&p, 1, 100) > 0)
			log_message(nfd, log);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	while (1) { /* what it sent right before it exited */
		struct pollfd p = { .fd = nfd, .events = POLLIN };

		if (poll(&p, 1, 0) <= 0)
			break;
		log_message(nfd, log);
	}
	unlink(notify_path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
