// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod: the machine's live update agent. It hands LUO sessions to clients
 * over a Unix socket, opening /dev/liveupdate only for the ioctl that makes
 * or retrieves one, and performs the kexec once every subscriber is ready.
 * One thread, one epoll loop.
 */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
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
#include "notify.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: luod [OPTIONS]\n"
		"\n"
		"The live update agent: hands LUO sessions from /dev/liveupdate to\n"
		"clients on a Unix socket, and performs the kexec when all are ready.\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH       listen on PATH (default %s)\n"
		"  -d, --device PATH       the LUO device (default %s)\n"
		"      --state-dir DIR     where the manifest copy lives (default /run/luod)\n"
		"  -t, --timeout SECONDS   default time clients get to become ready (default 60)\n"
		"      --max-clients N     connections served at once (default 256)\n"
		"      --admin-group NAME  members may run admin commands, besides root\n"
		"  -c, --config FILE       read FILE instead of %s\n"
		"      --reboot-mode MODE  direct (default): luod calls reboot(KEXEC) itself;\n"
		"                          systemd: sessions to the fd store, systemctl kexec\n"
		"      --log-level LEVEL   error, warning, notice, info (default) or debug\n"
		"      --print-config      print the settings luod would run with, and exit\n"
		"  -g, --grace-period SECONDS  release sessions nobody claimed this long\n"
		"                          after the update (default 600; 0: never)\n"
		"      --no-reboot         stop right before the reboot syscall or\n"
		"                          systemctl kexec (testing)\n"
		"  -v, --verbose           log debug messages too\n"
		"  -h, --help              show this help\n"
		"      --version           show the version\n"
		"\n"
		"Options override the configuration file (luod.conf(5)).\n"
		"Exit status: 0 on SIGTERM/SIGINT, 1 when luod cannot start (the message\n"
		"says why and what to do).\n",
		LUOD_SOCKET_PATH, LUO_DEVICE, LUOD_CONFIG_PATH);
}

static bool print_config;

/* An option checked by the same code, and in the same words, as its
 * luod.conf key. */
static int set_option(struct config *cfg, const char *key, const char *opt,
		      const char *value)
{
	char err[512];
	int r = conf_set(cfg, key, value, err, sizeof(err));

	if (r < 0)
		log_error("%s %s: %s", opt, value, err);
	return r;
}

/* --config (or -c) must be known before the file is read, and the file
 * before the other options, which override it. */
static const char *config_arg(int argc, char **argv)
{
	const char *path = NULL;

	for (int i = 1; i < argc && !streq(argv[i], "--"); i++) {
		if ((streq(argv[i], "--config") || streq(argv[i], "-c")) &&
		    i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2])
			path = argv[i] + 2;
	}
	return path;
}

static void resolve_reboot_mode(struct config *cfg);

static void print_settings(struct config *cfg)
{
	struct group *g = cfg->have_admin_gid ? getgrgid(cfg->admin_gid) : NULL;

	printf("# luod %s: the settings it would run with\n"
	       "# from %s, the environment ($LUOD_SOCKET) and the command line\n"
	       "[luod]\n"
	       "socket_path = %s\n"
	       "timeout = %u\n"
	       "grace_period = %u\n"
	       "max_clients = %u\n"
	       "max_clients_per_uid = %u\n"
	       "reserved_clients = %u\n"
	       "idle_timeout = %u\n"
	       "request_rate = %u\n",
	       LUOD_VERSION, cfg->config_path ? cfg->config_path : "defaults",
	       cfg->socket_path, cfg->timeout_s, cfg->grace_s,
	       cfg->max_clients, cfg->max_clients_per_uid,
	       cfg->reserved_clients, cfg->idle_timeout_s, cfg->request_rate);
	if (g)
		printf("admin_group = %s\n", g->gr_name);
	else if (cfg->have_admin_gid)
		printf("admin_group = %u\n", (unsigned)cfg->admin_gid);
	else
		printf("admin_group =\n");
	printf("reboot_mode = %s\n",
	       reboot_mode_name(cfg->reboot_mode));
	if (cfg->reboot_mode == REBOOT_AUTO) {
		resolve_reboot_mode(cfg);
		printf("# in force: reboot_mode = %s (%s)\n",
		       reboot_mode_name(cfg->reboot_mode), cfg->reboot_mode_why);
	}
	printf("log_level = %s\n", log_level_name(cfg->log_level));
}

