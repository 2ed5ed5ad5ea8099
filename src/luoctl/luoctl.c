// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luoctl: the administrator's tool for luod.
 *
 * It talks the protocol through the shared codec rather than libluod: KEXEC
 * streams PROGRESS events before its reply, and luoctl shows them as they
 * come. Everything is checked before luod is contacted, so a usage error
 * never needs a running luod.
 */
#include <getopt.h>
#include <poll.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "proto.h"
#include "util.h"

enum {
	EXIT_OK = 0,
	EXIT_REFUSED = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_ABORTED = 4,
};

enum {
	OPT_INITRD = 1 << 0,
	OPT_CMDLINE = 1 << 1,
	OPT_REUSE = 1 << 2,
	OPT_TIMEOUT = 1 << 3,
	OPT_YES = 1 << 4,
	OPT_FORCE = 1 << 5,
};

struct ctl {
	const char *socket;
	bool json;
	unsigned opts; /* OPT_* given on the command line */
	const char *initrd, *cmdline;
	long timeout;

	int sock;
	struct proto_reader reader;
	int64_t seq;
	/* KEXEC progress */
	int64_t waiting, ready;
	bool rebooting;
};

struct command {
	const char *name;
	int n_args;
	unsigned opts;
	int (*run)(struct ctl *ctl, char **args);
};

static void json_putp(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

static _printf_(1, 2) int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("luoctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'luoctl --help'.\n", stderr);
	return EXIT_USAGE;
}

static void help(void)
{
	printf("Usage: luoctl [--socket PATH] [--json] COMMAND [ARGS]\n"
	       "\n"
	       "Drive live updates through luod, the Live Update Orchestrator daemon.\n"
	       "\n"
	       "Commands:\n"
	       "  load KERNEL [--initrd FILE] (--reuse-cmdline | --cmdline \"...\")\n"
	       "                         Load the kernel to update into (kexec_file_load).\n"
	       "  unload                 Unload it again.\n"
	       "  kexec [--timeout S] [--force]\n"
	       "                         Run the update: wait up to S seconds (default 60)\n"
	       "                         for every client to be ready, then reboot into the\n"
	       "                         loaded kernel. Shows clients as they get ready.\n"
	       "                         luod refuses while sessions from the last update\n"
	       "                         are still held (they would be freed); --force\n"
	       "                         goes ahead anyway.\n"
	       "  abort                  Abort an update that is waiting for its clients.\n"
	       "  status                 Phase, clients, session counts and the timeline of\n"
	       "                         the update that brought this boot up.\n"
	       "  list                   Sessions luod holds.\n"
	       "  release ID NAME [--yes]\n"
	       "                         Drop session NAME of client ID; its preserved\n"
	       "                         memory is freed. Asks first unless --yes.\n"
	       "\n"
	       "Options:\n"
	       "  -s, --socket PATH      luod's socket (default: $LUOD_SOCKET, else %s)\n"
	       "  -j, --json             Print luod's reply as one JSON object\n"
	       "  -y, --yes              Do not ask for confirmation\n"
	       "  -h, --help             Show this help\n"
	       "      --version          Show the version\n"
	       "\n"
	       "Exit status:\n"
	       "  0  success\n"
	       "  1  luod refused the request (its error code and message are printed)\n"
	       "  2  usage error, or a confirmation was declined\n"
	       "  3  cannot reach luod\n"
	       "  4  the update was aborted (kexec)\n",
	       LUOD_SOCKET_PATH);
}

/* Connection */

static int connect_luod(struct ctl *ctl)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(ctl->socket) >= sizeof(sa.sun_path)) {
		fprintf(stderr,
			"luoctl: socket path %s is too long; pass a shorter one with --socket\n",
			ctl->socket);
		return EXIT_USAGE;
	}
	memcpy(sa.sun_path, ctl->socket, strlen(ctl->socket));
	ctl->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->sock < 0 ||
	    connect(ctl->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr,
			"luoctl: cannot reach luod at %s: %m\n"
			"Is luod running? Check the socket path (--socket, $LUOD_SOCKET) and 'systemctl status luod'.\n",
			ctl->socket);
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

