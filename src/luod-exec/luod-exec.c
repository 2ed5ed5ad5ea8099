// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod-exec: bring a program that does not speak luod's protocol across
 * live updates, with its memory.
 *
 *	luod-exec --id ID --fd LABEL=N[:SIZE]... -- PROGRAM [ARGS...]
 *
 * First start: luod-exec creates a LUO session, a memfd of SIZE bytes per
 * label, preserves them under tokens derived from the labels, and starts
 * PROGRAM with each memfd at fd N. After a live update it claims the
 * session, retrieves each memfd by label and starts PROGRAM with the same
 * memory at the same fds. While PROGRAM runs, luod-exec is the luod client
 * for it: at PREPARE it sends PROGRAM a signal and answers READY once
 * PROGRAM has exited (or created the --ready-file).
 *
 * The session holds one more memfd, the manifest (token 0): the label, fd
 * number, size and token of every memfd, so the next luod-exec knows what
 * came through without trusting its own command line alone.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "luod.h"
#include "log.h"
#include "qemu.h"
#include "util.h"

#define MANIFEST_TOKEN 0
#define MANIFEST_MAGIC "luod-exec-manifest 1"
#define MANIFEST_MAX (64 * 1024)
#define LABEL_MAX 64
#define MAX_MEMS 64
/* Exit statuses of luod-exec's own failures, as env(1) and timeout(1). */
#define EXIT_FAILED 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127
/* --qemu: the --fd that is guest RAM, and how long QEMU may take to come
 * up and to load its state (a nested, emulated QEMU is slow). */
#define QEMU_RAM_LABEL "ram"
#define QEMU_START_TIMEOUT_US (180ULL * 1000 * 1000)
/* Less room than this beside a failed save: the file system is the cause. */
#define QEMU_STATE_ROOM (16ULL << 20)

struct mem {
	char label[LABEL_MAX + 1];
	int target; /* fd number in PROGRAM */
	uint64_t size; /* asked for with --fd; 0: whatever came through */
	uint64_t token;
	int fd; /* our copy, O_CLOEXEC */
	bool fresh; /* created in this boot rather than restored */
};

struct prog {
	pid_t pid; /* 0: not running */
	int status; /* wait status once it has exited */
	uint64_t started_us, signalled_us;
	unsigned starts;
};

enum phase {
	PH_IDLE, /* PROGRAM runs; no update */
	PH_PREPARING, /* PROGRAM was told to get ready */
	PH_READY, /* READY sent; luod reboots soon */
	PH_STOPPING, /* luod-exec itself was told to stop */
};

static struct {
	const char *id;
	const char *session;
	const char *socket;
	const char *ready_file;
	int signal; /* 0: none */
	int resume_signal; /* 0: none */
	int finish_signal; /* 0: FINISHED as soon as PROGRAM started */
	long prepare_timeout_ms; /* 0: from luod's PREPARE */
	long wait_luod_s; /* how long the start waits for luod */
	bool qemu; /* PROGRAM is QEMU: save and load it over QMP */
	bool signal_given;
	const char *qmp_path;
	const char *state_path;
	char **argv;
	struct mem mems[MAX_MEMS];
	size_t n_mems;
} arg = {
	.session = "exec",
	.signal = SIGUSR1,
	.wait_luod_s = 90,
};

static struct luod_client *client;
static int session_fd = -1; /* our outgoing session */
static int incoming_fd = -1; /* the claimed session, until FINISHED */
static struct prog prog;
static enum phase phase = PH_IDLE;
static bool update_aborted; /* ABORTED came while PREPARING */
static bool luod_lost; /* until luod_reconnect() succeeds */
static uint64_t deadline_us;
static sigset_t orig_mask;
static char log_ident[LABEL_MAX + 16];
/* --qemu */
static struct qmp *qmp;
static char **qemu_argv; /* PROGRAM's arguments and luod-exec's */
static bool qemu_saved; /* the state file holds this update's VM */
static char prepare_error[1024]; /* why QEMU could not get ready */

/* Signals */

static const char *sig_name(int sig)
{
	static char buf[16];
	const char *n = sig > 0 ? sigabbrev_np(sig) : NULL;

	if (!n) {
		snprintf(buf, sizeof(buf), "%d", sig);
		return buf;
	}
	snprintf(buf, sizeof(buf), "SIG%s", n);
	return buf;
}

/* "USR1", "SIGUSR1", "10" or "none" (0). Returns -EINVAL if unknown. */
static int parse_signal(const char *s)
{
	char *end;
	long v;

	if (streq(s, "none") || streq(s, "0"))
		return 0;
	if (!strncmp(s, "SIG", 3))
		s += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *n = sigabbrev_np(i);

		if (n && !strcasecmp(n, s))
			return i;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v >= NSIG)
		return -EINVAL;
	return (int)v;
}

/* "exited with status 3", "was killed by SIGSEGV (core dumped)" */
static const char *describe_status(int status)
{
	static char buf[64];

	if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "was killed by %s%s",
			 sig_name(WTERMSIG(status)),
			 WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, sizeof(buf), "ended with wait status 0x%x",
			 status);
	return buf;
}

/* What luod-exec exits with once PROGRAM has ended: PROGRAM's own status. */
static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EXIT_FAILED;
}

/* Labels and tokens */

static bool valid_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > LABEL_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
		      *s == '-'))
			return false;
	return true;
}

/*
 * A token must not change from one luod-exec to the next, whatever order
 * the --fd options come in: FNV-1a of the label is stable and needs no
 * state. Token 0 is the manifest's.
 */
static uint64_t label_token(const char *label)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)label; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return h;
}

static const char *human_size(uint64_t n)
{
	static char bufs[4][32];
	static unsigned i;
	char *b = bufs[i++ % 4];

	if (n >= (1ULL << 30) && n % (1ULL << 30) == 0)
		snprintf(b, 32, "%" PRIu64 " GiB", n >> 30);
	else if (n >= (1ULL << 20) && n % (1ULL << 20) == 0)
		snprintf(b, 32, "%" PRIu64 " MiB", n >> 20);
	else if (n >= (1ULL << 10) && n % (1ULL << 10) == 0)
		snprintf(b, 32, "%" PRIu64 " KiB", n >> 10);
	else
		snprintf(b, 32, "%" PRIu64 " bytes", n);
	return b;
}

/* "4096", "64K", "256M", "1G", "2GiB" */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	case 'T':
	case 't':
		shift = 40;
		end++;
		break;
	}
	if (shift && (streq(end, "iB") || streq(end, "B")))
		end += strlen(end);
	if (*end || v == 0 || v > (UINT64_MAX >> shift) ||
	    (v << shift) > (uint64_t)INT64_MAX)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* LABEL=N[:SIZE] */
