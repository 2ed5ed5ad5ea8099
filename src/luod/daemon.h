/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * luod's internal state, shared by its files. Calls go one way, top to
 * bottom (scripts/layers checks it): main.c (the loop) and client.c
 * (connections); commands.c (requests); update.c (the update); state.c
 * (the copies of the manifest); sessions.c and ids.c (the session table);
 * and at the bottom watch.c, output.c, timeline.c, fields.c, device.c,
 * keeper.c, fdstore.c, kexec.c and the codecs, which call nothing above
 * them: they return results, or call back through a pointer given them.
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "limits.h"
#include "proto.h"

struct daemon;

#define LUOD_STATE_SESSION "luod.state"
#define LUOD_STATE_TOKEN 1
#define LUOD_MAX_QUEUED_BYTES (1024 * 1024)

/* Anything in the epoll set: the listener, the timer, signals, clients. */
struct watch {
	int fd;
	void (*handler)(struct daemon *d, struct watch *w, uint32_t events);
};

enum session_state {
	SESSION_OUTGOING, /* created this boot; goes across the next kexec */
	SESSION_INCOMING, /* came across the last kexec; not retrieved yet */
	SESSION_CLAIMED, /* retrieved from the kernel and handed to its client */
};

struct session {
	struct session *next, *prev; /* every session luod knows */
	struct session *next_of_id; /* the sessions of the same client id */
	char client[PROTO_ID_MAX + 1];
	char name[PROTO_ID_MAX + 1];
	char kernel_name[64];
	uid_t uid;
	uint64_t generation;
	uint64_t created_us;
	enum session_state state;
	bool in_fdstore; /* systemd's fd store holds a copy too */
	bool left; /* its owner said LEAVE (or READY, then went away): it is
		      complete, and no update waits for the owner */
	int fd; /* luod's own copy; -1 while incoming, or detached: a restarted
		  luod lost its copy and waits for the client to REATTACH */
};

static inline bool session_detached(const struct session *s)
{
	return s->fd < 0 && s->state != SESSION_INCOMING;
}

/* ids.c: what luod knows under one client id */
struct client_id {
	char id[PROTO_ID_MAX + 1];
	struct session *sessions; /* linked by next_of_id */
	struct client *subscriber; /* the connection subscribed as this id */
	bool awaited; /* owns outgoing sessions, was not subscribed when the
			 update started: counted in waiting until it is */
};

struct client {
	struct watch watch; /* first: the epoll handler finds the client by it */
	struct client *next;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool admin;
	char id[PROTO_ID_MAX + 1];
	bool hello; /* spoke HELLO: full replies and PREPARE events */
	bool subscribed;
	bool in_barrier; /* update.c: counted in waiting, not ready yet */
	bool ready;
	bool waits_kexec; /* sent KEXEC: gets PROGRESS and the final reply */
	bool told_rebooting; /* got KEXEC's "rebooting" reply; an abort now
				still reaches it, as an ABORTED event */
	bool dead; /* in the gc queue, or gone: nothing more is read or sent */
	struct client *gc_next;
	const char *gone_why; /* a literal or strerror()'s: not freed */
	bool throttled; /* out of requests for now: luod does not read it */
	uint32_t events; /* what epoll watches it for */
	bool corked; /* its requests are being served: replies wait to go
			out together (output.c) */
	bool counted; /* in d->uids: root and the admin group are not */
	struct idle_link idle; /* in d->idle while it has no client id */
	struct idle_link throttle; /* in d->throttled while throttled; since_us:
				      when it may ask again */
	struct client *resume_next; /* limits_tick()'s list of clients to resume */
	struct bucket bucket; /* its requests a second */
	struct json_object *kexec_request;
	struct proto_reader in;
	struct proto_writer out;
};

enum update_phase {
	PHASE_IDLE,
	PHASE_PREPARING,
	PHASE_REBOOTING,
};

struct config {
	const char *socket_path;
	const char *device_path;
	const char *state_dir;
	unsigned timeout_s;
	unsigned max_clients;
	unsigned max_clients_per_uid; /* 0: no limit */
	unsigned reserved_clients; /* of max_clients, for root and admin_group */
	unsigned idle_timeout_s; /* for connections without a client id; 0: none */
	unsigned request_rate; /* requests a second per connection; 0: no limit */
	gid_t admin_gid;
	bool have_admin_gid;
	bool no_reboot; /* tests: stop right before the reboot syscall */
	unsigned grace_s; /* unclaimed incoming sessions are released after it */
	const char *config_path; /* the luod.conf read; NULL if none */
	enum reboot_mode reboot_mode;
	char reboot_mode_why[160]; /* why the mode in force is in force */
	int log_level; /* LOG_ERR .. LOG_DEBUG */
};