static int lost_connection(int r)
{
	fprintf(stderr,
		"luoctl: lost the connection to luod: %s\n"
		"Is luod still running? See 'systemctl status luod' and its journal.\n",
		strerror(-r));
	return EXIT_UNREACHABLE;
}

static void print_json(struct json_object *o)
{
	puts(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void on_progress(struct ctl *ctl, struct json_object *ev);

static bool is_our_reply(struct json_object *obj, struct json_object *seq)
{
	struct json_object *got;

	/* No "reply": luod's word on the connection, such as a limit
	 * reached, which answers whatever was asked. */
	if (!json_object_object_get_ex(obj, "reply", NULL))
		return json_object_object_get_ex(obj, "ok", NULL) &&
		       !json_object_object_get_ex(obj, "event", NULL);
	return !json_object_object_get_ex(obj, "seq", &got) ||
	       json_object_equal(got, seq);
}

/* Send req and wait for its reply; PROGRESS events on the way are shown. */
static int transact(struct ctl *ctl, struct json_object *req,
		    struct proto_msg *reply)
{
	struct json_object *seq = json_object_new_int64(++ctl->seq);
	int r;

	json_object_object_add(req, "seq", seq);
	r = proto_send(ctl->sock, req, NULL, 0);
	/* luod may have closed with a reason already: read it. */
	if (r == -EPIPE || r == -ECONNRESET)
		r = 0;
	while (r == 0) {
		struct proto_msg m;

		r = proto_recv(ctl->sock, &ctl->reader, &m);
		if (r == -EBADMSG || r == -EBADF) {
			fprintf(stderr,
				"luoctl: skipped a line from luod that could not be decoded (%s)\n",
				strerror(-r));
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		if (streq(proto_get_string(m.obj, "event"), "PROGRESS"))
			on_progress(ctl, m.obj);
		if (is_our_reply(m.obj, seq)) {
			*reply = m;
			return 0;
		}
		proto_msg_clear(&m);
	}
	return r;
}

/*
 * Send req and check the reply. Returns EXIT_OK with *reply filled (and
 * printed, under --json), or the exit code after saying what went wrong.
 */
static int call(struct ctl *ctl, struct json_object *req,
		struct proto_msg *reply)
{
	const char *cmd = proto_get_string(req, "cmd");
	const char *code, *msg;
	bool ok = false;
	int r;

	*reply = (struct proto_msg){ 0 };
	r = transact(ctl, req, reply);
	/* After PROGRESS "reboot", luod may be gone before its reply is read:
	 * that is the update going through, not a failure. */
	if (r < 0 && ctl->rebooting)
		return EXIT_OK;
	if (r < 0)
		return lost_connection(r);
	if (ctl->json)
		print_json(reply->obj);
	if (proto_get_bool(reply->obj, "ok", &ok) && ok)
		return EXIT_OK;

	code = proto_get_string(reply->obj, "error");
	msg = proto_get_string(reply->obj, "message");
	if (streq(code, PROTO_E_ABORTED)) {
		fprintf(stderr, "luoctl: the update was aborted: %s\n",
			msg ? msg : "luod gave no reason");
		r = EXIT_ABORTED;
	} else {
		fprintf(stderr, "luoctl: luod refused %s: %s: %s\n", cmd,
			code ? code : "(no error code)",
			msg ? msg : "(no message)");
		r = EXIT_REFUSED;
	}
	proto_msg_clear(reply);
	return r;
}

static int hello(struct ctl *ctl)
{
	_cleanup_json_ struct json_object *req = proto_request("HELLO");
	_cleanup_(proto_msg_clear) struct proto_msg reply = { 0 };
	bool json = ctl->json;
	int r;

	json_object_object_add(req, "version",
			       json_object_new_int(PROTO_VERSION));
	/* Only the command's own reply goes to stdout under --json. */
	ctl->json = false;
	r = call(ctl, req, &reply);
	ctl->json = json;
	return r;
}

/* Connect, say HELLO, send req: the common path of every command. */
static int run_request(struct ctl *ctl, struct json_object *req,
		       struct proto_msg *reply)
{
	int r = connect_luod(ctl);

	if (r == EXIT_OK)
		r = hello(ctl);
	if (r == EXIT_OK)
		r = call(ctl, req, reply);
	return r;
}

/* Output helpers */

struct table {
	size_t cols, n;
	char **cells; /* row-major; row 0 is the header */
};

static void table_add(struct table *t, ...)
{
	char **nc = realloc(t->cells, (t->n + t->cols) * sizeof(char *));
	va_list ap;

	if (!nc) {
		fputs("luoctl: out of memory\n", stderr);
		exit(EXIT_FAILURE);
	}
	t->cells = nc;
	va_start(ap, t);
	for (size_t i = 0; i < t->cols; i++) {
		const char *s = va_arg(ap, const char *);

		t->cells[t->n++] = strdup(s ? s : "-");
	}
	va_end(ap);
}

static void table_print_free(struct table *t)
{
	size_t w[16] = { 0 };

	for (size_t i = 0; i < t->n; i++) {
		size_t len = t->cells[i] ? strlen(t->cells[i]) : 0;

		if (len > w[i % t->cols])
			w[i % t->cols] = len;
	}
	for (size_t i = 0; i < t->n; i++) {
		size_t c = i % t->cols;
		const char *s = t->cells[i] ? t->cells[i] : "?";

		if (c + 1 == t->cols)
			printf("%s\n", s);
		else
			printf("%-*s  ", (int)w[c], s);
		free(t->cells[i]);
	}
	free(t->cells);
}

/* A field as text for a table: "-" when absent. */
static const char *field(struct json_object *o, const char *key, char *buf,
			 size_t size)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return "-";
	if (json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v) ? "yes" : "no";
	snprintf(buf, size, "%s", json_object_get_string(v));
	return buf;
}

static int64_t get_int(struct json_object *o, const char *key, int64_t dflt)
{
	int64_t v;

	return proto_get_int64(o, key, &v) ? v : dflt;
}

/* Commands */

static int cmd_load(struct ctl *ctl, char **args)
{
	_cleanup_json_ struct json_object *req = proto_request("LOAD");
	_cleanup_(proto_msg_clear) struct proto_msg reply = { 0 };
	char kernel[PATH_MAX], initrd[PATH_MAX];
	int r;

	if (!!(ctl->opts & OPT_REUSE) == !!(ctl->opts & OPT_CMDLINE))
		return usage_error(
			"load needs the new kernel's command line: pass --reuse-cmdline to keep this one's, or --cmdline \"...\"");
	/* luod opens the files itself, from its own working directory. */
	if (!realpath(args[0], kernel)) {
		fprintf(stderr,
			"luoctl: cannot use kernel image %s: %m; check the path\n",
			args[0]);
		return EXIT_USAGE;
	}
	json_object_object_add(req, "kernel", json_object_new_string(kernel));
	if (ctl->initrd) {
		if (!realpath(ctl->initrd, initrd)) {
			fprintf(stderr,
				"luoctl: cannot use initrd %s: %m; check the path\n",
				ctl->initrd);
			return EXIT_USAGE;
		}
		json_object_object_add(req, "initrd",
				       json_object_new_string(initrd));
	}
	if (ctl->cmdline)
		json_object_object_add(req, "cmdline",
				       json_object_new_string(ctl->cmdline));
	else
		json_object_object_add(req, "reuse_cmdline",
				       json_object_new_boolean(true));

	r = run_request(ctl, req, &reply);
	if (r == EXIT_OK && !ctl->json)
		printf("loaded %s%s%s; start the update with 'luoctl kexec'\n",
		       kernel, ctl->initrd ? " with initrd " : "",
		       ctl->initrd ? initrd : "");
	return r;
}

/* Commands whose reply has nothing to show but success. */
static int simple(struct ctl *ctl, const char *cmd, const char *done)
{
	_cleanup_json_ struct json_object *req = proto_request(cmd);
	_cleanup_(proto_msg_clear) struct proto_msg reply = { 0 };
	int r = run_request(ctl, req, &reply);

	if (r == EXIT_OK && !ctl->json)
		puts(done);
	return r;
}

static int cmd_unload(struct ctl *ctl, char **args)
{
	return simple(ctl, "UNLOAD", "unloaded the kexec kernel");
}

static int cmd_abort(struct ctl *ctl, char **args)
{
	return simple(ctl, "ABORT", "aborted the update");
}

static void on_progress(struct ctl *ctl, struct json_object *ev)
{
	const char *phase = proto_get_string(ev, "phase");
	const char *client = proto_get_string(ev, "client");
	int64_t remaining;

	if (ctl->json)
		return;
	if (streq(phase, "prepare")) {
		struct json_object *absent = NULL;
		size_t n_absent = 0;

		ctl->waiting = get_int(ev, "clients", 0);
		if (json_object_object_get_ex(ev, "absent", &absent) &&
		    json_object_is_type(absent, json_type_array))
			n_absent = json_object_array_length(absent);
		if (ctl->waiting == 0)
			printf("prepare: no clients subscribed\n");
		else
			printf("prepare: waiting for %" PRId64 " client%s\n",
			       ctl->waiting, ctl->waiting == 1 ? "" : "s");
		for (size_t i = 0; i < n_absent; i++)
			printf("waiting for %s: it owns sessions and is not connected (luod restarted, or it went "
			       "away); the update goes on when it is back and ready\n",
			       json_object_get_string(
				       json_object_array_get_idx(absent, i)));
	} else if (streq(phase, "subscribed")) {
		printf("back: %s subscribed again\n", client ? client : "?");
	} else if (streq(phase, "ready")) {
		ctl->ready++;
		if (proto_get_int64(ev, "remaining", &remaining))
			ctl->ready = ctl->waiting - remaining;
		printf("ready: %s (%" PRId64 "/%" PRId64 ")\n",
		       client ? client : "?", ctl->ready, ctl->waiting);
	} else if (streq(phase, "not_ready")) {
		printf("not ready: %s: %s\n", client ? client : "?",
		       proto_get_string(ev, "reason") ?: "no reason given");
	} else if (streq(phase, "reboot")) {
		ctl->rebooting = true;
		printf("rebooting\n");
	} else if (phase) {
		printf("%s\n", phase);
	}
}

/*
 * luod says "rebooting" just before its reboot syscall, so the kernel may
 * still refuse: then luod sends ABORTED. The kexec itself ends the
 * connection, which is success.
 */
static int wait_for_reboot(struct ctl *ctl)
{
	fflush(stdout);
	for (;;) {
		struct pollfd p = { .fd = ctl->sock, .events = POLLIN };
		struct proto_msg m;
		/* The event may have come in the same read as the reply. */
		int r = proto_reader_next(&ctl->reader, &m);

		if (r == 0) {
			r = poll(&p, 1, 120 * 1000);
			if (r == 0) {
				fprintf(stderr,
					"luoctl: luod said it was rebooting, but the machine is still up "
					"120 s later; see luod's log\n");
				return EXIT_ABORTED;
			}
			if (r < 0 && errno == EINTR)
				continue;
			r = proto_reader_fill(&ctl->reader, ctl->sock);
			if (r <= 0 && r != -EINTR && r != -EAGAIN)
				return EXIT_OK; /* the kexec ended the connection */
			continue;
		}
		if (r == -EMSGSIZE)
			return EXIT_UNREACHABLE; /* garbage: not luod */
		if (r < 0)
			continue;
		if (streq(proto_get_string(m.obj, "event"), "ABORTED")) {
			const char *why = proto_get_string(m.obj, "reason");

			if (ctl->json)
				print_json(m.obj);
			fprintf(stderr, "luoctl: the update was aborted: %s\n",
				why ? why : "luod gave no reason");
			proto_msg_clear(&m);
			return EXIT_ABORTED;
		}
		proto_msg_clear(&m);
	}
}

static int cmd_kexec(struct ctl *ctl, char **args)
{
	_cleanup_json_ struct json_object *req = proto_request("KEXEC");
	_cleanup_(proto_msg_clear) struct proto_msg reply = { 0 };
	int r;

	if (ctl->opts & OPT_FORCE)
		json_object_object_add(req, "force",
				       json_object_new_boolean(1));
	if (ctl->opts & OPT_TIMEOUT)
		json_object_object_add(req, "timeout",
				       json_object_new_int64(ctl->timeout));
	r = run_request(ctl, req, &reply);
	if (r == EXIT_OK && !ctl->json && !ctl->rebooting)
		printf("rebooting\n");
	if (r == EXIT_OK)
		r = wait_for_reboot(ctl);
	return r;
}

static void print_clients(struct json_object *clients)
{
	struct table t = { .cols = 5 };
	size_t n = clients ? json_object_array_length(clients) : 0;

	if (n == 0) {
		printf("clients:        none connected\n");
		return;
	}
	printf("\n");
	table_add(&t, "CLIENT", "PID", "UID", "SUBSCRIBED", "READY");
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(clients, i);
		char b[5][80];

		table_add(&t, field(c, "id", b[0], sizeof(b[0])),
			  field(c, "pid", b[1], sizeof(b[1])),
			  field(c, "uid", b[2], sizeof(b[2])),
			  field(c, "subscribed", b[3], sizeof(b[3])),
			  field(c, "ready", b[4], sizeof(b[4])));
	}
	table_print_free(&t);
}

static void print_update(struct json_object *u)
{
	struct json_object *w;
	size_t n;

	if (!u || !json_object_is_type(u, json_type_object))
		return;
	printf("\nupdate %" PRId64 " in progress, %.1f s left",
	       get_int(u, "id", 0), (double)get_int(u, "ms_left", 0) / 1000);
	if (json_object_object_get_ex(u, "waiting_for", &w) &&
	    json_object_is_type(w, json_type_array) &&
	    (n = json_object_array_length(w)) > 0) {
		printf(", waiting for");
		for (size_t i = 0; i < n; i++)
			printf("%s %s", i ? "," : "",
			       json_object_get_string(
				       json_object_array_get_idx(w, i)));
	}
	printf("\n");
}

/* The update that brought this boot up, in times relative to its start. */
static void print_last_update(struct json_object *lu)
{
	struct json_object *tl;
	int64_t t0 = -1, blackout;
	size_t n;

	if (!lu || !json_object_is_type(lu, json_type_object)) {
		printf("\nlast update:    none (this boot did not come through a live update)\n");
		return;
	}
	printf("\nlast update (generation %" PRId64 "):\n",
	       get_int(lu, "generation", 0));
	if (!json_object_object_get_ex(lu, "timeline", &tl) ||
	    !json_object_is_type(tl, json_type_array))
		tl = NULL;
	n = tl ? json_object_array_length(tl) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(tl, i);
		const char *client = proto_get_string(e, "client");
		const char *name = proto_get_string(e, "name");
		int64_t t = get_int(e, "t_us", -1);

		if (t0 < 0)
			t0 = t;
		printf("  %+8.3f s  %s%s%s%s%s\n", (double)(t - t0) / 1e6,
		       proto_get_string(e, "event") ?: "?", client ? " " : "",
		       client ?: "", name ? " " : "", name ?: "");
	}
	if (proto_get_int64(lu, "blackout_us", &blackout))
		printf("  blackout: %.3f ms (reboot to luod up)\n",
		       (double)blackout / 1000);
}