/*
 * auto: systemd's way when systemd can carry luod's sessions (>= 261, and
 * an fd store for luod), since luod's own reboot would skip systemd-shutdown
 * and lose every other unit's preserved fd store; else luod's own.
 */
static void resolve_reboot_mode(struct config *cfg)
{
	char *why = cfg->reboot_mode_why;
	size_t len = sizeof(cfg->reboot_mode_why);
	int v;

	if (cfg->reboot_mode != REBOOT_AUTO) {
		snprintf(why, len, "set in %s",
			 cfg->config_path ? cfg->config_path : "luod's options");
		return;
	}
	if (!notify_fdstore_enabled()) {
		cfg->reboot_mode = REBOOT_DIRECT;
		snprintf(why, len,
			 "auto: luod does not run as a systemd service with an fd store");
		return;
	}
	v = systemd_version();
	cfg->reboot_mode = v >= 261 ? REBOOT_SYSTEMD : REBOOT_DIRECT;
	if (v < 0)
		snprintf(why, len, "auto: systemctl --version did not say systemd's version");
	else
		snprintf(why, len, "auto: systemd %d %s", v,
			 v >= 261 ? "carries fd stores across systemctl kexec" :
				    "is older than 261, which carries fd stores across systemctl kexec");
}

static int parse_args(struct config *cfg, int argc, char **argv)
{
	enum {
		OPT_STATE_DIR = 256,
		OPT_MAX_CLIENTS,
		OPT_ADMIN_GROUP,
		OPT_NO_REBOOT,
		OPT_VERSION,
		OPT_REBOOT_MODE,
		OPT_LOG_LEVEL,
		OPT_PRINT_CONFIG,
	};
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "device", required_argument, NULL, 'd' },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "timeout", required_argument, NULL, 't' },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "admin-group", required_argument, NULL, OPT_ADMIN_GROUP },
		{ "grace-period", required_argument, NULL, 'g' },
		{ "no-reboot", no_argument, NULL, OPT_NO_REBOOT },
		{ "config", required_argument, NULL, 'c' },
		{ "reboot-mode", required_argument, NULL, OPT_REBOOT_MODE },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "print-config", no_argument, NULL, OPT_PRINT_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:d:t:g:c:vh", opts, NULL)) !=
	       -1) {
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
			if (set_option(cfg, "timeout", "--timeout", optarg) < 0)
				return -EINVAL;
			break;
		case OPT_MAX_CLIENTS:
			if (set_option(cfg, "max_clients", "--max-clients",
				       optarg) < 0)
				return -EINVAL;
			break;
		case 'g':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v > 30 * 86400) {
				log_error(
					"--grace-period %s: expected seconds from 0 to 2592000",
					optarg);
				return -EINVAL;
			}
			cfg->grace_s = (unsigned)v;
			break;
		case OPT_ADMIN_GROUP:
			if (set_option(cfg, "admin_group", "--admin-group",
				       optarg) < 0)
				return -EINVAL;
			break;
		case 'c':
			/* Read before every other option: see main(). */
			break;
		case OPT_REBOOT_MODE:
			if (set_option(cfg, "reboot_mode", "--reboot-mode",
				       optarg) < 0)
				return -EINVAL;
			break;
		case OPT_LOG_LEVEL:
			if (set_option(cfg, "log_level", "--log-level",
				       optarg) < 0)
				return -EINVAL;
			break;
		case OPT_PRINT_CONFIG:
			print_config = true;
			break;
		case OPT_NO_REBOOT:
			cfg->no_reboot = true;
			break;
		case 'v':
			cfg->log_level = LOG_DEBUG;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("luod %s%s\n", LUOD_VERSION,
			       LUOD_TEST_HOOKS ? " (built with test hooks)" : "");
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

/*
 * One luod per machine. It used to follow from holding /dev/liveupdate;
 * now that luod opens the device only for an ioctl, a lock in the state
 * directory says it. The kernel drops the lock with the process.
 */
