// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod: the machine's live update agent. It holds /dev/liveupdate for its
 * whole life, hands LUO sessions to clients over a Unix socket and performs
 * the kexec once every subscriber is ready. One thread, one epoll loop.
 */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "luo.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: luod [OPTIONS]\n"
		"\n"
		"The live update agent: holds /dev/liveupdate, hands LUO sessions to\n"
		"clients on a Unix socket, and performs the kexec when all are ready.\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH       listen on PATH (default %s)\n"
		"  -d, --device PATH       the LUO device (default %s)\n"
		"      --state-dir DIR     where the manifest copy lives (default /run/luod)\n"
		"  -t, --timeout SECONDS   default time clients get to become ready (default 60)\n"
		"      --max-clients N     connections served at once (default 256)\n"
		"      --admin-group NAME  members may run admin commands, besides root\n"
		"      --no-reboot         stop right before the reboot syscall (testing)\n"
		"  -v, --verbose           log debug messages too\n"
		"  -h, --help              show this help\n"
		"      --version           show the version\n"
		"\n"
		"Exit status: 0 on SIGTERM/SIGINT, 1 when luod cannot start (the message\n"
		"says why and what to do).\n",
		LUOD_SOCKET_PATH, LUO_DEVICE);
}

static int parse_args(struct config *cfg, int argc, char **argv)
{
	enum {
		OPT_STATE_DIR = 256,
		OPT_MAX_CLIENTS,
		OPT_ADMIN_GROUP,
		OPT_NO_REBOOT,
		OPT_VERSION
	};
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "device", required_argument, NULL, 'd' },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "timeout", required_argument, NULL, 't' },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "admin-group", required_argument, NULL, OPT_ADMIN_GROUP },
		{ "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:d:t:vh", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (c) {
		case 's':
			cfg->socket_path = optarg;
			break;
		case 'd':
			cfg->device_path = optarg;
			break;
		case OPT_STATE_DIR:
			cfg->state_dir = optarg;
			break;
		case 't':
		case OPT_MAX_CLIENTS:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 86400) {
				log_error(
					"--%s %s: expected a whole number from 1 to 86400",
					c == 't' ? "timeout" : "max-clients",
					optarg);
				return -EINVAL;
			}
			if (c == 't')
				cfg->timeout_s = (unsigned)v;
			else
				cfg->max_clients = (unsigned)v;
			break;
		case OPT_ADMIN_GROUP: {
			struct group *g = getgrnam(optarg);

			if (!g) {
				log_error(
					"--admin-group %s: no such group; create it or name another",
					optarg);
				return -EINVAL;
			}
			cfg->admin_gid = g->gr_gid;
			cfg->have_admin_gid = true;
			break;
		}
		case OPT_NO_REBOOT:
			cfg->no_reboot = true;
			break;
		case 'v':
			log_set_level(LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("luod %s\n", LUOD_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'; see luod --help",
			  argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int daemon_watch(struct daemon *d, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno :
								       0;
}

int daemon_rewatch(struct daemon *d, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(d->epoll_fd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno :
								       0;
}

static int open_device(struct daemon *d)
{
	int fd = luo_open_device(d->cfg.device_path);

	switch (fd) {
	case -ENOENT:
		log_error(
			"%s does not exist: this kernel has no Live Update Orchestrator. "
			"Boot a kernel built with CONFIG_LIVEUPDATE=y and CONFIG_KEXEC_HANDOVER=y, "
			"with 'liveupdate=on kho=on' on its command line",
			d->cfg.device_path);
		return fd;
	case -EBUSY:
		log_error(
			"%s is held by another process (only one may open it). Is another agent running, "
			"such as systemd (FileDescriptorStorePreserve) or a second luod? Stop it first",
			d->cfg.device_path);
		return fd;
	case -EIO:
		log_error(
			"%s: the kernel could not read the sessions handed over by the previous kernel (EIO); "
			"see dmesg. Preserved state from the last update is lost",
			d->cfg.device_path);
		return fd;
	case -EACCES:
	case -EPERM:
		log_error("%s: permission denied; luod must run as root",
			  d->cfg.device_path);
		return fd;
	default:
		if (fd < 0)
			return log_errno(fd, "cannot open %s",
					 d->cfg.device_path);
	}
	d->dev_fd = fd;
	return 0;
}

static int listen_socket(struct daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int fd = -1;
	char *slash;

	if (strlen(d->cfg.socket_path) >= sizeof(sa.sun_path)) {
		log_error(
			"socket path %s is longer than %zu bytes; choose a shorter --socket",
			d->cfg.socket_path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, d->cfg.socket_path);

	dir = strdup(d->cfg.socket_path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return log_errno(-errno, "cannot create %s", dir);
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_errno(-errno, "socket()");
	/* A stale socket from a crashed luod: we hold /dev/liveupdate, so no
	 * other luod can be serving it. */
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return log_errno(-errno, "cannot bind %s", sa.sun_path);
	/* Everyone may connect; each request is checked against SO_PEERCRED. */
	if (chmod(sa.sun_path, 0666) < 0)
		return log_errno(-errno, "chmod %s", sa.sun_path);
	if (listen(fd, 128) < 0)
		return log_errno(-errno, "listen on %s", sa.sun_path);
	d->listener.fd = take_fd(&fd);
	d->listener.handler = client_accept;
	return daemon_watch(d, &d->listener, EPOLLIN);
}

static void on_signal(struct daemon *d, struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	if (read(w->fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_notice("received %s, shutting down", strsignal((int)si.ssi_signo));
	d->quit = true;
}

static int setup_signals_and_timer(struct daemon *d)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->signals.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->signals.fd < 0)
		return log_errno(-errno, "signalfd");
	d->signals.handler = on_signal;

	d->timer.fd =
		timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer.fd < 0)
		return log_errno(-errno, "timerfd");
	d->timer.handler = update_timer;

	if (daemon_watch(d, &d->signals, EPOLLIN) < 0 ||
	    daemon_watch(d, &d->timer, EPOLLIN) < 0)
		return log_errno(-errno, "epoll_ctl");
	return 0;
}

/* Each client may cost several fds (its socket, sessions in flight). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void run(struct daemon *d)
{
	struct epoll_event evs[64];

	while (!d->quit) {
		int n = epoll_wait(d->epoll_fd, evs, ARRAY_SIZE(evs), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_errno(-errno, "epoll_wait");
			return;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = evs[i].data.ptr;

			w->handler(d, w, evs[i].events);
		}
		clients_reap(d);
		/* One write per loop turn, however many sessions changed in it. */
		if (d->state_dirty && state_save_run(d) == 0)
			d->state_dirty = false;
	}
}

static void shutdown_daemon(struct daemon *d)
{
	unsigned out = sessions_count(d, SESSION_OUTGOING);

	for (struct client *c = d->clients; c; c = c->next)
		client_drop(d, c, "luod is shutting down");
	clients_reap(d);
	if (out)
		log_warning(
			"exiting while holding %u outgoing sessions: those no client holds open are gone; "
			"clients that still hold theirs can re-attach to the next luod",
			out);
	state_save_run(d);
	while (d->sessions)
		session_forget(d, d->sessions);
	if (d->cfg.socket_path)
		unlink(d->cfg.socket_path);
}

int main(int argc, char **argv)
{
	struct daemon d = {
		.cfg = {
			.socket_path = getenv("LUOD_SOCKET") ? getenv("LUOD_SOCKET") : LUOD_SOCKET_PATH,
			.device_path = LUO_DEVICE,
			.state_dir = "/run/luod",
			.timeout_s = 60,
			.max_clients = 256,
		},
		.epoll_fd = -1,
		.dev_fd = -1,
		.next_serial = 1,
	};
	uint64_t t0 = now_mono_us();

	log_setup("luod", LOG_INFO);
	if (parse_args(&d.cfg, argc, argv) < 0)
		return 1;
	raise_fd_limit();

	d.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (d.epoll_fd < 0)
		return log_errno(-errno, "epoll_create1"), 1;
	if (open_device(&d) < 0)
		return 1;
	if (mkdir(d.cfg.state_dir, 0755) < 0 && errno != EEXIST)
		return log_errno(-errno, "cannot create state directory %s",
				 d.cfg.state_dir),
		       1;
	if (state_load(&d) < 0)
		return 1;
	if (setup_signals_and_timer(&d) < 0 || listen_socket(&d) < 0)
		return 1;

	log_notice("serving %s: generation %" PRIu64
		   ", %u sessions waiting to be claimed, ready in %" PRIu64
		   " us",
		   d.cfg.socket_path, d.generation,
		   sessions_count(&d, SESSION_INCOMING), now_mono_us() - t0);
	run(&d);
	shutdown_daemon(&d);
	return 0;
}
