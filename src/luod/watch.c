// SPDX-License-Identifier: GPL-2.0-or-later
/* The epoll set everything luod waits on is in, and its timers. */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "daemon.h"

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

void timer_arm(int timer_fd, uint64_t us)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(us / 1000000),
			      .tv_nsec = (long)(us % 1000000) * 1000 },
	};

	if (timer_fd >= 0)
		timerfd_settime(timer_fd, 0, &its, NULL);
}