static int parse_fd_option(const char *s)
{
	struct rlimit rl = { .rlim_cur = 1024 };
	struct mem *m;
	const char *eq = strchr(s, '='), *num;
	char *end;
	long n;

	if (arg.n_mems == MAX_MEMS) {
		log_error("at most %d --fd options", MAX_MEMS);
		return -E2BIG;
	}
	m = &arg.mems[arg.n_mems];
	*m = (struct mem){ .fd = -1 };
	if (!eq || (size_t)(eq - s) > LABEL_MAX) {
		log_error(
			"--fd '%s': expected LABEL=N[:SIZE], for example ram=3:256M",
			s);
		return -EINVAL;
	}
	memcpy(m->label, s, (size_t)(eq - s));
	if (!valid_label(m->label)) {
		log_error(
			"--fd '%s': a label is 1 to %d bytes of A-Z a-z 0-9 . _ -",
			s, LABEL_MAX);
		return -EINVAL;
	}
	num = eq + 1;
	errno = 0;
	n = strtol(num, &end, 10);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (errno || end == num || (*end && *end != ':') || n < 0 ||
	    (rlim_t)n >= rl.rlim_cur) {
		log_error(
			"--fd '%s': N must be an fd number below the open file limit (%llu)",
			s, (unsigned long long)rl.rlim_cur);
		return -EINVAL;
	}
	if (n < 3) {
		log_error(
			"--fd '%s': fd %ld is PROGRAM's stdin, stdout or stderr; use 3 or above",
			s, n);
		return -EINVAL;
	}
	m->target = (int)n;
	if (*end == ':' && parse_size(end + 1, &m->size) < 0) {
		log_error(
			"--fd '%s': SIZE must be a positive number of bytes, optionally with K, M, G or T",
			s);
		return -EINVAL;
	}
	m->token = label_token(m->label);
	if (m->token == MANIFEST_TOKEN) {
		log_error(
			"--fd '%s': label '%s' hashes to token 0, which the manifest uses; pick another label",
			s, m->label);
		return -EINVAL;
	}
	for (size_t i = 0; i < arg.n_mems; i++) {
		struct mem *o = &arg.mems[i];

		if (streq(o->label, m->label)) {
			log_error("--fd: label '%s' is given twice", m->label);
			return -EINVAL;
		}
		if (o->target == m->target) {
			log_error("--fd: fd %d is given to both '%s' and '%s'",
				  m->target, o->label, m->label);
			return -EINVAL;
		}
		if (o->token == m->token) {
			log_error(
				"--fd: labels '%s' and '%s' hash to the same token; rename one",
				o->label, m->label);
			return -EINVAL;
		}
	}
	arg.n_mems++;
	return 0;
}

/* luod */

static bool starting; /* until PROGRAM runs: a lost luod is waited for */

static bool connection_lost(int r)
{
	return r == -ECONNRESET || r == -EPIPE || r == -EIO || r == -ENOTCONN;
}

/* luod is restarting (or not up yet): the same request to a new one may work. */
static bool luod_transient(int r)
{
	return r == -ENOENT || r == -ECONNREFUSED || connection_lost(r);
}

static int luod_failed(const char *what, int r)
{
	if (starting && luod_transient(r))
		return r; /* wait_for_luod() says it */
	if (r == -EPROTO)
		log_error("%s: luod refused: %s: %s", what,
			  luod_last_error(client),
			  luod_last_error_message(client));
	else
		log_error("%s: %s", what, strerror(-r));
	return r;
}

static void release_session(void);

/* The manifest */

static int write_manifest(int *out)
{
	_cleanup_close_ int fd =
		memfd_create("luod-exec-manifest", MFD_CLOEXEC);
	_cleanup_fclose_ FILE *f = NULL;
	int r;

	if (fd < 0)
		return -errno;
	f = fdopen(dup(fd), "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\nid %s\nprogram %s\n", MANIFEST_MAGIC, arg.id,
		arg.argv[0]);
	/* fd LABEL N SIZE TOKEN */
	for (size_t i = 0; i < arg.n_mems; i++)
		fprintf(f, "fd %s %d %" PRIu64 " %016" PRIx64 "\n",
			arg.mems[i].label, arg.mems[i].target, arg.mems[i].size,
			arg.mems[i].token);
	r = fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
	if (r < 0)
		return r;
	*out = take_fd(&fd);
	return 0;
}

struct manifest_entry {
	char label[LABEL_MAX + 1];
	int target;
	uint64_t size, token;
	bool used;
};

static int read_manifest(int fd, struct manifest_entry *e, size_t *n)
{
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL;
	int r;

	r = read_all_fd(fd, MANIFEST_MAX, &text, NULL);
	if (r < 0)
		return r;
	line = strtok_r(text, "\n", &save);
	if (!streq(line, MANIFEST_MAGIC))
		return -EBADMSG;
	*n = 0;
	while ((line = strtok_r(NULL, "\n", &save))) {
		struct manifest_entry x = { 0 };

		if (strncmp(line, "fd ", 3))
			continue; /* id, program: for people */
		if (sscanf(line, "fd %64s %d %" SCNu64 " %" SCNx64, x.label,
			   &x.target, &x.size, &x.token) != 4 ||
		    *n == MAX_MEMS)
			return -EBADMSG;
		e[(*n)++] = x;
	}
	return 0;
}

/* Memory */

static int create_mem(struct mem *m)
{
	char name[LABEL_MAX + 16];

	if (!m->size) {
		log_error(
			"--fd %s=%d: no SIZE, and there is no memory of that label to restore; give it as %s=%d:SIZE",
			m->label, m->target, m->label, m->target);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "luod-exec:%s", m->label);
	m->fd = memfd_create(name, MFD_CLOEXEC);
	if (m->fd < 0)
		return log_errno(-errno, "memfd_create for '%s'", m->label);
	if (ftruncate(m->fd, (off_t)m->size) < 0)
		return log_errno(-errno, "sizing '%s' to %s", m->label,
				 human_size(m->size));
	m->fresh = true;
	return 0;
}

/*
 * A fresh outgoing session with every memfd and the manifest. PRESERVE_FD
 * allocates and pins the memory, so a SIZE the machine cannot hold fails
 * here, before PROGRAM starts.
 */
static int preserve_all(void)
{
	_cleanup_close_ int manifest = -1;
	int r;

	r = luod_create_session(client, arg.session, &session_fd);
	if (r < 0)
		return luod_failed("creating the session", r);
	for (size_t i = 0; i < arg.n_mems; i++) {
		struct mem *m = &arg.mems[i];

		r = luod_session_preserve_fd(session_fd, m->fd, m->token);
		if (r < 0) {
			log_error(
				"preserving '%s' (%s) in session %s: %s; check that there is that much free memory",
				m->label, human_size(m->size), arg.session,
				strerror(-r));
			goto fail;
		}
	}
	r = write_manifest(&manifest);
	if (r < 0) {
		log_errno(r, "writing the manifest");
		goto fail;
	}
	r = luod_session_preserve_fd(session_fd, manifest, MANIFEST_TOKEN);
	if (r < 0) {
		log_errno(r, "preserving the manifest");
		goto fail;
	}
	return 0;
fail:
	/* A half-filled session must not go through an update. */
	release_session();
	return r;
}

/*
 * Take the memory back from a session that came through an update. Labels
 * the manifest has are retrieved; new labels get fresh memory.
 */
