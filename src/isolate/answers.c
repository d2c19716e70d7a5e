/*
 * answers.c - the reader of every engine process's answer pipe (answers.h).
 *
 * Slots and their lifetime. The reader calls a slot's read function with
 * the slot's mutex held, and only while the slot is not done; detach sets
 * done under that mutex, so once it returns no call is running or will
 * start. The slot's memory outlives detach: an epoll_wait that returned
 * before the slot left the epoll set may still name it. Detached slots go
 * to a graveyard that the reader empties at the top of its loop, before
 * it waits again: every slot there left the set before that wait began,
 * and the events of the wait before have all been handled.
 */
#define _GNU_SOURCE
#include "answers.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct answers_slot {
	pthread_mutex_t mu;
	bool done; /* read said so, or detached: no more calls */
	int fd;
	answers_read_fn read;
	void *owner;
	answers_slot *next; /* in the graveyard */
};

#define EVENTS 64

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ep = -1, wake = -1; /* wake: a detach has a slot to free */
static bool started;
static pthread_mutex_t grave_mu = PTHREAD_MUTEX_INITIALIZER;
static answers_slot *grave;

static void bury(void)
{
	pthread_mutex_lock(&grave_mu);
	answers_slot *s = grave;
	grave = NULL;
	pthread_mutex_unlock(&grave_mu);
	while (s) {
		answers_slot *next = s->next;
		pthread_mutex_destroy(&s->mu);
		free(s);
		s = next;
	}
}

static void serve(answers_slot *s)
{
	pthread_mutex_lock(&s->mu);
	if (!s->done && !s->read(s->owner, s->fd)) {
		s->done = true;
		epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
	}
	pthread_mutex_unlock(&s->mu);
}

static void *reader_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "txs:answers");
	struct epoll_event ev[EVENTS];
	for (;;) {
		bury();
		int n = epoll_wait(ep, ev, EVENTS, -1);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr) {
				serve(ev[i].data.ptr);
				continue;
			}
			uint64_t v;
			if (read(wake, &v, sizeof v) < 0) {
				/* EAGAIN: drained already; the next round buries */
			}
		}
	}
	return NULL;
}

static void start(void)
{
	ep = epoll_create1(EPOLL_CLOEXEC);
	wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || wake < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, wake, &e) != 0)
		return;
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	started = pthread_create(&t, &a, reader_main, NULL) == 0;
	pthread_attr_destroy(&a);
}

answers_slot *answers_attach(int fd, answers_read_fn read, void *owner)
{
	pthread_once(&once, start);
	if (!started) {
		errno = EAGAIN;
		return NULL;
	}
	answers_slot *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_lock(&s->mu); /* what the reader sees of s and of owner, from here */
	s->fd = fd;
	s->read = read;
	s->owner = owner;
	pthread_mutex_unlock(&s->mu);
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
		int err = errno;
		pthread_mutex_destroy(&s->mu);
		free(s);
		errno = err;
		return NULL;
	}
	return s;
}

void answers_detach(answers_slot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->done) {
		s->done = true;
		epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_lock(&grave_mu);
	s->next = grave;
	grave = s;
	pthread_mutex_unlock(&grave_mu);
	uint64_t one = 1;
	if (write(wake, &one, sizeof one) < 0) {
		/* the counter is full: the reader wakes anyway */
	}
}