static int cmd_status(struct ctl *ctl, char **args)
{
	_cleanup_json_ struct json_object *req = proto_request("STATUS");
	_cleanup_(proto_msg_clear) struct proto_msg reply = { 0 };
	struct json_object *o, *sessions = NULL, *clients = NULL, *u = NULL,
			       *lu = NULL;
	char b[80];
	int r;

	r = run_request(ctl, req, &reply);
	if (r != EXIT_OK || ctl->json)
		return r;
	o = reply.obj;
	printf("phase:          %s\n", field(o, "phase", b, sizeof(b)));
	printf("generation:     %s\n", field(o, "generation", b, sizeof(b)));
	printf("kernel loaded:  %s\n", field(o, "kernel_loaded", b, sizeof(b)));
	if (proto_get_string(o, "reboot_mode"))
		printf("reboot mode:    %s (%s)\n",
		       proto_get_string(o, "reboot_mode"),
		       proto_get_string(o, "reboot_mode_why") ?: "?");
	if (json_object_object_get_ex(o, "sessions", &sessions))
		printf("sessions:       %" PRId64 " outgoing, %" PRId64
		       " incoming, %" PRId64 " claimed\n",
		       get_int(sessions, "outgoing", 0),
		       get_int(sessions, "incoming", 0),
		       get_int(sessions, "claimed", 0));
	if (json_object_object_get_ex(o, "subscribed", NULL))
		printf("subscribed:     %s\n",
		       field(o, "subscribed", b, sizeof(b)));
	json_object_object_get_ex(o, "clients", &clients);
	if (clients && !json_object_is_type(clients, json_type_array))
		clients = NULL;
	print_clients(clients);
	json_object_object_get_ex(o, "update", &u);
	print_update(u);
	json_object_object_get_ex(o, "last_update", &lu);
	print_last_update(lu);
	return EXIT_OK;
}