static int restore_mems(int sfd)
{
	struct manifest_entry entries[MAX_MEMS];
	_cleanup_close_ int manifest = -1;
	size_t n = 0;
	int r;

	manifest = luod_session_retrieve_fd(sfd, MANIFEST_TOKEN);
	if (manifest < 0) {
		log_error(
			"retrieving the manifest (token 0) of session %s: %s; a session not made by luod-exec has none, "
			"and 'luoctl release %s %s' drops it (see luod-exec(1), THE SESSION)",
			arg.session, strerror(-manifest), arg.id, arg.session);
		return manifest;
	}
	r = read_manifest(manifest, entries, &n);
	if (r < 0)
		return log_errno(r, "reading the manifest of session %s",
				 arg.session);

	for (size_t i = 0; i < arg.n_mems; i++) {
		struct mem *m = &arg.mems[i];
		struct manifest_entry *e = NULL;
		struct stat st;

		for (size_t j = 0; j < n; j++)
			if (streq(entries[j].label, m->label))
				e = &entries[j];
		if (!e) {
			log_notice(
				"'%s' did not come through the update; it gets fresh memory",
				m->label);
			r = create_mem(m);
			if (r < 0)
				return r;
			continue;
		}
		e->used = true;
		if (e->token != m->token) {
			log_error(
				"the manifest has token %016" PRIx64
				" for '%s', not %016" PRIx64
				", so the session was perhaps made by another luod-exec version (see luod-exec(1), THE SESSION)",
				e->token, m->label, m->token);
			return -EBADMSG;
		}
		m->fd = luod_session_retrieve_fd(sfd, m->token);
		if (m->fd < 0)
			return log_errno(m->fd,
					 "retrieving '%s' (token %016" PRIx64
					 ")",
					 m->label, m->token);
		/* LUO does not keep FD_CLOEXEC. */
		fcntl(m->fd, F_SETFD, FD_CLOEXEC);
		if (fstat(m->fd, &st) < 0)
			return log_errno(-errno, "fstat of '%s'", m->label);
		if (m->size && (uint64_t)st.st_size != m->size) {
			log_error(
				"'%s' came through the update with %s but --fd asks for %s; give the old size, or leave SIZE out to take what came through",
				m->label, human_size((uint64_t)st.st_size),
				human_size(m->size));
			return -EINVAL;
		}
		m->size = (uint64_t)st.st_size;
		if (e->target != m->target)
			log_notice(
				"'%s' was at fd %d before the update; --fd puts it at fd %d now",
				m->label, e->target, m->target);
	}
	for (size_t j = 0; j < n; j++)
		if (!entries[j].used)
			log_warning(
				"'%s' (%s) came through the update but no --fd asks for it; its memory is freed",
				entries[j].label, human_size(entries[j].size));
	return 0;
}

/* PROGRAM */

static _Noreturn void child_fail(int err_fd, int e)
{
	(void)!write(err_fd, &e, sizeof(e));
	_exit(EXIT_CANNOT_EXEC);
}

static void describe_fds(char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < arg.n_mems && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s=%d",
					i ? " " : "", arg.mems[i].label,
					arg.mems[i].target);
}

/*
 * Runs in the child: put every memfd at its fd number without FD_CLOEXEC,
 * undo luod-exec's signal setup, exec. Sources are moved above every
 * target first, so no dup2() overwrites a memfd not yet placed.
 */
static _Noreturn void exec_child(int err_fd, const char *state)
{
	int high = 3, fds[MAX_MEMS];
	char buf[MAX_MEMS * (LABEL_MAX + 12)];

	for (size_t i = 0; i < arg.n_mems; i++)
		if (arg.mems[i].target >= high)
			high = arg.mems[i].target + 1;
	err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, high);
	if (err_fd < 0)
		_exit(EXIT_CANNOT_EXEC);
	for (size_t i = 0; i < arg.n_mems; i++) {
		fds[i] = fcntl(arg.mems[i].fd, F_DUPFD_CLOEXEC, high);
		if (fds[i] < 0)
			child_fail(err_fd, errno);
	}
	for (size_t i = 0; i < arg.n_mems; i++)
		if (dup2(fds[i], arg.mems[i].target) < 0)
			child_fail(err_fd, errno);

	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &orig_mask, NULL);

	describe_fds(buf, sizeof(buf));
	setenv("LUOD_EXEC_FDS", buf, 1);
	setenv("LUOD_EXEC_STATE", state, 1);
	setenv("LUOD_EXEC_ID", arg.id, 1);
	execvp(arg.argv[0], qemu_argv ?: arg.argv);
	child_fail(err_fd, errno);
}

/* --qemu */

static struct mem *qemu_ram(void)
{
	for (size_t i = 0; i < arg.n_mems; i++)
		if (streq(arg.mems[i].label, QEMU_RAM_LABEL))
			return &arg.mems[i];
	return NULL;
}

/*
 * QEMU's arguments and luod-exec's: guest RAM in the memfd, through
 * procfs because QEMU 11.1's memory-backend-file cannot take an fd set,
 * the QMP socket, and -incoming for a VM that was saved.
 */
static int build_qemu_argv(bool incoming)
{
	static char backend[128], msize[32], qmparg[PATH_MAX + 32];
	const struct mem *ram = qemu_ram();
	size_t n = 0, argc = 0;

	while (arg.argv[argc])
		argc++;
	free(qemu_argv);
	qemu_argv = calloc(argc + 11, sizeof(char *));
	if (!qemu_argv)
		return -ENOMEM;
	for (size_t i = 0; i < argc; i++)
		qemu_argv[n++] = arg.argv[i];
	snprintf(backend, sizeof(backend),
		 "memory-backend-file,id=luod-ram,size=%" PRIu64
		 ",mem-path=/proc/self/fd/%d,share=on",
		 ram->size, ram->target);
	snprintf(msize, sizeof(msize), "%" PRIu64 "M", ram->size >> 20);
	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off",
		 arg.qmp_path);
	qemu_argv[n++] = "-object";
	qemu_argv[n++] = backend;
	qemu_argv[n++] = "-machine";
	qemu_argv[n++] = "memory-backend=luod-ram";
	qemu_argv[n++] = "-m";
	qemu_argv[n++] = msize;
	qemu_argv[n++] = "-qmp";
	qemu_argv[n++] = qmparg;
	if (incoming) {
		qemu_argv[n++] = "-incoming";
		qemu_argv[n++] = "defer";
	}
	return 0;
}

/* SIGTERM, or SIGKILL for a QEMU whose QMP is gone: dying or beyond reach. */
static void qemu_stop(int sig)
{
	if (prog.pid) {
		kill(prog.pid, sig);
		waitpid(prog.pid, &prog.status, 0);
		prog.pid = 0;
	}
	qmp_close(qmp);
	qmp = NULL;
}

/* QEMU has started: talk to it, and load the VM it is to resume. Returns
 * 0, or luod-exec's exit status. */