static int lock_state_dir(struct daemon *d)
{
	_cleanup_free_ char *path = NULL;
	int fd;

	if (asprintf(&path, "%s/luod.lock", d->cfg.state_dir) < 0)
		return log_errno(-ENOMEM, "cannot lock the state directory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_errno(-errno, "cannot open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = -errno;

		close(fd);
		if (r != -EWOULDBLOCK)
			return log_errno(r, "cannot lock %s", path);
		log_error("another luod is running with state directory %s; stop it first (see luod(8))",
			  d->cfg.state_dir);
		return r;
	}
	d->lock_fd = fd;
	return 0;
}

/* luod.socket's listener: systemd made it and keeps it, luod only serves. */
static bool socket_activated;

static int serve_passed_socket(struct daemon *d, int fd, const char *path)
{
	static char served[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (!streq(path, d->cfg.socket_path))
		log_warning(
			"the service manager passed a socket on %s but socket_path is %s, so luod serves %s; "
			"set ListenStream= in luod.socket and socket_path in luod.conf to the same path (see luod(8), SYSTEMD)",
			path, d->cfg.socket_path, path);
	snprintf(served, sizeof(served), "%s", path);
	d->cfg.socket_path = served;
	socket_activated = true;
	/* systemd creates it blocking; one slow accept must not stall luod. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		close(fd);
		return log_errno(-errno, "cannot make %s non-blocking", path);
	}
	log_info("serving the socket the service manager passed in: %s", path);
	d->listener.fd = fd;
	d->listener.handler = client_accept;
	return daemon_watch(d, &d->listener, EPOLLIN);
}

static int listen_socket(struct daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int fd = -1;
	char *slash, passed[sizeof(sa.sun_path)];

	fd = listen_fds_take_listener(passed, sizeof(passed));
	if (fd >= 0)
		return serve_passed_socket(d, take_fd(&fd), passed);

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
	/* A stale socket from a crashed luod: we hold luod.lock, so no other
	 * luod can be serving it. */
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
	if (si.ssi_signo == SIGCHLD) {
		keeper_reap();
		return;
	}
	log_notice("received %s, shutting down", strsignal((int)si.ssi_signo));
	d->quit = true;
}

static int setup_signals_and_timer(struct daemon *d)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD); /* luod-keeper, when luod started it */
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

	d->grace.fd =
		timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->grace.fd < 0)
		return log_errno(-errno, "timerfd");
	d->grace.handler = grace_expired;

	if (daemon_watch(d, &d->signals, EPOLLIN) < 0 ||
	    daemon_watch(d, &d->grace, EPOLLIN) < 0 ||
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
			/* What follows from the event, in one place. */
			clients_gc(d);
			sessions_keeper_check(d);
		}
		update_progress_flush(d);
		clients_reap(d);
		/* Session changes went to the journal as they happened; the
		 * whole copy is rewritten only when the journal asks for it. */
		if (d->state_dirty && state_save_run(d) == 0)
			d->state_dirty = false;
	}
}

static void shutdown_daemon(struct daemon *d)
{
	unsigned out = sessions_count(d, SESSION_OUTGOING), unkept = 0;
	bool keeper = keeper_running();

	for (struct session *s = d->sessions; s; s = s->next)
		unkept += s->state == SESSION_OUTGOING && !s->in_fdstore;
	/* Before any session is closed here: luod-keeper keeps them all. */
	keeper_detach();
	for (struct client *c = d->clients; c; c = c->next)
		client_fail(d, c, "luod is shutting down");
	clients_reap(d);
	/* A problem only when no custodian keeps them for the next luod. */
	if (unkept && !keeper)
		log_warning("exiting while holding %u outgoing sessions that only their clients keep now, "
			    "as luod-keeper is not running (see luod(8), RESTARTING LUOD)",
			    unkept);
	else if (out)
		log_notice("exiting while holding %u outgoing sessions: %s keeps them for the next luod",
			   out, unkept ? "luod-keeper" : "systemd's fd store");
	state_save_run(d);
	sessions_free(d);
	client_ids_free(d);
	safe_close(d->journal_fd);
	timeline_free(d);
	/* luod.socket's path belongs to systemd, which keeps listening. */
	if (d->cfg.socket_path && !socket_activated)
		unlink(d->cfg.socket_path);
}