static int cmd_list(struct ctl *ctl, char **args)
{
	_cleanup_json_ struct json_object *req = proto_request("LIST");
	_cleanup_(proto_msg_clear) struct proto_msg reply = { 0 };
	struct table t = { .cols = 6 };
	struct json_object *arr = NULL;
	size_t n;
	int r;

	r = run_request(ctl, req, &reply);
	if (r != EXIT_OK || ctl->json)
		return r;
	if (!json_object_object_get_ex(reply.obj, "sessions", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    (n = json_object_array_length(arr)) == 0) {
		printf("no sessions\n");
		return EXIT_OK;
	}
	table_add(&t, "CLIENT", "NAME", "STATE", "UID", "GENERATION",
		  "KERNEL-NAME");
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		char b[6][80];

		table_add(&t, field(s, "client", b[0], sizeof(b[0])),
			  field(s, "name", b[1], sizeof(b[1])),
			  field(s, "state", b[2], sizeof(b[2])),
			  field(s, "uid", b[3], sizeof(b[3])),
			  field(s, "generation", b[4], sizeof(b[4])),
			  field(s, "kernel_name", b[5], sizeof(b[5])));
	}
	table_print_free(&t);
	return EXIT_OK;
}

static bool confirm(const char *id, const char *name)
{
	char answer[16] = "";

	fprintf(stderr,
		"Release session '%s' of client '%s'? luod drops it, and preserved\n"
		"memory that no process holds any more is freed. [y/N] ",
		name, id);
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin))
		return false;
	answer[strcspn(answer, "\n")] = '\0';
	return streq(answer, "y") || streq(answer, "Y") || streq(answer, "yes");
}