static int qemu_started(const char *state)
{
	uint64_t t0 = now_mono_us(), deadline = t0 + QEMU_START_TIMEOUT_US;
	char err[512];
	int r;

	r = qmp_connect(arg.qmp_path, prog.pid, deadline, &qmp, err,
			sizeof(err));
	if (r == 0 && !streq(state, "new")) {
		r = qemu_load(qmp, arg.state_path, deadline, err, sizeof(err));
		if (r == 0) {
			log_info("QEMU loaded the VM from %s in %.2f s; it runs again",
				 arg.state_path,
				 (double)(now_mono_us() - t0) / 1e6);
			/* Used: no later start may take it for a newer one. */
			unlink(arg.state_path);
		}
	}
	if (r == 0)
		return 0;
	log_error("QEMU (pid %d) did not %s: %s; the VM's memory stays in session %s: run luod-exec again to retry, "
		  "or 'luoctl release %s %s' to drop it",
		  (int)prog.pid, streq(state, "new") ? "start" : "resume the VM",
		  err, arg.session, arg.id, arg.session);
	qemu_stop(SIGTERM);
	return EXIT_FAILED;
}

/*
 * QEMU 11.1 reports a write that ran out of space as "ram_save_setup
 * failed: Input/output error": the cause, when it is that, is added.
 */
static const char *state_fs_full(void)
{
	static char buf[256];
	_cleanup_free_ char *copy = strdup(arg.state_path);
	const char *dir = copy ? dirname(copy) : NULL;
	struct statvfs st;

	if (!dir || statvfs(dir, &st) < 0 ||
	    (uint64_t)st.f_bavail * st.f_frsize >= QEMU_STATE_ROOM)
		return "";
	snprintf(
		buf, sizeof(buf),
		" (the file system of %.120s is full: %s free; free some space or move --qemu-state)",
		dir, human_size((uint64_t)st.f_bavail * st.f_frsize));
	return buf;
}

/* PREPARE: QEMU saves the VM and quits; its exit makes luod-exec READY. */
static void qemu_prepare(void)
{
	uint64_t t0 = now_mono_us(), bytes = 0;
	char err[400];
	int r;

	prepare_error[0] = '\0';
	qemu_saved = false;
	if (!qmp) {
		snprintf(prepare_error, sizeof(prepare_error),
			 "luod-exec %s has no QMP connection to QEMU", arg.id);
		return;
	}
	r = qemu_save(qmp, arg.state_path, deadline_us, &bytes, err,
		      sizeof(err));
	if (r < 0) {
		/* NOT_READY follows at once, and resume_after_abort() runs
		 * the VM again. */
		/* Half a file: no later load may take it. */
		unlink(arg.state_path);
		snprintf(prepare_error, sizeof(prepare_error),
			 "QEMU (luod-exec %s) could not save the VM: %s%s",
			 arg.id, err, state_fs_full());
		return;
	}
	qemu_saved = true;
	log_info("QEMU saved the VM in %.2f s: %" PRIu64
		 " bytes of state in %s, its %s of RAM left in the memfd",
		 (double)(now_mono_us() - t0) / 1e6, bytes, arg.state_path,
		 human_size(qemu_ram()->size));
	r = qmp_call(qmp, "quit", NULL, NULL, deadline_us, err, sizeof(err));
	if (r < 0 && r != -ECONNRESET)
		log_warning("QEMU did not take quit (%s); luod-exec waits for it to exit",
			    err);
}

/*
 * Start PROGRAM. state tells it how it finds its memory: "new", "restored"
 * (after a live update) or "restarted" (same boot, after an aborted
 * update). Returns 0, or an exit status of luod-exec when exec failed.
 */
static int start_program(const char *state)
{
	_cleanup_close_ int rd = -1, wr = -1;
	int p[2], e = 0;
	ssize_t n;
	pid_t pid;

	if (arg.qemu) {
		if (build_qemu_argv(!streq(state, "new")) < 0)
			return log_errno(-ENOMEM, "QEMU's arguments"), EXIT_FAILED;
		/* A VM that starts afresh has no saved state to go back to. */
		if (streq(state, "new"))
			unlink(arg.state_path);
	}

	if (pipe2(p, O_CLOEXEC) < 0)
		return log_errno(-errno, "pipe2"), EXIT_FAILED;
	rd = p[0];
	wr = p[1];
	pid = fork();
	if (pid < 0)
		return log_errno(-errno, "fork"), EXIT_FAILED;
	if (pid == 0)
		exec_child(wr, state);
	wr = safe_close(wr);
	/* The pipe closes on a successful exec and carries errno otherwise. */
	do
		n = read(rd, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(e)) {
		waitpid(pid, NULL, 0);
		log_error("cannot run %s: %s", arg.argv[0], strerror(e));
		return e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
	}
	prog = (struct prog){ .pid = pid,
			      .started_us = now_mono_us(),
			      .starts = prog.starts + 1 };
	log_info("started %s (pid %d, %s memory)", arg.argv[0], (int)pid,
		 state);
	return arg.qemu ? qemu_started(state) : 0;
}

