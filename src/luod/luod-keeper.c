// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod-keeper: holds a copy of every LUO session fd luod holds, so that a
 * crash or a restart of luod closes none of them. A session whose last fd
 * is closed is gone (before a kexec) or finished (after one): without this
 * process, a client that handed its session to luod and exited would lose
 * it with luod. luod starts it, in a session of its own so that signals for
 * luod's process group spare it, and the next luod takes the fds back.
 *
 * Protocol, one SOCK_SEQPACKET message each, on STATE_DIR/keeper.sock:
 *   "HOLD NAME" + fd   keep fd under NAME (the session's kernel name)
 *   "DROP NAME"        close it
 *   "DUMP"             answered by "FD NAME" + fd for each, then "END"
 * It exits once it has held nothing, with no luod connected, for 10 s.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fdmsg.h"
#include "log.h"
#include "util.h"

#define MAX_HELD 65536

struct held {
	char name[64];
	int fd;
};

static struct held *held;
static size_t n_held;

static void drop(const char *name)
{
	for (size_t i = 0; i < n_held; i++)
		if (streq(held[i].name, name)) {
			close(held[i].fd);
			held[i] = held[--n_held];
			return;
		}
}

static void hold(const char *name, int fd)
{
	drop(name);
	if (n_held == MAX_HELD) {
		log_error("holding %d sessions already; %s is not kept",
			  MAX_HELD, name);
		close(fd);
		return;
	}
	snprintf(held[n_held].name, sizeof(held[n_held].name), "%.63s", name);
	held[n_held++].fd = fd;
}

/* One message from luod. Returns 0, or -errno when the connection is done. */
static int serve(int conn)
{
	char text[128];
	int fd;
	ssize_t n = fdmsg_recv(conn, text, sizeof(text), &fd);

	if (n <= 0)
		return n == 0 ? -ECONNRESET : (int)n;
	if (!strncmp(text, "HOLD ", 5) && fd >= 0) {
		hold(text + 5, fd);
		return 0;
	}
	safe_close(fd);
	if (!strncmp(text, "DROP ", 5)) {
		drop(text + 5);
	} else if (streq(text, "DUMP")) {
		char line[80];

		for (size_t i = 0; i < n_held; i++) {
			snprintf(line, sizeof(line), "FD %s", held[i].name);
			if (fdmsg_send(conn, line, strlen(line), &held[i].fd, 1,
				       0) < 0)
				return -EPIPE;
		}
		return fdmsg_send(conn, "END", 3, NULL, 0, 0) < 0 ? -EPIPE : 0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, conn = -1;

	log_setup("luod-keeper", LOG_INFO);
	if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr,
			"usage: luod-keeper SOCKET LISTEN_FD (started by luod, not by hand)\n");
		return 2;
	}
	held = calloc(MAX_HELD, sizeof(*held));
	if (!held)
		return 1;
	/* Its own session: a kill of luod's process group spares it. */
	setsid();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	strcpy(sa.sun_path, argv[1]);
	/* luod bound SOCKET and passed it as LISTEN_FD: it can connect
	 * before this process has even started. */
	lfd = atoi(argv[2]);
	if (lfd < 3 || fcntl(lfd, F_SETFD, FD_CLOEXEC) < 0) {
		log_error("LISTEN_FD %s is not an open fd", argv[2]);
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = conn, .events = POLLIN } };

		/* Idle (nothing held, nobody connected): give a starting or
		 * restarting luod 10 s to connect, then go. */
		if (poll(p, conn >= 0 ? 2 : 1,
			 conn >= 0 || n_held ? -1 : 10000) == 0)
			break;
		if (p[0].revents & POLLIN) {
			/* Only one luod can hold /dev/liveupdate: a new
			 * connection means the previous luod is gone. */
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0) {
				safe_close(conn);
				conn = c;
			}
		}
		if (conn >= 0 &&
		    (p[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    serve(conn) < 0) {
			conn = safe_close(conn);
			if (n_held)
				log_notice(
					"luod went away; holding %zu sessions for the next luod",
					n_held);
		}
	}
	unlink(sa.sun_path);
	return 0;
}