struct daemon {
	struct config cfg;
	int epoll_fd;
	int lock_fd; /* state_dir/luod.lock: one luod per machine */
	struct watch listener, timer, signals, grace;
	struct client *clients;
	unsigned n_clients;
	/* Connections that failed: what follows from it (the update they
	 * held, their subscription, their share) is handled in one place,
	 * clients_gc(), after the event; they are freed after the batch. */
	struct client *gc_head, **gc_tail;
	unsigned n_dead;
	/* limits.h: the fair share of the socket */
	struct watch limits_timer;
	uint64_t limits_armed_us; /* 0: not armed */
	struct uid_table uids; /* connections of each uid but root's and admins' */
	struct idle_list idle, throttled;
	struct burst_log log_full, log_reserved, log_uid, log_throttle,
		log_idle;
	struct session *sessions;
	void *ids; /* tsearch(3) tree of struct client_id */
	uint64_t generation; /* live updates this machine has been through */
	uint64_t next_serial;
	bool quit;
	bool state_dirty; /* the copy under state_dir is behind its journal */
	/* state.c hears of each change the layers below it make (set by
	 * state_init; NULL: nobody keeps a journal, as in the unit tests). */
	void (*journal_session)(struct daemon *d, const struct session *s,
				bool gone);
	void (*journal_event)(struct daemon *d, struct json_object *event);
	int journal_fd; /* state.json.journal: changes since state.json */
	uint64_t journal_seq;
	size_t journal_records, journal_limit;

	enum update_phase phase;
	uint64_t update_id;
	uint64_t deadline_us;
	unsigned waiting; /* subscribers not ready yet, and awaited owners */
	bool force; /* the update does not wait for owners not connected */
	char progress_ready[PROTO_ID_MAX + 1]; /* last READY not yet told */
	struct json_object *timeline; /* the update in progress */
	struct json_object
		*last_timeline; /* the update that brought this boot up */
};

static inline const char *client_name(const struct client *c)
{
	return c->id[0] ? c->id : "(anonymous)";
}

/* --- the bottom: called from above, calling nothing above --- */

/* watch.c: the epoll set and its timers */
int daemon_watch(struct daemon *d, struct watch *w, uint32_t events);
int daemon_rewatch(struct daemon *d, struct watch *w, uint32_t events);
void timer_arm(int timer_fd, uint64_t us); /* relative; 0 disarms */

/* output.c: each connection's output queue */
void client_send(struct daemon *d, struct client *c, struct json_object *msg,
		 const int *fds, size_t n_fds);
void client_flush(struct daemon *d, struct client *c);
void client_rewatch(struct daemon *d, struct client *c, bool out);
/* The connection failed: into the gc queue (clients_gc() does the rest). */
void client_fail(struct daemon *d, struct client *c, const char *why);

/* timeline.c: the events of the update in progress, or of the last one */
void timeline_add(struct daemon *d, const char *event, const char *client,
		  const char *name);
/* An event that happened at t_us (CLOCK_REALTIME), not now. */
void timeline_add_at(struct daemon *d, const char *event, const char *client,
		     const char *name, uint64_t t_us);
void timeline_free(struct daemon *d);

/* device.c: /dev/liveupdate, open only for one ioctl at a time */
int device_open(struct daemon *d);
int device_probe(struct daemon *d);
int device_create_session(struct daemon *d, const char *name);
/* A session under the first name next_name gives that the kernel has free
 * (a session from before a luod restart may hold one), with one open of
 * the device for all the tries. */
typedef void (*device_name_fn)(char name[64], void *data);
int device_create_unique(struct daemon *d, device_name_fn next_name,
			 void *data, char name[64]);
int device_retrieve_session(struct daemon *d, const char *name);

/* keeper.c: luod-keeper holds a copy of every session fd luod holds */
typedef void (*keeper_adopt_fn)(struct daemon *d, const char *kname, int fd);
/* Connects to (or starts) the keeper and hands each fd it held to adopt. */
bool keeper_start(struct daemon *d, keeper_adopt_fn adopt);
void keeper_hold(const char *kname, int fd);
void keeper_drop(const char *kname);
void keeper_detach(void);
bool keeper_running(void);
void keeper_reap(void); /* SIGCHLD */
/* The keeper was lost since the last call: how, for the log. */
bool keeper_take_lost(char *how, size_t len);