/* Reap PROGRAM if it has exited. Returns true if it has. */
static bool reap(void)
{
	int status;
	pid_t r;

	if (!prog.pid)
		return true;
	do
		r = waitpid(prog.pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return false;
	prog.pid = 0;
	prog.status = status;
	qmp_close(qmp);
	qmp = NULL;
	return true;
}

/* Release our session: PROGRAM is gone and nobody will claim its memory. */
static void release_session(void)
{
	int r;

	if (session_fd < 0)
		return;
	for (int tries = 0;; tries++) {
		r = luod_release(client, arg.id, arg.session);
		/* While an update is still winding down, RELEASE is refused. */
		if (r == -EPROTO &&
		    streq(luod_last_error(client), "WRONG_STATE") &&
		    tries < 50) {
			struct luod_event ev;

			if (luod_next_event(client, &ev, 100) == 1)
				safe_close(ev.new_session_fd);
			continue;
		}
		break;
	}
	if (r < 0)
		luod_failed("releasing the session", r);
	else
		log_info("released session %s: its memory is freed",
			 arg.session);
	session_fd = safe_close(session_fd);
}

/*
 * The claimed session goes back to userspace: SESSION_FINISH, FINISHED,
 * then a fresh session with the same memory for the next update (a
 * retrieved session takes no new files).
 */
static bool finish_pending; /* the kernel's FINISH is done; luod not told */

/* Tell luod, then preserve the memory again for the next update. */
static int report_finished(const char *why)
{
	int r = luod_finished(client, arg.session);

	if (connection_lost(r)) {
		/* The memory is ours since the kernel's FINISH: PROGRAM goes
		 * on with it, and luod hears of it once it is back. */
		log_warning("lost luod before reporting FINISHED (%s); %s keeps running, and luod-exec reports it "
			    "when luod is back",
			    strerror(-r), arg.argv[0]);
		finish_pending = true;
		luod_lost = true;
		return 0;
	}
	finish_pending = false;
	if (r < 0)
		return luod_failed("reporting FINISHED", r);
	incoming_fd = safe_close(incoming_fd);
	log_info("FINISHED session %s (%s)", arg.session, why);
	r = preserve_all();
	if (r < 0)
		return r;
	log_info("memory preserved again for the next update");
	return 0;
}

static int finish_incoming(const char *why)
{
	int r;

	if (incoming_fd < 0 || finish_pending)
		return 0;
	r = luod_session_finish(incoming_fd);
	if (r < 0)
		return log_errno(r, "LIVEUPDATE_SESSION_FINISH of session %s",
				 arg.session);
	return report_finished(why);
}

/* Updates */

static void send_ready(void)
{
	int r = luod_ready(client);

	if (r == -EPROTO && streq(luod_last_error(client), "WRONG_STATE")) {
		log_notice("the update ended before READY: %s",
			   luod_last_error_message(client));
		update_aborted = true;
		return;
	}
	if (r < 0) {
		luod_failed("sending READY", r);
		return;
	}
	phase = PH_READY;
	log_info("READY");
}

static void send_not_ready(const char *reason)
{
	int r = luod_not_ready(client, reason);

	log_error("NOT_READY: %s", reason);
	if (r < 0 &&
	    !(r == -EPROTO && streq(luod_last_error(client), "WRONG_STATE")))
		luod_failed("sending NOT_READY", r);
}

static void on_prepare(const struct luod_event *ev)
{
	long timeout_ms = (long)ev->timeout_ms - 1000;

	/* luod times out on its own; answering first gives it our reason. */
	if (timeout_ms < 1000)
		timeout_ms = 1000;
	if (arg.prepare_timeout_ms && arg.prepare_timeout_ms < timeout_ms)
		timeout_ms = arg.prepare_timeout_ms;
	update_aborted = false;
	phase = PH_PREPARING;
	deadline_us = now_mono_us() + (uint64_t)timeout_ms * 1000;
	prog.signalled_us = now_mono_us();
	if (arg.ready_file && unlink(arg.ready_file) < 0 && errno != ENOENT)
		log_warning("cannot remove the old ready file %s: %s",
			    arg.ready_file, strerror(errno));
	if (!prog.pid) {
		log_info("PREPARE for update %" PRIu64 ": %s is not running",
			 ev->update, arg.argv[0]);
		return;
	}
	if (arg.qemu) {
		log_info("PREPARE for update %" PRIu64
			 ": QEMU (pid %d) saves the VM (cpr-reboot)",
			 ev->update, (int)prog.pid);
		qemu_prepare();
		return;
	}
	if (arg.signal && kill(prog.pid, arg.signal) < 0)
		log_warning("sending %s to %s (pid %d): %s",
			    sig_name(arg.signal), arg.argv[0], (int)prog.pid,
			    strerror(errno));
	log_info("PREPARE for update %" PRIu64
		 ": sent %s to %s (pid %d); waiting up to %.1f s for it to %s",
		 ev->update, arg.signal ? sig_name(arg.signal) : "no signal",
		 arg.argv[0], (int)prog.pid, timeout_ms / 1000.0,
		 arg.ready_file ? "exit or create the ready file" : "exit");
}

/*
 * The VM runs again after an aborted update: QEMU goes on if it is still
 * there, else starts again from the saved state, else (it died before the
 * save ended) boots the VM afresh on the same memory, as after a crash:
 * the memory stays in this session either way. Returns -1 to go on, or
 * luod-exec's exit status.
 */
static int qemu_after_abort(void)
{
	char err[512];
	int r;

	if (prog.pid && qmp &&
	    qemu_resume(qmp, now_mono_us() + 10000000, err, sizeof(err)) == 0)
		return -1;
	qemu_stop(SIGKILL);
	if (qemu_saved) {
		r = start_program("restarted");
	} else {
		log_warning(
			"QEMU %s before it saved the VM, so the VM's devices are lost: luod-exec boots the VM again "
			"on the same memory and session, as after a crash; see luod-exec(1), FAILURES",
			describe_status(prog.status));
		r = start_program("new");
	}
	qemu_saved = false;
	return r == 0 ? -1 : r;
}

/*
 * An update PROGRAM got ready for did not happen: carry on. Returns -1 to
 * go on, or luod-exec's exit status when PROGRAM cannot.
 */
static int resume_after_abort(void)
{
	int r;

	phase = PH_IDLE;
	update_aborted = false;
	prepare_error[0] = '\0';
	if (arg.qemu)
		return qemu_after_abort();
	if (!prog.pid) {
		if (exit_code(prog.status) != 0)
			return exit_code(prog.status); /* reported already */
		log_info("restarting %s with the same memory", arg.argv[0]);
		r = start_program("restarted");
		return r == 0 ? -1 : r;
	}
	if (arg.ready_file)
		unlink(arg.ready_file);
	if (arg.resume_signal) {
		kill(prog.pid, arg.resume_signal);
		log_info("sent %s to %s (pid %d) so it resumes",
			 sig_name(arg.resume_signal), arg.argv[0],
			 (int)prog.pid);
	} else if (prog.signalled_us) {
		log_notice(
			"%s (pid %d) is still running; if it paused for the update, resume it (--resume-signal does that)",
			arg.argv[0], (int)prog.pid);
	}
	return -1;
}

/*
 * While PREPARING: is PROGRAM done? Returns -1 to go on waiting, 1 when it
 * got ready, 0 when it failed, with the reason for luod in reason.
 */
static int check_prepared(char *reason, size_t size)
{
	double took = (double)(now_mono_us() - prog.signalled_us) / 1e6;
	struct stat st;

	if (prepare_error[0]) {
		snprintf(reason, size, "%s", prepare_error);
		return 0;
	}
	if (!prog.pid && arg.qemu && !qemu_saved) {
		snprintf(reason, size,
			 "QEMU (luod-exec %s) %s before it saved the VM",
			 arg.id, describe_status(prog.status));
		return 0;
	}
	if (!prog.pid) {
		if (exit_code(prog.status) == 0) {
			log_info("%s %s after %.2f s", arg.argv[0],
				 describe_status(prog.status), took);
			return 1;
		}
		snprintf(
			reason, size,
			"%s (luod-exec %s) %s while getting ready for the update",
			arg.argv[0], arg.id, describe_status(prog.status));
		return 0;
	}
	if (arg.ready_file && stat(arg.ready_file, &st) == 0) {
		log_info(
			"%s created %s after %.2f s; it keeps running until the reboot",
			arg.argv[0], arg.ready_file, took);
		return 1;
	}
	if (now_mono_us() < deadline_us)
		return -1;
	snprintf(
		reason, size,
		"%s (luod-exec %s, pid %d) neither exited%s within %.1f s of %s",
		arg.argv[0], arg.id, (int)prog.pid,
		arg.ready_file ? " nor created its ready file" : "", took,
		arg.signal ? sig_name(arg.signal) : "PREPARE");
	return 0;
}

/* The loop */

static int setup_signals(int *sfd)
{
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (arg.finish_signal)
		sigaddset(&mask, arg.finish_signal);
	if (sigprocmask(SIG_BLOCK, &mask, &orig_mask) < 0)
		return -errno;
	*sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	return *sfd < 0 ? -errno : 0;
}

/* Returns luod-exec's exit status when it is time to exit, else -1. */
static int handle_signal(int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGCHLD)
			continue; /* reaped by the loop */
		if (sig == arg.finish_signal && incoming_fd >= 0) {
			if (finish_incoming("on signal") < 0)
				return EXIT_FAILED;
			continue;
		}
		if (sig != SIGTERM && sig != SIGINT && sig != SIGHUP)
			continue;
		if (phase == PH_READY) {
			/* luod holds the session across the reboot. */
			log_info(
				"got %s after READY: exiting; the memory goes through the update",
				sig_name(sig));
			return 0;
		}
		if (phase == PH_PREPARING && !update_aborted) {
			send_not_ready("luod-exec was told to stop");
			update_aborted = true;
		}
		phase = PH_STOPPING;
		if (!prog.pid)
			return exit_code(prog.status);
		log_info("got %s: passing SIGTERM to %s (pid %d)",
			 sig_name(sig), arg.argv[0], (int)prog.pid);
		kill(prog.pid, SIGTERM);
	}
	return -1;
}

