// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod's side of luod-keeper (see luod-keeper.c): every session fd luod
 * holds is also held there, so luod's death closes none of them. It knows
 * fds and kernel names, not sessions: what the keeper hands back goes to
 * the caller's adopt function, and a keeper lost is reported through
 * keeper_take_lost(), for the session table to hand a new one everything.
 */
#include <fcntl.h>
#include <libgen.h>
#include <spawn.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "config.h"
#include "daemon.h"
#include "fdmsg.h"
#include "log.h"
#include "luo.h"

extern char **environ;

static int keeper_sock = -1;
static pid_t keeper_pid; /* when this luod started it */
static char lost[96]; /* how the keeper was lost, until keeper_take_lost */
static void keeper_event(struct daemon *d, struct watch *w, uint32_t events);
static struct watch keeper_watch = { .fd = -1, .handler = keeper_event };

static int keeper_path(struct daemon *d, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path),
			     "%s/keeper.sock",
			     d->cfg.state_dir) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

static int keeper_connect_once(struct daemon *d)
{
	struct sockaddr_un sa;
	struct timeval tv = { .tv_sec = 2 };
	int fd, r = keeper_path(d, &sa);

	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	/* The keeper is local and quick; never let it stall the loop long. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/*
 * luod-keeper sits beside luod (build tree, tests), or in libexec. luod
 * makes its listening socket and hands it over as fd 3, so that luod can
 * connect at once instead of polling until the keeper has started.
 */
static int spawn_keeper(struct daemon *d)
{
	char self[4096], path[4200], sock[200];
	struct sockaddr_un sa;
	char *argv[] = { "luod-keeper", sock, "3", NULL };
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	_cleanup_close_ int lfd = -1;
	mode_t mask;
	pid_t pid;
	int r = keeper_path(d, &sa);

	if (r < 0)
		return r;
	snprintf(sock, sizeof(sock), "%s", sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	unlink(sa.sun_path);
	/* Whoever connects gets every session fd (DUMP): the socket is
	 * root's alone from its creation, not after a chmod. */
	mask = umask(0177);
	r = bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(mask);
	if (r == 0 && listen(lfd, 4) < 0)
		r = -errno;
	if (r < 0)
		return log_errno(r, "cannot listen on %s for luod-keeper",
				 sa.sun_path);
	path[0] = '\0';
	if (n > 0) {
		self[n] = '\0';
		snprintf(path, sizeof(path), "%s/luod-keeper", dirname(self));
	}
	if (!path[0] || access(path, X_OK) < 0)
		snprintf(path, sizeof(path), "%s", LUOD_KEEPER_PATH);
	/* A keeper started again while luod runs must not inherit the
	 * signals luod blocks for its signalfd. */
	sigemptyset(&none);
	r = posix_spawnattr_init(&attr);
	if (r == 0)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (r == 0)
		r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	if (r == 0)
		r = posix_spawn_file_actions_init(&fa);
	if (r == 0) {
		/* dup2 clears close-on-exec on fd 3 in the child. */
		r = posix_spawn_file_actions_adddup2(&fa, lfd, 3);
		if (r == 0)
			r = posix_spawn(&pid, path, &fa, &attr, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
	}
	posix_spawnattr_destroy(&attr);
	if (r) {
		unlink(sa.sun_path);
		return -r;
	}
	keeper_pid = pid;
	log_info(
		"started luod-keeper (pid %d) to hold session fds across luod restarts",
		(int)pid);
	return 0;
}

static int send_msg(const char *text, int fd)
{
	ssize_t n;

	if (keeper_sock < 0)
		return -ENOTCONN;
	n = fdmsg_send(keeper_sock, text, strlen(text), &fd, fd >= 0, 0);
	return n < 0 ? (int)n : 0;
}

static void mark_lost(const char *how)
{
	if (!lost[0])
		snprintf(lost, sizeof(lost), "%s", how);
}

bool keeper_take_lost(char *how, size_t len)
{
	if (!lost[0])
		return false;
	snprintf(how, len, "%s", lost);
	lost[0] = '\0';
	return true;
}

/* What a previous luod's keeper held: each fd goes to adopt with the
 * kernel's name for it, which proves which session it is. */
static void dump(struct daemon *d, keeper_adopt_fn adopt)
{
	for (;;) {
		char text[128], kname[LIVEUPDATE_SESSION_NAME_LENGTH];
		int fd;

		if (fdmsg_recv(keeper_sock, text, sizeof(text), &fd) <= 0)
			break;
		if (streq(text, "END") || strncmp(text, "FD ", 3) || fd < 0) {
			safe_close(fd);
			break;
		}
		if (luo_get_name(fd, kname) < 0 || !streq(kname, text + 3)) {
			close(fd);
			continue;
		}
		adopt(d, kname, fd);
	}
}

/* luod never reads the keeper's socket outside dump(): an event here is
 * its end closing, which is how a keeper a previous luod started is seen
 * to die. */
static void keeper_event(struct daemon *d, struct watch *w, uint32_t events)
{
	if (w->fd == keeper_sock)
		mark_lost("closed its socket");
}

/* SIGCHLD: reap every child that ended, as OpenBSD's ntpd does. */
void keeper_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		char how[96];

		if (pid != keeper_pid) {
			log_debug("reaped child %d", (int)pid);
			continue;
		}
		keeper_pid = 0;
		if (WIFSIGNALED(status))
			snprintf(how, sizeof(how), "(pid %d) was killed by signal %d",
				 (int)pid, WTERMSIG(status));
		else
			snprintf(how, sizeof(how), "(pid %d) exited with status %d",
				 (int)pid, WEXITSTATUS(status));
		mark_lost(how);
	}
}

bool keeper_start(struct daemon *d, keeper_adopt_fn adopt)
{
	int fd = keeper_connect_once(d);

	if (fd < 0 && spawn_keeper(d) == 0)
		fd = keeper_connect_once(d);
	if (fd < 0) {
		log_warning("luod-keeper is not available (%s), so a crash of luod would close the sessions only luod holds; install it beside luod or in %s",
			    strerror(-fd), LUOD_KEEPER_PATH);
		return false;
	}
	keeper_sock = fd;
	if (send_msg("DUMP", -1) == 0)
		dump(d, adopt);
	keeper_watch.fd = fd;
	if (daemon_watch(d, &keeper_watch, EPOLLIN | EPOLLRDHUP) < 0)
		log_warning("cannot watch luod-keeper's socket, so luod notices its death only when it next hands it a session");
	return true;
}

bool keeper_running(void)
{
	return keeper_sock >= 0;
}

/* luod stops: the keeper goes on holding everything for the next luod. */
void keeper_detach(void)
{
	keeper_sock = safe_close(keeper_sock);
	keeper_watch.fd = -1;
}

void keeper_hold(const char *kname, int fd)
{
	char text[80];

	if (fd < 0 || keeper_sock < 0)
		return;
	snprintf(text, sizeof(text), "HOLD %s", kname);
	if (send_msg(text, fd) < 0)
		mark_lost("does not take sessions any more");
}

void keeper_drop(const char *kname)
{
	char text[80];

	snprintf(text, sizeof(text), "DROP %s", kname);
	send_msg(text, -1);
}
