// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * luod-exec's QMP client and cpr steps against a scripted peer: which
 * commands go out with which arguments, how replies, events and errors
 * are read. The real QEMU is tested in the qemu-vm VM scenario.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "qemu.h"
#include "qmp.h"
#include "util.h"

#define MAX_STEPS 16

/* One command the peer expects, and the lines it answers with. */
struct step {
	const char *execute;
	const char *reply; /* lines separated by '\n'; NULL: close */
	const char *create; /* a file to write before replying */
};

struct peer {
	int listen_fd;
	struct step steps[MAX_STEPS];
	size_t n;
	char got[MAX_STEPS][1024]; /* the requests as sent */
	size_t n_got;
	const char *greeting;
};

static char sock_path[108], state_path[256];

static void *peer_run(void *p_)
{
	struct peer *p = p_;
	int fd = accept(p->listen_fd, NULL, NULL);
	FILE *in;
	char line[1024];

	if (fd < 0)
		return NULL;
	in = fdopen(dup(fd), "r");
	write_all(fd, p->greeting, strlen(p->greeting));
	for (size_t i = 0; i < p->n && fgets(line, sizeof(line), in); i++) {
		struct json_object *req = json_tokener_parse(line), *x;

		snprintf(p->got[p->n_got++], sizeof(p->got[0]), "%s", line);
		if (!req || !json_object_object_get_ex(req, "execute", &x) ||
		    strcmp(json_object_get_string(x), p->steps[i].execute)) {
			json_object_put(req);
			break;
		}
		json_object_put(req);
		if (p->steps[i].create) {
			int f = open(p->steps[i].create,
				     O_WRONLY | O_CREAT | O_TRUNC, 0600);
			write_all(f, "QEVM", 4);
			close(f);
		}
		if (!p->steps[i].reply)
			break;
		write_all(fd, p->steps[i].reply, strlen(p->steps[i].reply));
		write_all(fd, "\r\n", 2);
	}
	fclose(in);
	close(fd);
	return NULL;
}

static struct peer the_peer, *peer = &the_peer;
static pthread_t thread;

static const char *peer_got(size_t i)
{
	return i < peer->n_got ? peer->got[i] : "";
}

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n"
#define OK "{\"return\": {}}"

static void peer_start(const char *greeting, ...)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	va_list ap;
	const char *e;

	memset(peer, 0, sizeof(*peer));
	peer->greeting = greeting;
	va_start(ap, greeting);
	while ((e = va_arg(ap, const char *))) {
		struct step *s = &peer->steps[peer->n++];

		s->execute = e;
		s->reply = va_arg(ap, const char *);
		s->create = va_arg(ap, const char *);
	}
	va_end(ap);
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path);
	peer->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(peer->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(peer->listen_fd, 1), 0);
	assert_int_equal(pthread_create(&thread, NULL, peer_run, peer), 0);
}

static void peer_stop(void)
{
	pthread_join(thread, NULL);
	close(peer->listen_fd);
	unlink(sock_path);
}

static uint64_t soon(void)
{
	return now_mono_us() + 5 * 1000 * 1000;
}

static struct qmp *connect_ok(void)
{
	struct qmp *q = NULL;
	char err[256] = "";

	assert_int_equal(qmp_connect(sock_path, 0, soon(), &q, err, sizeof(err)), 0);
	return q;
}

static void test_reply_after_event(void **state)
{
	struct json_object *ret = NULL;
	struct qmp *q;
	char err[256] = "";

	peer_start(GREETING, "qmp_capabilities", OK, NULL, "query-status",
		   "{\"event\": \"STOP\", \"data\": {}}\r\n"
		   "{\"return\": {\"status\": \"running\", \"running\": true}}",
		   NULL, NULL);
	q = connect_ok();
	assert_int_equal(qmp_call(q, "query-status", NULL, &ret, soon(), err, sizeof(err)), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(ret, "status")), "running");
	json_object_put(ret);
	qmp_close(q);
	peer_stop();
}