static int cmd_release(struct ctl *ctl, char **args)
{
	_cleanup_json_ struct json_object *req = proto_request("RELEASE");
	_cleanup_(proto_msg_clear) struct proto_msg reply = { 0 };
	const char *id = args[0], *name = args[1];
	int r;

	if (!proto_valid_name(id) || !proto_valid_name(name))
		return usage_error(
			"client ids and session names are 1 to 64 characters of A-Z a-z 0-9 . _ @ : + -");
	if (!(ctl->opts & OPT_YES)) {
		if (!isatty(STDIN_FILENO))
			return usage_error(
				"not releasing %s/%s without confirmation, and stdin is not a terminal to ask on: pass --yes",
				id, name);
		if (!confirm(id, name)) {
			fprintf(stderr, "luoctl: not released\n");
			return EXIT_USAGE;
		}
	}
	json_object_object_add(req, "id", json_object_new_string(id));
	json_object_object_add(req, "name", json_object_new_string(name));
	r = run_request(ctl, req, &reply);
	if (r == EXIT_OK && !ctl->json)
		printf("released session %s of client %s\n", name, id);
	return r;
}

static const struct command commands[] = {
	{ "load", 1, OPT_INITRD | OPT_CMDLINE | OPT_REUSE, cmd_load },
	{ "unload", 0, 0, cmd_unload },
	{ "kexec", 0, OPT_TIMEOUT | OPT_FORCE, cmd_kexec },
	{ "abort", 0, 0, cmd_abort },
	{ "status", 0, 0, cmd_status },
	{ "list", 0, 0, cmd_list },
	{ "release", 2, OPT_YES, cmd_release },
};