/* PROGRAM has ended outside an update: so does luod-exec. */
static int program_ended(void)
{
	if (incoming_fd >= 0) {
		log_error(
			"%s %s before the session was finished; luod still holds it: run luod-exec again to retry with the same memory, or 'luoctl release %s %s' to drop it",
			arg.argv[0], describe_status(prog.status), arg.id,
			arg.session);
		return exit_code(prog.status);
	}
	log_info("%s %s", arg.argv[0], describe_status(prog.status));
	release_session();
	return exit_code(prog.status);
}

/*
 * While PREPARING: answer luod once PROGRAM is done. Returns the poll
 * timeout to use, or -2 with *exit_status set when luod-exec must exit.
 */
static int step_prepare(int *exit_status)
{
	char reason[1024];
	int r = check_prepared(reason, sizeof(reason));

	if (r < 0)
		return 20; /* look at the ready file and the deadline again */
	if (!update_aborted) {
		if (r == 1) {
			send_ready();
			if (!update_aborted)
				return -1;
		} else {
			send_not_ready(reason);
			update_aborted = true;
		}
	}
	/* Aborted, by luod or by us: PROGRAM carries on, if it can. */
	r = resume_after_abort();
	if (r < 0)
		return -1;
	release_session();
	*exit_status = r;
	return -2;
}

/*
 * luod went away (restarted, or crashed). An update it was running is
 * over; PROGRAM carries on. Returns -1, or luod-exec's exit status.
 */
static int lost_luod(int r)
{
	luod_failed("lost luod", r);
	luod_lost = true;
	if (phase == PH_READY) {
		/* systemctl kexec stops luod as well: after READY, luod going
		 * away may be the reboot itself, and resuming now would change
		 * memory that is on its way across. */
		log_warning(
			"luod went away after READY: %s stays as it was prepared until luod is back (the update is then over) or this reboot ends it; see luod-exec(1)",
			arg.argv[0]);
		return -1;
	}
	log_warning(
		"%s keeps running; luod-exec reconnects when luod is back and hands it the session again",
		arg.argv[0]);
	if (phase == PH_PREPARING)
		update_aborted = true; /* once PROGRAM is done */
	return -1;
}

/*
 * While luod is away: try again. Returns the poll timeout to use; *answered
 * says a luod that is not rebooting answered, whether or not it took the
 * session back.
 */
static int try_reconnect(int timeout, bool *answered)
{
	static bool said;
	int r = luod_reconnect(client, 0);

	/* BUSY may be a luod that is rebooting. */
	*answered = r == 0 ||
		    (r == -EPROTO && !streq(luod_last_error(client), "BUSY"));
	if (r == 0) {
		luod_lost = said = false;
		log_info(
			"luod is back: session %s re-attached, subscribed again",
			arg.session);
		if (finish_pending && report_finished("luod is back") < 0)
			log_warning("session %s stays claimed in luod: 'luoctl release %s %s' drops it",
				    arg.session, arg.id, arg.session);
		return timeout;
	}
	if (r == -EPROTO && !said) {
		/* It is up but will not take the session back. */
		luod_failed("re-attaching to the new luod", r);
		said = true;
	}
	return timeout < 0 || timeout > 1000 ? 1000 : timeout;
}

/* Returns luod-exec's exit status. */
static int run(int sfd)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = luod_fd(client), .events = POLLIN },
		};
		struct luod_event ev;
		int timeout = -1, r;

		if (reap() && (phase == PH_IDLE || phase == PH_STOPPING))
			return program_ended();
		if (phase == PH_PREPARING) {
			timeout = step_prepare(&r);
			if (timeout == -2)
				return r;
		}
		if (luod_lost) {
			bool answered;

			timeout = try_reconnect(timeout, &answered);
			/* A luod that answers is a new one, not rebooting. */
			if (answered && phase == PH_READY) {
				log_info(
					"luod is back, so the update did not happen: %s carries on",
					arg.argv[0]);
				r = resume_after_abort();
				if (r >= 0)
					return r;
			}
		}

		r = poll(p, luod_lost ? 1 : 2, timeout);
		if (r < 0 && errno != EINTR)
			return log_errno(-errno, "poll"), EXIT_FAILED;
		if (p[0].revents) {
			r = handle_signal(sfd);
			if (r >= 0)
				return r;
		}
		if (luod_lost || !p[1].revents)
			continue;
		r = luod_next_event(client, &ev, 0);
		if (r < 0) {
			r = lost_luod(r);
			if (r >= 0)
				return r;
			continue;
		}
		if (r == 0)
			continue;
		safe_close(ev.new_session_fd); /* we have our own */
		if (ev.type == LUOD_EVENT_PREPARE) {
			on_prepare(&ev);
		} else if (ev.type == LUOD_EVENT_ABORTED) {
			log_notice("update aborted: %s", ev.reason);
			if (phase == PH_PREPARING) {
				update_aborted = true; /* wait for PROGRAM */
			} else if (phase == PH_READY) {
				r = resume_after_abort();
				if (r >= 0) {
					release_session();
					return r;
				}
			}
		}
	}
}

/* Setup */