int main(int argc, char **argv)
{
	struct daemon d = {
		.cfg = {
			.socket_path = LUOD_SOCKET_PATH,
			.device_path = LUO_DEVICE,
			.state_dir = "/run/luod",
			.timeout_s = 60,
			.max_clients = CONF_MAX_CLIENTS_DEFAULT,
			.max_clients_per_uid = CONF_PER_UID_DEFAULT,
			.reserved_clients = CONF_RESERVED_DEFAULT,
			.idle_timeout_s = CONF_IDLE_TIMEOUT_DEFAULT,
			.request_rate = CONF_REQUEST_RATE_DEFAULT,
			.grace_s = CONF_GRACE_DEFAULT,
			.reboot_mode = REBOOT_AUTO,
			.log_level = LOG_INFO,
		},
		.epoll_fd = -1,
		.lock_fd = -1,
		.journal_fd = -1,
		.next_serial = 1,
	};
	const char *config = config_arg(argc, argv);
	uint64_t t0 = now_mono_us();
	char err[1024];

	log_setup("luod", LOG_INFO);
	/* Defaults, then luod.conf, then $LUOD_SOCKET, then the options. */
	if (conf_load(&d.cfg, config ? config : LUOD_CONFIG_PATH,
		      config != NULL, err, sizeof(err)) < 0) {
		log_error("cannot start: %s", err);
		return 1;
	}
	if (getenv("LUOD_SOCKET"))
		d.cfg.socket_path = getenv("LUOD_SOCKET");
	if (parse_args(&d.cfg, argc, argv) < 0)
		return 1;
	log_set_level(d.cfg.log_level);
	if (print_config) {
		print_settings(&d.cfg);
		return 0;
	}
	resolve_reboot_mode(&d.cfg);
	if (d.cfg.reboot_mode == REBOOT_SYSTEMD && !notify_fdstore_enabled()) {
		log_error(
			"reboot_mode = systemd needs luod to run as a systemd service with a file-descriptor store "
			"($FDSTORE is not set), so start luod with systemctl or set reboot_mode = direct (see luod(8), REBOOT MODES)");
		return 1;
	}
	log_info(
		"luod %s starting: settings from %s, reboot_mode %s (%s), timeout %u s, "
		"grace_period %u s, log_level %s",
		LUOD_VERSION,
		d.cfg.config_path ? d.cfg.config_path : "defaults",
		reboot_mode_name(d.cfg.reboot_mode), d.cfg.reboot_mode_why,
		d.cfg.timeout_s,
		d.cfg.grace_s, log_level_name(d.cfg.log_level));
	/* Before any other fd is opened: they are at 3 onwards. */
	if (listen_fds_collect() < 0)
		return 1;
	raise_fd_limit();

	d.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (d.epoll_fd < 0)
		return log_errno(-errno, "epoll_create1"), 1;
	if (mkdir(d.cfg.state_dir, 0755) < 0 && errno != EEXIST)
		return log_errno(-errno, "cannot create state directory %s",
				 d.cfg.state_dir),
		       1;
	if (lock_state_dir(&d) < 0 || device_probe(&d) < 0)
		return 1;
	state_init(&d);
	if (state_load(&d) < 0)
		return 1;
	sessions_adopt_fdstore(&d);
	sessions_keep(&d);
	/* Only now: systemd's fd store and luod-keeper have handed back theirs. */
	for (struct session *s = d.sessions; s; s = s->next)
		if (session_detached(s))
			log_warning("session %s/%s (%s, %s) is detached: luod restarted without a copy of it, so it "
				    "survives only if its client still holds it and re-attaches it (see luod(8))",
				    s->client, s->name, s->kernel_name,
				    session_state_name(s->state));
	if (limits_init(&d) < 0 || setup_signals_and_timer(&d) < 0 ||
	    listen_socket(&d) < 0)
		return 1;
	keeper_reap(); /* a keeper that died before SIGCHLD was watched */
	sessions_keeper_check(&d);
	grace_arm(&d);
	listen_fds_close_rest();

	log_notice("serving %s: generation %" PRIu64
		   ", %u sessions waiting to be claimed, ready in %" PRIu64
		   " us",
		   d.cfg.socket_path, d.generation,
		   sessions_count(&d, SESSION_INCOMING), now_mono_us() - t0);
	notify_ready("serving %s: generation %" PRIu64
		     ", %u sessions waiting to be claimed",
		     d.cfg.socket_path, d.generation,
		     sessions_count(&d, SESSION_INCOMING));
	run(&d);
	notify_stopping("shutting down");
	shutdown_daemon(&d);
	return 0;
}