/* fdstore.c: systemd's fd store, and reboot_mode = systemd */
int fdstore_hold(const char *kname, int fd); /* 1: stored; 0: no store */
void fdstore_drop(const char *kname);
/* The next session fd systemd handed back, or -ENOENT. */
int fdstore_take_session(char kname[64]);
int fdstore_take_manifest(char *fdname, size_t len);
void fdstore_forget_manifest(const char *fdname);
int fdstore_store_manifest(const char *manifest_text, char *name,
			   size_t namelen, char *err, size_t errlen);
int fdstore_kexec(const char *manifest_name, char *err, size_t errlen);

/* kexec.c */
int kexec_load(const char *kernel, const char *initrd, const char *cmdline,
	       char *err, size_t errlen);
int kexec_unload(void);
bool kexec_loaded(void);
int kexec_reboot(void);

/* --- the session table --- */

/* ids.c: what luod knows under one client id */
struct client_id *client_id_find(struct daemon *d, const char *id);
struct client_id *client_id_get(struct daemon *d, const char *id);
void client_id_gc(struct daemon *d, struct client_id *ci);
struct session *sessions_of(struct daemon *d, const char *id);
void client_ids_free(struct daemon *d);
void client_ids_foreach(struct daemon *d,
			void (*fn)(struct daemon *d, struct client_id *ci,
				   void *data),
			void *data);

/* sessions.c */
int session_link(struct daemon *d, struct session *s);
void session_hold(struct daemon *d, struct session *s);
void session_changed(struct daemon *d, const struct session *s);
struct session *session_find(struct daemon *d, const char *client,
			     const char *name);
int session_create(struct daemon *d, const char *client, const char *name,
		   uid_t uid, struct session **out);
int session_claim(struct daemon *d, struct session *s);
void session_forget(struct daemon *d, struct session *s);
void sessions_free(struct daemon *d);
void session_release(struct daemon *d, struct session *s, const char *why);
void session_set_left(struct daemon *d, struct session *s, bool left);
void sessions_leave(struct daemon *d, const char *id);
void grace_arm(struct daemon *d);
uint64_t grace_deadline_us(struct daemon *d);
void grace_expired(struct daemon *d, struct watch *w, uint32_t events);
const char *session_state_name(enum session_state st);
struct session *session_by_kernel_name(struct daemon *d, const char *kname);
unsigned sessions_count(struct daemon *d, enum session_state st);
/* The custodians: take back what they hold, and give them all luod has. */
void sessions_adopt_fdstore(struct daemon *d);
void sessions_keep(struct daemon *d);
void sessions_keeper_check(struct daemon *d);

/* --- state.c: luod's manifest across kexec and restarts --- */
void state_init(struct daemon *d);
int state_load(struct daemon *d);
int state_save_run(struct daemon *d);
char *state_kexec_manifest(struct daemon *d);
int state_preserve(struct daemon *d, const char *text, int *state_session_fd);

/* --- update.c: the update state machine; it owns the barrier --- */
void update_start(struct daemon *d, struct client *requester,
		  unsigned timeout_s, bool force);
void update_client_subscribed(struct daemon *d, struct client *c);
void update_client_left(struct daemon *d, struct client *c);
void json_array_add_id(struct json_object *arr, const char *id);
void update_client_ready(struct daemon *d, struct client *c);
void update_client_not_ready(struct daemon *d, struct client *c,
			     const char *reason);
void update_client_gone(struct daemon *d, struct client *c);
void update_abort(struct daemon *d, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void update_timer(struct daemon *d, struct watch *w, uint32_t events);
void update_timeout(struct daemon *d);
void update_progress_flush(struct daemon *d);
const char *phase_name(enum update_phase p);

/* --- commands.c: one handler per request --- */
void command_dispatch(struct daemon *d, struct client *c, struct proto_msg *m);

/* --- client.c: connections --- */
void client_accept(struct daemon *d, struct watch *w, uint32_t events);
void clients_gc(struct daemon *d);
void clients_reap(struct daemon *d);
int limits_init(struct daemon *d);
void limits_tick(struct daemon *d, struct watch *w, uint32_t events);