static void test_error_text(void **state)
{
	struct qmp *q;
	char err[256] = "";

	peer_start(GREETING, "qmp_capabilities", OK, NULL, "cont",
		   "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Migration is not finalized yet\"}}",
		   NULL, NULL);
	q = connect_ok();
	assert_int_equal(qmp_call(q, "cont", NULL, NULL, soon(), err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "GenericError: Migration is not finalized yet");
	qmp_close(q);
	peer_stop();
}

static void test_closed(void **state)
{
	struct qmp *q;
	char err[256] = "";

	peer_start(GREETING, "qmp_capabilities", OK, NULL, "quit", NULL, NULL,
		   NULL);
	q = connect_ok();
	assert_int_equal(qmp_call(q, "quit", NULL, NULL, soon(), err, sizeof(err)), -ECONNRESET);
	assert_non_null(strstr(err, "QEMU closed its QMP socket"));
	qmp_close(q);
	peer_stop();
}

static void test_not_qmp(void **state)
{
	struct qmp *q = NULL;
	char err[256] = "";

	peer_start("{\"hello\": 1}\r\n", NULL);
	assert_int_equal(qmp_connect(sock_path, 0, soon(), &q, err, sizeof(err)), -EBADMSG);
	assert_null(q);
	assert_non_null(strstr(err, "no QMP greeting"));
	peer_stop();
}

static void test_no_socket_dead_qemu(void **state)
{
	struct qmp *q = NULL;
	char err[256] = "";
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	unlink(sock_path);
	/* QEMU is gone: no waiting for its socket until the deadline. */
	assert_int_equal(qmp_connect(sock_path, pid, now_mono_us() + 60 * 1000 * 1000ULL, &q, err,
				     sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "QEMU did not open it"));
}

/* What a save sends, in order, and that it waits for the end. */
static void test_save(void **state)
{
	struct qmp *q;
	char err[256] = "";
	uint64_t bytes = 0;

	peer_start(GREETING, "qmp_capabilities", OK, NULL,
		   "migrate-set-capabilities", OK, NULL,
		   "migrate-set-parameters", OK, NULL,
		   "migrate", OK, state_path,
		   "query-migrate", "{\"return\": {\"status\": \"active\"}}", NULL,
		   "query-migrate", "{\"return\": {\"status\": \"completed\"}}", NULL,
		   NULL);
	q = connect_ok();
	assert_int_equal(qemu_save(q, state_path, soon(), &bytes, err, sizeof(err)), 0);
	assert_int_equal(bytes, 4);
	qmp_close(q);
	peer_stop();
	assert_non_null(strstr(peer_got(1), "\"capability\":\"x-ignore-shared\",\"state\":true"));
	assert_non_null(strstr(peer_got(2), "\"mode\":\"cpr-reboot\""));
}

static void test_save_fails(void **state)
{
	struct qmp *q;
	char err[256] = "";
	uint64_t bytes = 0;

	peer_start(GREETING, "qmp_capabilities", OK, NULL,
		   "migrate-set-capabilities", OK, NULL,
		   "migrate-set-parameters", OK, NULL, "migrate", OK, NULL,
		   "query-migrate",
		   "{\"return\": {\"status\": \"failed\", \"error-desc\": \"disk full\"}}",
		   NULL, NULL);
	q = connect_ok();
	assert_int_equal(qemu_save(q, state_path, soon(), &bytes, err, sizeof(err)), -EIO);
	assert_string_equal(err, "migration failed: disk full");
	qmp_close(q);
	peer_stop();
}

static void test_load_missing_state(void **state)
{
	struct qmp *q;
	char err[256] = "";

	unlink(state_path);
	peer_start(GREETING, "qmp_capabilities", OK, NULL, NULL);
	q = connect_ok();
	assert_int_equal(qemu_load(q, state_path, soon(), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "is missing, so QEMU cannot resume the VM"));
	qmp_close(q);
	peer_stop();
}

static void test_load(void **state)
{
	struct qmp *q;
	char err[256] = "";
	int f = open(state_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	write_all(f, "QEVM", 4);
	close(f);
	peer_start(GREETING, "qmp_capabilities", OK, NULL,
		   "migrate-set-capabilities", OK, NULL,
		   "migrate-set-parameters", OK, NULL,
		   "migrate-incoming", OK, NULL,
		   "query-migrate", "{\"return\": {\"status\": \"completed\"}}", NULL,
		   "query-status", "{\"return\": {\"status\": \"paused\"}}", NULL,
		   "query-status", "{\"return\": {\"status\": \"running\"}}", NULL,
		   NULL);
	q = connect_ok();
	assert_int_equal(qemu_load(q, state_path, soon(), err, sizeof(err)), 0);
	qmp_close(q);
	peer_stop();
	/* A bad state file must leave QEMU up to say why. */
	assert_non_null(strstr(peer_got(3), "\"exit-on-error\":false"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_after_event),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_closed),
		cmocka_unit_test(test_not_qmp),
		cmocka_unit_test(test_no_socket_dead_qemu),
		cmocka_unit_test(test_save),
		cmocka_unit_test(test_save_fails),
		cmocka_unit_test(test_load_missing_state),
		cmocka_unit_test(test_load),
	};
	char dir[] = "/tmp/test-qmp.XXXXXX";
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/qmp.sock", dir);
	snprintf(state_path, sizeof(state_path), "%s/vm.cpr", dir);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(state_path);
	rmdir(dir);
	return r;
}