static const char *const opt_names[] = {
	"--initrd",  "--cmdline", "--reuse-cmdline",
	"--timeout", "--yes",	  "--force",
};

static int parse_timeout(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1)
		return usage_error(
			"--timeout takes a whole number of seconds, at least 1, not '%s'",
			s);
	*out = v;
	return EXIT_OK;
}

enum {
	ARG_VERSION = 0x100,
	ARG_INITRD,
	ARG_CMDLINE,
	ARG_REUSE,
	ARG_TIMEOUT,
	ARG_FORCE
};

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "yes", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "initrd", required_argument, NULL, ARG_INITRD },
		{ "cmdline", required_argument, NULL, ARG_CMDLINE },
		{ "reuse-cmdline", no_argument, NULL, ARG_REUSE },
		{ "timeout", required_argument, NULL, ARG_TIMEOUT },
		{ "force", no_argument, NULL, ARG_FORCE },
		{}
	};
	struct ctl ctl = { .sock = -1, .reader.max_line = PROTO_MAX_REPLY };
	const struct command *cmd = NULL;
	int c, r;

	/* Progress lines must show up as they happen, even in a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	ctl.socket = getenv("LUOD_SOCKET");
	if (!ctl.socket || !*ctl.socket)
		ctl.socket = LUOD_SOCKET_PATH;

	while ((c = getopt_long(argc, argv, "s:jyh", options, NULL)) != -1) {
		switch (c) {
		case 's':
			ctl.socket = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'y':
			ctl.opts |= OPT_YES;
			break;
		case 'h':
			help();
			return EXIT_OK;
		case ARG_VERSION:
			printf("luoctl %s\n", LUOD_VERSION);
			return EXIT_OK;
		case ARG_INITRD:
			ctl.opts |= OPT_INITRD;
			ctl.initrd = optarg;
			break;
		case ARG_CMDLINE:
			ctl.opts |= OPT_CMDLINE;
			ctl.cmdline = optarg;
			break;
		case ARG_REUSE:
			ctl.opts |= OPT_REUSE;
			break;
		case ARG_FORCE:
			ctl.opts |= OPT_FORCE;
			break;
		case ARG_TIMEOUT:
			ctl.opts |= OPT_TIMEOUT;
			r = parse_timeout(optarg, &ctl.timeout);
			if (r != EXIT_OK)
				return r;
			break;
		default:
			fputs("Try 'luoctl --help'.\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (streq(argv[optind], commands[i].name))
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command '%s'", argv[optind]);
	if (argc - optind - 1 != cmd->n_args)
		return usage_error("%s takes %d argument%s, not %d", cmd->name,
				   cmd->n_args, cmd->n_args == 1 ? "" : "s",
				   argc - optind - 1);
	for (size_t i = 0; i < ARRAY_SIZE(opt_names); i++)
		if ((ctl.opts & ~cmd->opts) & (1u << i))
			return usage_error("%s does not apply to %s",
					   opt_names[i], cmd->name);

	r = cmd->run(&ctl, argv + optind + 1);
	proto_reader_free(&ctl.reader);
	safe_close(ctl.sock);
	return r;
}