static void help(void)
{
	printf("Usage: luod-exec --id ID --fd LABEL=N[:SIZE]... [OPTIONS] -- PROGRAM [ARGS...]\n"
	       "\n"
	       "Run PROGRAM with memfds that survive live updates, for programs that do\n"
	       "not speak luod's protocol (a VMM with -add-fd, for example).\n"
	       "\n"
	       "First start: creates a memfd of SIZE bytes per label and preserves it in a\n"
	       "LUO session. After a live update: takes the same memory back. Either way\n"
	       "PROGRAM starts with each memfd at fd N. At an update, PROGRAM gets a signal\n"
	       "and luod-exec tells luod it is ready once PROGRAM has exited (or created\n"
	       "the ready file). PROGRAM sees LUOD_EXEC_STATE=new, restored or restarted.\n"
	       "\n"
	       "Options:\n"
	       "  -i, --id ID               luod client id (required)\n"
	       "  -f, --fd LABEL=N[:SIZE]   a memfd labelled LABEL at fd N (3 or above);\n"
	       "                            SIZE in bytes or with K, M, G, T; needed when\n"
	       "                            the memory is created\n"
	       "  -n, --session NAME        LUO session name (default: exec)\n"
	       "  -s, --signal SIG          sent to PROGRAM at PREPARE (default: USR1; none)\n"
	       "  -r, --ready-file PATH     PROGRAM is ready once PATH exists (it may keep\n"
	       "                            running); otherwise once it exits with status 0\n"
	       "  -t, --prepare-timeout S   seconds PROGRAM may take to get ready (default:\n"
	       "                            luod's update timeout less 1 s)\n"
	       "      --resume-signal SIG   sent to a still-running PROGRAM when an update\n"
	       "                            it got ready for is aborted\n"
	       "      --finish-after SIG    after an update, report FINISHED when luod-exec\n"
	       "                            gets SIG, not as soon as PROGRAM has started\n"
	       "      --qemu                PROGRAM is QEMU: luod-exec gives it guest RAM from\n"
	       "                            --fd ram=N:SIZE, a QMP socket and -incoming, and\n"
	       "                            saves and loads the VM over QMP (cpr-reboot)\n"
	       "      --qmp PATH            QEMU's QMP socket (default: /run/luod-exec/ID.qmp)\n"
	       "      --qemu-state PATH     the VM's saved state, on a disk that survives a\n"
	       "                            reboot (default: /var/lib/luod-exec/ID.cpr)\n"
	       "  -S, --socket PATH         luod's socket (default: $LUOD_SOCKET, else luod's)\n"
	       "      --wait-luod S         seconds the start waits for a luod that does not\n"
	       "                            answer or restarts (default: 90; 0: no wait)\n"
	       "  -h, --help                show this help\n"
	       "\n"
	       "Exit status: PROGRAM's, or 128+N if it was killed by signal N; 125 if\n"
	       "luod-exec failed, 126 if PROGRAM cannot run, 127 if it is not found.\n");
}

static int check_qemu_args(char *qmp_path, char *state_path)
{
	const struct mem *ram = qemu_ram();

	if (!ram) {
		log_error("--qemu needs the guest RAM as --fd %s=N:SIZE",
			  QEMU_RAM_LABEL);
		return -EINVAL;
	}
	if (ram->size % (1 << 20)) {
		log_error("--fd %s: QEMU's RAM is a whole number of MiB, not %s",
			  QEMU_RAM_LABEL, human_size(ram->size));
		return -EINVAL;
	}
	if (strchr(arg.id, '/') || strchr(arg.id, ',')) {
		log_error("--qemu: the id names files, so it cannot hold '/' or ','");
		return -EINVAL;
	}
	if (!arg.qmp_path) {
		snprintf(qmp_path, PATH_MAX, "/run/luod-exec/%s.qmp", arg.id);
		arg.qmp_path = qmp_path;
	}
	if (!arg.state_path) {
		snprintf(state_path, PATH_MAX, "/var/lib/luod-exec/%s.cpr",
			 arg.id);
		arg.state_path = state_path;
	}
	if (strchr(arg.qmp_path, ',')) {
		log_error("--qmp %s: QEMU cannot take a ',' in the path",
			  arg.qmp_path);
		return -EINVAL;
	}
	/* A signal would kill QEMU; it gets QMP commands instead. */
	if (!arg.signal_given)
		arg.signal = 0;
	return 0;
}

/* The directories of luod-exec's default QEMU paths. */
static int make_parent(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;

	if (!slash || slash == dir)
		return dir ? 0 : -ENOMEM;
	*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "creating %s", dir);
	return 0;
}

static int parse_args(int argc, char **argv)
{
	enum {
		OPT_RESUME = 0x100,
		OPT_FINISH,
		OPT_QEMU,
		OPT_QMP,
		OPT_STATE,
		OPT_WAIT_LUOD
	};
	static char qmp_path[PATH_MAX], state_path[PATH_MAX];
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "fd", required_argument, NULL, 'f' },
		{ "session", required_argument, NULL, 'n' },
		{ "signal", required_argument, NULL, 's' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "prepare-timeout", required_argument, NULL, 't' },
		{ "resume-signal", required_argument, NULL, OPT_RESUME },
		{ "finish-after", required_argument, NULL, OPT_FINISH },
		{ "socket", required_argument, NULL, 'S' },
		{ "wait-luod", required_argument, NULL, OPT_WAIT_LUOD },
		{ "qemu", no_argument, NULL, OPT_QEMU },
		{ "qmp", required_argument, NULL, OPT_QMP },
		{ "qemu-state", required_argument, NULL, OPT_STATE },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int o, sig;
	char *end;

	while ((o = getopt_long(argc, argv, "+i:f:n:s:r:t:S:h", opts, NULL)) !=
	       -1) {
		switch (o) {
		case 'i':
			arg.id = optarg;
			break;
		case 'f':
			if (parse_fd_option(optarg) < 0)
				return -EINVAL;
			break;
		case 'n':
			arg.session = optarg;
			break;
		case 's':
		case OPT_RESUME:
		case OPT_FINISH:
			sig = parse_signal(optarg);
			if (sig < 0 || (sig == 0 && o == OPT_FINISH) ||
			    sig == SIGKILL || sig == SIGSTOP ||
			    (o == OPT_FINISH &&
			     (sig == SIGCHLD || sig == SIGTERM ||
			      sig == SIGINT || sig == SIGHUP))) {
				log_error(
					"'%s' is not a signal luod-exec can use here (USR1, SIGUSR2, 12%s)",
					optarg, o == 's' ? ", none" : "");
				return -EINVAL;
			}
			if (o == 's') {
				arg.signal = sig;
				arg.signal_given = true;
			}
			else if (o == OPT_RESUME)
				arg.resume_signal = sig;
			else
				arg.finish_signal = sig;
			break;
		case 'r':
			arg.ready_file = optarg;
			break;
		case 't':
			errno = 0;
			arg.prepare_timeout_ms =
				strtol(optarg, &end, 10) * 1000;
			if (errno || *end || end == optarg ||
			    arg.prepare_timeout_ms <= 0) {
				log_error(
					"--prepare-timeout takes a whole number of seconds, at least 1, not '%s'",
					optarg);
				return -EINVAL;
			}
			break;
		case 'S':
			arg.socket = optarg;
			break;
		case OPT_WAIT_LUOD:
			errno = 0;
			arg.wait_luod_s = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg ||
			    arg.wait_luod_s < 0 || arg.wait_luod_s > 86400) {
				log_error(
					"--wait-luod takes a whole number of seconds from 0 to 86400, not '%s'",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_QEMU:
			arg.qemu = true;
			break;
		case OPT_QMP:
			arg.qmp_path = optarg;
			break;
		case OPT_STATE:
			arg.state_path = optarg;
			break;
		case 'h':
			help();
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (!arg.id || !arg.n_mems || optind >= argc) {
		log_error(
			"needs --id, at least one --fd, and a PROGRAM after '--'");
		return -EINVAL;
	}
	if (strlen(arg.id) > 64) {
		log_error("--id is at most 64 bytes");
		return -EINVAL;
	}
	arg.argv = argv + optind;
	return arg.qemu ? check_qemu_args(qmp_path, state_path) : 0;
}

static int cannot_talk(int r)
{
	log_error(
		"cannot talk to luod%s%s: %s; check that luod runs, or pass --socket or set $LUOD_SOCKET if it "
		"listens elsewhere",
		arg.socket ? " at " : "", arg.socket ? arg.socket : "",
		strerror(-r));
	return r;
}

/*
 * A step of the start met a luod that is not answering: wait for one that
 * does, up to --wait-luod from the first failure, and let the caller do
 * the step again. A client that exists is reconnected, so a session this
 * process holds is re-attached. Returns 0, or -errno (-EINTR: told to stop).
 */
static int wait_for_luod(int sfd, const char *what, int r)
{
	static uint64_t deadline;
	struct signalfd_siginfo si;

	if (!arg.wait_luod_s)
		return cannot_talk(r);
	if (!deadline) {
		deadline =
			now_mono_us() + (uint64_t)arg.wait_luod_s * 1000 * 1000;
		log_warning(
			"%s: %s; luod may be restarting, so luod-exec tries again for %ld s (--wait-luod)",
			what, strerror(-r), arg.wait_luod_s);
	}
	while (now_mono_us() < deadline) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };

		if (poll(&p, 1, 200) > 0 &&
		    read(sfd, &si, sizeof(si)) == sizeof(si) &&
		    (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT ||
		     si.ssi_signo == SIGHUP)) {
			log_info("got %s while waiting for luod: exiting",
				 sig_name((int)si.ssi_signo));
			return -EINTR;
		}
		r = client ? luod_reconnect(client, 0) :
			     luod_connect(arg.socket, arg.id, &client);
		if (r == 0) {
			log_info("luod answers; carrying on with the start");
			return 0;
		}
		if (!luod_transient(r))
			return luod_failed("talking to luod again", r);
	}
	return cannot_talk(r);
}

/*
 * Claim what luod holds for this id. Returns 1 when our session came
 * through an update (incoming_fd set), 0 for a first start, or -errno.
 * Other sessions of the id, and an outgoing one left by a luod-exec that
 * died in this boot (LUO hands files back only after an update), are
 * dropped.
 */
static int claim(void)
{
	struct luod_session *s = NULL;
	size_t n = 0;
	int r, found = 0;

	r = luod_claim(client, NULL, &s, &n);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return luod_failed("claiming the sessions of this id", r);
	for (size_t i = 0; i < n; i++) {
		if (streq(s[i].name, arg.session) && s[i].claimed) {
			/* A claim again after luod restarted under the first. */
			safe_close(incoming_fd);
			incoming_fd = s[i].fd;
			s[i].fd = -1;
			log_info("claimed session %s (from generation %" PRIu64
				 ")",
				 s[i].name, s[i].generation);
			found = 1;
			continue;
		}
		if (streq(s[i].name, arg.session))
			log_notice(
				"session %s was made earlier in this boot and is not this luod-exec's (an earlier one's, or one a luod that died never handed over); its memory cannot be read back before an update, so PROGRAM starts with fresh memory",
				s[i].name);
		else
			log_notice(
				"dropping session %s of id %s, which luod-exec does not use",
				s[i].name, arg.id);
		r = luod_release(client, arg.id, s[i].name);
		if (r < 0) {
			luod_sessions_free(s, n);
			return luod_failed("releasing a stale session", r);
		}
	}
	luod_sessions_free(s, n);
	return found;
}

/*
 * Connect, take the memory (claimed, or new) and subscribe. luod may
 * restart at any moment of it, as later: a step that met a restarting luod
 * is done again with the new one. Returns 0, or -errno once said.
 */
static int start_luod(int sfd, const char **state)
{
	const char *what = "connecting to luod";
	bool mems_made = false;
	int r;

	starting = true;
	r = luod_connect(arg.socket, arg.id, &client);
	if (r < 0 && !luod_transient(r))
		return cannot_talk(r);
	if (r < 0 && (r = wait_for_luod(sfd, what, r)) < 0)
		return r;
	for (;;) {
		what = "claiming the sessions of this id";
		r = claim();
		if (r > 0) {
			*state = "restored";
			r = restore_mems(incoming_fd);
			if (r < 0)
				return r;
			break;
		}
		if (r == 0) {
			*state = "new";
			for (size_t i = 0; !mems_made && i < arg.n_mems; i++)
				if ((r = create_mem(&arg.mems[i])) < 0)
					return r;
			mems_made = true;
			/* After a restart of luod here, the claim drops a
			 * session the old one may have made. */
			what = "creating the session";
			r = preserve_all();
			if (r == 0)
				break;
		}
		if (!luod_transient(r))
			return r;
		r = wait_for_luod(sfd, what, r);
		if (r < 0)
			return r;
	}
	/* Subscribed before PROGRAM runs, so no update can miss it. While
	 * luod holds the claimed session it refuses to start an update. */
	while ((r = luod_subscribe(client)) < 0) {
		if (!luod_transient(r))
			return luod_failed("subscribing to updates", r);
		r = wait_for_luod(sfd, "subscribing to updates", r);
		if (r < 0)
			return r;
	}
	starting = false;
	return 0;
}

int main(int argc, char **argv)
{
	char fds[MAX_MEMS * (LABEL_MAX + 12)];
	_cleanup_close_ int sfd = -1;
	const char *state;
	int r;

	log_setup("luod-exec", LOG_INFO);
	if (parse_args(argc, argv) < 0) {
		fprintf(stderr, "Try 'luod-exec --help'.\n");
		return 2;
	}
	snprintf(log_ident, sizeof(log_ident), "luod-exec: %s", arg.id);
	log_setup(log_ident, LOG_INFO);

	if (arg.qemu && (make_parent(arg.qmp_path) < 0 ||
			 make_parent(arg.state_path) < 0))
		return EXIT_FAILED;
	r = setup_signals(&sfd);
	if (r < 0)
		return log_errno(r, "setting up signals"), EXIT_FAILED;
	r = start_luod(sfd, &state);
	if (r == -EINTR)
		return 0;
	if (r < 0)
		return EXIT_FAILED;
	describe_fds(fds, sizeof(fds));
	for (size_t i = 0; i < arg.n_mems; i++)
		log_info("%s: %s at fd %d (%s)", arg.mems[i].label,
			 human_size(arg.mems[i].size), arg.mems[i].target,
			 arg.mems[i].fresh ? "new" : "restored");
	r = start_program(state);
	if (r != 0) {
		/* Nothing will use the memory: do not carry it along. */
		if (incoming_fd < 0)
			release_session();
		return r;
	}
	if (incoming_fd >= 0 && !arg.finish_signal &&
	    finish_incoming("PROGRAM has started") < 0) {
		kill(prog.pid, SIGTERM);
		return EXIT_FAILED;
	}
	if (incoming_fd >= 0 && arg.finish_signal)
		log_info("waiting for %s before reporting FINISHED",
			 sig_name(arg.finish_signal));
	fflush(stderr);
	r = run(sfd);
	luod_disconnect(client);
	return r;
}
