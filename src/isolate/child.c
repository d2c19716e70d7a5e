/*
 * child.c - the main loop of an engine process (process isolation).
 *
 * Started by the host (parent.c) with an empty environment and three
 * descriptors: the channel's socket as fd 3 (frames in), the progress
 * page as 4, the answer pipe as 5 (frames out): forked by the zygote (below), or
 * through posix_spawn of the txscan-engine helper when there is none. In
 * order: die with the parent (PR_SET_PDEATHSIG, then getppid() against
 * the pid the parent passed, for the race of a parent that died first);
 * close every other descriptor; limits; read the plugin's code (CH_INIT);
 * send its own RSS, the base of the parent's memory cap (CH_LOADING);
 * enter the sandbox (sandbox.c); only then build an ordinary txs_executor,
 * whose lanes evaluate the code. A closed channel ends the process at once.
 *
 * Feeding: the executor's serving lane reads the channel itself whenever
 * its queue is empty (txs_source, executor/bell.h): one wake-up per scan
 * that finds the process idle, where a reader thread waking the lane cost
 * two. Scans wait in a local FIFO and go to the executor FEED_MAX at a
 * time, so that it runs a backlog in batches (one VM entry for up to 16
 * scans); as each scan starts, the lane writes its id and start into the
 * progress page (channel.h) that the parent's monitor reads to hold each
 * scan to its own deadline. Answers go out from the lane under the write
 * lock, in the order the scans came. A control frame
 * (restart, reload, probe) goes to the main thread, which runs it through
 * the executor's API like any caller once the scans before it are
 * answered; the lane reads no frame after it until it is done. The main
 * thread also sends the counters every 50 ms and writes answers the lane
 * left batched (see put_result_locked).
 */
#define _GNU_SOURCE
#include "isolate.h"

#include "channel.h"
#include "executor/bell.h"
#include "sandbox.h"
#include "util/clock.h"
#include "util/procstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STATS_EVERY_NS (50 * 1000000ull)
#define READ_CHUNK (256u << 10)

/* A scan waiting for the executor: its text is the copy the executor
 * queues too (a count of it, not a second copy). */
typedef struct job {
	uint64_t id;
	txs_shared_text *text;
	struct job *next;
} job;

/* Scans in the executor at once, at most: two of its batches. */
#define FEED_MAX 32

typedef struct slot {
	uint64_t id;
	bool done;
	bool skipped;      /* not run: below the parent's horizon (answered CH_SKIPPED) */
	txs_scan_result r; /* done: the answer, held until those before it are sent */
} slot;

typedef struct child {
	int fd;              /* the socket: frames from the parent */
	int wfd;             /* the pipe: every frame to the parent (parent.c) */
	txs_executor *ex;
	pthread_mutex_t wmu; /* the channel's write side */
	chan_buf out;
	unsigned batched;    /* answers in out not yet written */
	pthread_mutex_t qmu; /* the FIFO, the window, the control hand-off */
	pthread_cond_t idle; /* the FIFO emptied and nothing runs */
	job *head, *tail;
	/* the window: scans in the executor, oldest at first, in order */
	slot win[FEED_MAX];
	size_t first, inflight;
	chan_progress *page; /* fd 4: the scan running now (channel.h) ... */
	pthread_mutex_t pmu; /* ... written under this: the page's sequence count
	                      * allows one writer, and the lane marking a start
	                      * and the executor's watcher answering a stuck scan
	                      * (which clears the page) are two threads */
	bool ctl_held;       /* a control frame was handed to the main thread ... */
	bool ctl_ready;      /* ... which has not taken it yet */
	chan_header ctl_h;
	unsigned char *ctl_p;
	pthread_cond_t ctl_cv; /* the main thread waits here */
	size_t max_input;
	int evfd;            /* kicks the serving lane out of its poll */
	chan_buf in;         /* frames read and not yet handled (the serving lane) */
} child;

static child C;

static void write_all(const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(C.wfd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0); /* the parent is gone */
		p += w;
		n -= (size_t)w;
	}
}

/* Sends what the encoder put into C.out (under wmu). */
static void flush_locked(void)
{
	write_all(C.out.p, C.out.len);
	C.out.len = 0;
}

static void send_rc(uint16_t type, uint64_t id, int rc, const char *text)
{
	pthread_mutex_lock(&C.wmu);
	if (chan_rc_encode(&C.out, type, id, rc, text) == 0)
		flush_locked();
	pthread_mutex_unlock(&C.wmu);
}

static void send_stats(void)
{
	/* only when they changed: an idle engine process wrote 20 frames a
	 * second, each a wake-up of the host's reader */
	static txs_executor_stats last;
	static bool sent;
	txs_executor_stats s;
	txs_executor_stats_get(C.ex, &s); /* zeroed first: compared whole */
	if (sent && !memcmp(&s, &last, sizeof s))
		return;
	last = s;
	sent = true;
	pthread_mutex_lock(&C.wmu);
	if (chan_stats_encode(&C.out, &s) == 0)
		flush_locked();
	pthread_mutex_unlock(&C.wmu);
}

/* Cuts text to cap bytes at a UTF-8 character boundary. */
static void cap_text(char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n <= CHAN_MAX_TEXT)
		return;
	n = CHAN_MAX_TEXT;
	while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	s[n] = '\0';
}

/* This thread and its run-queue wait, read at most once per millisecond
 * (a pread of /proc/thread-self/schedstat, opened once per thread). */
static chan_lane this_lane(void)
{
	static _Thread_local int fd = -2;
	static _Thread_local chan_lane lane;
	static _Thread_local uint64_t read_ns;
	uint64_t now = txs_now_ns();
	if (fd == -2) {
		fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
		lane.tid = (uint32_t)gettid();
	}
	if (fd >= 0 && (!read_ns || now - read_ns >= 1000000)) {
		procstat_schedstat(fd, &lane.run_ns, &lane.wait_ns);
		read_ns = now;
	}
	return lane;
}

static void feed(void);

/* True on the executor's serving lane (set by lane_wait and on_started,
 * which only it calls). A scan it submits needs no wake-up; one submitted
 * from another thread (the executor's watcher answers a stuck scan, and
 * the answer feeds the next) must kick the lane out of its poll. */
static _Thread_local bool on_lane;

/* Answers are written at once when nothing else waits to run (the
 * parent, or a fan-out, waits for this one); behind a backlog they go out
 * in batches of BATCH_RESULTS, and the main thread writes what is left at
 * least every millisecond. A write to the socket wakes the host's reader
 * and cost the lane more than a small scan on a paravirtualised guest. */
#define BATCH_RESULTS 32

/* Encodes one answer into C.out and writes when due (wmu held). */
static void put_result_locked(uint64_t id, txs_scan_result *r, bool backlog)
{
	chan_lane lane = this_lane();
	cap_text(r->error);
	if (chan_result_encode(&C.out, id, r, &lane) == 0 &&
	    (!backlog || ++C.batched >= BATCH_RESULTS || C.out.len >= (64u << 10))) {
		flush_locked();
		C.batched = 0;
	}
	txs_scan_result_clear(r);
}

/* The main thread's share: what the lane left in the buffer. */
static void flush_pending(void)
{
	pthread_mutex_lock(&C.wmu);
	if (C.out.len) {
		flush_locked();
		C.batched = 0;
	}
	pthread_mutex_unlock(&C.wmu);
}

/* How long the main thread may sleep: 1 ms while answers wait in the
 * buffer (the lane batches them behind a backlog; see
 * put_result_locked), else 50 ms (the counters). */
static int wait_ms(void)
{
	pthread_mutex_lock(&C.wmu);
	bool waiting = C.out.len != 0;
	pthread_mutex_unlock(&C.wmu);
	return waiting ? 1 : 50;
}

/* Slot `at` of the window is answered: the answers at the front of the
 * window go out, in the order their scans came (the parent matches each
 * answer with its oldest scan). The executor answers in order too, except
 * when its watcher answers a stuck scan from another thread. qmu held. */
static void settle_locked(size_t at, txs_scan_result *r)
{
	C.win[at].r = *r;
	C.win[at].done = true;
	pthread_mutex_lock(&C.wmu);
	while (C.inflight && C.win[C.first].done) {
		slot *sl = &C.win[C.first];
		sl->done = false;
		C.first = (C.first + 1) % FEED_MAX;
		C.inflight--;
		/* the last scan started is answered: the page shows none, and the
		 * answers go out now, so the parent can again time the next scan
		 * from this answer (a rebuild may come first) */
		pthread_mutex_lock(&C.pmu);
		bool last = atomic_load_explicit(&C.page->id, memory_order_relaxed) == sl->id;
		if (last)
			chan_progress_put(C.page, 0, txs_now_ns(), 0);
		pthread_mutex_unlock(&C.pmu);
		if (sl->skipped) {
			txs_scan_result_clear(&sl->r);
			if (chan_frame(&C.out, CH_SKIPPED, sl->id, NULL, 0) == 0 &&
			    !(C.head || C.inflight)) {
				flush_locked();
				C.batched = 0;
			}
		} else {
			put_result_locked(sl->id, &sl->r, (C.head || C.inflight) && !last);
		}
	}
	pthread_mutex_unlock(&C.wmu);
	if (!C.inflight && !C.head)
		pthread_cond_broadcast(&C.idle);
}

static void on_result(txs_scan_result *r, void *ud)
{
	pthread_mutex_lock(&C.qmu);
	settle_locked((size_t)(uintptr_t)ud, r);
	pthread_mutex_unlock(&C.qmu);
	feed();
}

/* A control command runs after every scan that came before it (the parent
 * matches answers in order), and before any that comes after (the lane
 * reads no more frames meanwhile). */
static void wait_idle(void)
{
	pthread_mutex_lock(&C.qmu);
	while (C.inflight || C.head)
		pthread_cond_wait(&C.idle, &C.qmu);
	pthread_mutex_unlock(&C.qmu);
}

/* The lane builds an engine (txs_source.building): the page says so. */
static void on_building(bool on, void *ud)
{
	(void)ud;
	atomic_store_explicit(&C.page->build_ns, on ? txs_now_ns() : 0, memory_order_relaxed);
}

/* The scan in slot ud starts (txs_source.started, on the lane). */
static void on_started(void *scan_ud, uint64_t start_ns, void *ud)
{
	(void)ud;
	on_lane = true;
	size_t at = (size_t)(uintptr_t)scan_ud;
	static _Thread_local uint32_t tid;
	if (!tid)
		tid = (uint32_t)gettid();
	pthread_mutex_lock(&C.pmu);
	chan_progress_put(C.page, C.win[at].id, start_ns, tid); /* id: set before the submit */
	pthread_mutex_unlock(&C.pmu);
}

/* The parent no longer waits for scans with an id below this (channel.h). */
static bool unwanted(uint64_t id)
{
	return id < atomic_load_explicit(&C.page->skip_below, memory_order_relaxed);
}

/* txs_executor_skip_unwanted's question for the scan in slot ud, on the
 * lane: a scan it skips is answered CH_SKIPPED. */
static bool wanted(void *ud)
{
	slot *sl = &C.win[(size_t)(uintptr_t)ud];
	if (!unwanted(sl->id))
		return true;
	sl->skipped = true;
	return false;
}

/* Fills the window from the FIFO (on the lane, or on the executor's
 * watcher after it answered a stuck scan): up to FEED_MAX scans in the
 * executor, which runs those queued together as one batch. */
static void feed(void)
{
	for (;;) {
		pthread_mutex_lock(&C.qmu);
		job *j = C.inflight < FEED_MAX ? C.head : NULL;
		size_t at = (C.first + C.inflight) % FEED_MAX;
		if (j) {
			C.head = j->next;
			if (!C.head)
				C.tail = NULL;
			C.win[at].id = j->id;
			C.win[at].done = false;
			C.win[at].skipped = false;
			C.inflight++;
		}
		pthread_mutex_unlock(&C.qmu);
		if (!j)
			return;
		if (unwanted(j->id)) { /* answered without the executor */
			txs_shared_text_release(j->text);
			free(j);
			txs_scan_result r = {.status = TXS_STATUS_TIMEOUT};
			pthread_mutex_lock(&C.qmu);
			C.win[at].skipped = true;
			settle_locked(at, &r);
			pthread_mutex_unlock(&C.qmu);
			continue;
		}
		bool awake; /* on the serving lane: nothing to wake */
		int rc = txs_executor_submit_shared(C.ex, j->text, on_result, (void *)(uintptr_t)at,
		                                    on_lane ? &awake : NULL);
		txs_shared_text_release(j->text);
		free(j);
		if (rc == 0)
			continue;
		txs_scan_result r = {.status = rc == TXS_EOVERLOADED ? TXS_STATUS_OVERLOADED
		                              : rc == TXS_EUNAVAILABLE ? TXS_STATUS_UNAVAILABLE
		                                                       : TXS_STATUS_ERROR,
		                     .error = strdup(txs_last_error())};
		pthread_mutex_lock(&C.qmu);
		settle_locked(at, &r);
		pthread_mutex_unlock(&C.qmu);
	}
}

static void enqueue(uint64_t id, const unsigned char *tx, size_t len)
{
	job *j = malloc(sizeof *j);
	if (!j || !(j->text = txs_shared_text_new((const char *)tx, len)))
		_exit(3);
	j->id = id;
	j->next = NULL;
	pthread_mutex_lock(&C.qmu);
	if (C.tail)
		C.tail->next = j;
	else
		C.head = j;
	C.tail = j;
	pthread_mutex_unlock(&C.qmu);
	feed();
}

static void console_cb(const char *plugin, const char *level, const char *msg, size_t len,
                       void *ud)
{
	(void)plugin;
	(void)ud;
	pthread_mutex_lock(&C.wmu);
	/* on the lane: the page names the scan it runs (0 between scans) */
	uint64_t scan = atomic_load_explicit(&C.page->id, memory_order_relaxed);
	if (chan_console_encode(&C.out, scan, level, msg, len < CHAN_MAX_TEXT ? len : CHAN_MAX_TEXT) == 0)
		flush_locked();
	pthread_mutex_unlock(&C.wmu);
}

/* Executor events go to the host, which also recycles this process when a
 * lane was abandoned in a native call: its thread would spin on here. */
static void event_cb(const char *plugin, const char *event, const char *detail, void *ud)
{
	(void)plugin;
	(void)ud;
	pthread_mutex_lock(&C.wmu);
	if (chan_event_encode(&C.out, event, detail) == 0)
		flush_locked();
	pthread_mutex_unlock(&C.wmu);
}

static void control(const chan_header *h, const unsigned char *p)
{
	char probe[256];
	int rc = 0;
	wait_idle();
	if (h->type == CH_RESTART) {
		rc = txs_executor_restart(C.ex);
	} else if (h->type == CH_RELOAD) {
		txs_plugin_code code;
		txs_limits lim;
		bool has;
		rc = chan_code_decode(p, h->len, &code, &lim, &has) ? TXS_EINVAL
		     : txs_executor_reload(C.ex, &code, has ? &lim : NULL);
		chan_code_clear(&code);
	} else {
		rc = txs_sandbox_probe(probe, sizeof probe) ? 0 : TXS_EINVAL;
		send_rc(CH_DONE, h->id, rc, probe);
		return;
	}
	send_stats(); /* before the answer: a waiter reads the counters once it has it */
	send_rc(CH_DONE, h->id, rc, rc ? txs_last_error() : "");
}

/* Hands a control frame to the main thread (on the lane). */
static void hand_control(const chan_header *h, const unsigned char *p)
{
	unsigned char *copy = malloc(h->len ? h->len : 1);
	if (!copy)
		_exit(3);
	memcpy(copy, p, h->len);
	pthread_mutex_lock(&C.qmu);
	C.ctl_h = *h;
	C.ctl_p = copy;
	C.ctl_held = C.ctl_ready = true;
	pthread_cond_signal(&C.ctl_cv);
	pthread_mutex_unlock(&C.qmu);
}

static bool control_held(void)
{
	pthread_mutex_lock(&C.qmu);
	bool held = C.ctl_held;
	pthread_mutex_unlock(&C.qmu);
	return held;
}

/* Handles the whole frames in C.in up to and including a control frame
 * (on the lane): the number handled, or -1 on a frame the parent cannot
 * send. */
static int dispatch(void)
{
	chan_header h;
	const unsigned char *p;
	int k, n = 0;
	while ((k = chan_take(&C.in, (64u << 20), &h, &p)) == 1) {
		n++;
		if (h.type == CH_SCAN) {
			enqueue(h.id, p, h.len);
		} else if (h.type == CH_RESTART || h.type == CH_RELOAD || h.type == CH_PROBE) {
			hand_control(&h, p);
			break;
		} else {
			return -1;
		}
	}
	chan_buf_compact(&C.in);
	return k < 0 ? -1 : n;
}

static void kick(void *ud)
{
	(void)ud;
	uint64_t one = 1;
	if (write(C.evfd, &one, sizeof one) < 0) {
		/* the counter is full: the lane has a wake-up pending anyway */
	}
}

/* The serving lane's wait (txs_source): frames left behind a control
 * that is done, else a poll of the channel and of the kick, then the
 * frames read. The executor calls it again while its queue stays empty. */
static void lane_wait(void *ud, uint64_t deadline_ns)
{
	(void)ud;
	on_lane = true;
	bool held = control_held();
	if (!held && C.in.len > C.in.off) {
		int n = dispatch();
		if (n < 0)
			_exit(4);
		if (n > 0)
			return;
	}
	flush_pending();
	int ms = -1;
	if (deadline_ns) {
		uint64_t now = txs_now_ns();
		ms = now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
	}
	struct pollfd pfd[2] = {{.fd = C.evfd, .events = POLLIN}, {.fd = C.fd, .events = POLLIN}};
	if (poll(pfd, held ? 1 : 2, ms) <= 0)
		return;
	if (pfd[0].revents) {
		uint64_t v;
		if (read(C.evfd, &v, sizeof v) < 0) {
			/* EAGAIN: another wait took it */
		}
	}
	if (held || !pfd[1].revents)
		return;
	if (chan_buf_reserve(&C.in, READ_CHUNK))
		_exit(3);
	ssize_t n = read(C.fd, C.in.p + C.in.len, READ_CHUNK);
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
		_exit(0); /* end of channel: the parent is gone or let go */
	if (n > 0) {
		C.in.len += (size_t)n;
		if (dispatch() < 0)
			_exit(4);
	}
}

/* Reads until one whole frame of type want is in in; its payload. */
static const unsigned char *read_frame(chan_buf *in, uint16_t want, chan_header *h)
{
	const unsigned char *p;
	for (;;) {
		int k = chan_take(in, (256u << 20), h, &p);
		if (k == 1)
			return h->type == want ? p : NULL;
		if (k < 0 || chan_buf_reserve(in, READ_CHUNK))
			return NULL;
		ssize_t n = read(C.fd, in->p + in->len, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		in->len += (size_t)n;
	}
}

/* The main thread: control frames, the counters, batched answers. */
static void serve(void)
{
	uint64_t last_stats = 0;
	for (;;) {
		flush_pending();
		int ms = wait_ms();
		pthread_mutex_lock(&C.qmu);
		if (!C.ctl_ready) {
			struct timespec ts = txs_timespec(txs_now_ns() + (uint64_t)ms * 1000000ull);
			pthread_cond_timedwait(&C.ctl_cv, &C.qmu, &ts);
		}
		bool ctl = C.ctl_ready;
		chan_header h = C.ctl_h;
		unsigned char *p = C.ctl_p;
		C.ctl_ready = false;
		C.ctl_p = NULL;
		pthread_mutex_unlock(&C.qmu);
		if (ctl) {
			control(&h, p);
			free(p);
			pthread_mutex_lock(&C.qmu);
			C.ctl_held = false;
			pthread_mutex_unlock(&C.qmu);
			kick(NULL); /* the lane reads on */
		}
		uint64_t now = txs_now_ns();
		if (now - last_stats >= STATS_EVERY_NS) {
			send_stats();
			last_stats = now;
		}
	}
}

/* The executor's first lane (the thread named txs:<id>, the only one at
 * this point) and its run-queue wait: the parent's baseline for the first
 * scan. Nothing is sent if it cannot be found. */
static void send_first_lane(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char path[96], buf[96];
		snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n < 4 || strncmp(buf, "txs:", 4))
			continue;
		chan_lane lane = {.tid = (uint32_t)atoi(de->d_name)};
		snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		procstat_schedstat(fd, &lane.run_ns, &lane.wait_ns);
		if (fd >= 0)
			close(fd);
		pthread_mutex_lock(&C.wmu);
		if (chan_lane_encode(&C.out, &lane) == 0)
			flush_locked();
		pthread_mutex_unlock(&C.wmu);
		break;
	}
	if (d)
		closedir(d);
}

/* What this process holds before any of the plugin's code runs (none has:
 * the code was only read), for the parent's memory cap, which is measured
 * from here: from the RSS at CH_READY, a plugin that allocated while its
 * module loaded or in init(ctx) raised its own cap by as much, for ever.
 * Sent before the executor is built, so the plugin cannot write it. */
static void send_loading(void)
{
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	uint64_t rss = procstat_statm_rss(fd);
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&C.wmu);
	if (chan_frame(&C.out, CH_LOADING, 0, &rss, sizeof rss) == 0)
		flush_locked();
	pthread_mutex_unlock(&C.wmu);
}

/* Dies with the parent; descriptors (the channel's socket as 3, the
 * progress page as 4, the answer pipe's write end as 5, no other) and
 * limits. Each goes above 9 first, so that no dup2 lands on another. */
static int detach(int fd, int pfd, int ofd, pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		return -1;
	int from[3] = {fd, pfd, ofd};
	for (int i = 0; i < 3; i++)
		if ((from[i] = fcntl(from[i], F_DUPFD, 10)) < 0)
			return -1;
	for (int i = 0; i < 3; i++)
		if (dup2(from[i], 3 + i) < 0)
			return -1;
	close_range(6, ~0u, 0);
	signal(SIGPIPE, SIG_IGN);
	return txs_sandbox_limits();
}

/* An engine process from its channel fd on: started by exec
 * (--engine-child) or forked by the zygote. */
static int child_run(int fd, int pfd, int ofd, pid_t parent)
{
	if (detach(fd, pfd, ofd, parent) != 0)
		return 70;
	C.fd = 3;
	C.wfd = 5;
	C.page = mmap(NULL, CHAN_PROGRESS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, 4, 0);
	close(4);
	if (C.page == MAP_FAILED)
		return 70;
	pthread_mutex_init(&C.wmu, NULL);
	pthread_mutex_init(&C.qmu, NULL);
	pthread_mutex_init(&C.pmu, NULL);
	pthread_cond_init(&C.idle, NULL);
	txs_cond_init(&C.ctl_cv);
	C.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (C.evfd < 0)
		return 70;
	chan_header h;
	const unsigned char *p = read_frame(&C.in, CH_INIT, &h);
	txs_plugin_code code;
	txs_limits lim;
	bool has;
	if (!p || chan_code_decode(p, h.len, &code, &lim, &has))
		return 65;
	chan_buf_compact(&C.in);
	send_loading();
	int rc = txs_sandbox_enter();
	if (rc != 0) {
		char msg[96];
		snprintf(msg, sizeof msg, "cannot install the seccomp filter: %s", strerror(-rc));
		send_rc(CH_READY, 0, TXS_EINVAL, msg);
		return 71;
	}
	rc = txs_executor_new(&C.ex, &code, has ? &lim : NULL, console_cb, NULL);
	chan_code_clear(&code);
	if (rc == 0) {
		txs_executor_on_event(C.ex, event_cb, NULL);
		txs_executor_skip_unwanted(C.ex, wanted);
	}
	if (rc == 0) { /* counters and lane first: the parent reads them once it sees ready */
		send_first_lane();
		send_stats();
	}
	send_rc(CH_READY, 0, rc, rc ? txs_last_error() : "");
	if (rc)
		return 0;
	txs_source src = {.wait = lane_wait, .kick = kick, .started = on_started,
	                  .building = on_building};
	txs_executor_use_source(C.ex, &src); /* the lane handles what came with CH_INIT */
	serve();
	return 0;
}

/* ---- the zygote ------------------------------------------------------------ *
 * Linking the helper (libjavascriptcoregtk and its ~30 libraries: 11,500
 * symbol and 40,500 relative relocations, glib's and libselinux's
 * constructors) cost ~20 ms of CPU, as much as the engine's first VM: a
 * host starting 7 plugins paid it 7 times. The zygote is the helper
 * exec'd once per host process (parent.c), linked and nothing more: it
 * never calls into JavaScriptCore (JSC::initialize alone starts a thread:
 * libpas's scavenger), so it has one thread, and checks that it has
 * exactly one (/proc/self/status) before every fork; it answers -1 rather
 * than fork a threaded process. Each request brings the channel of a new
 * engine process (SCM_RIGHTS); the zygote clones with CLONE_PARENT, so the
 * engine process is the host's child as if the host had spawned it
 * (waitpid, its exit signal, PR_SET_PDEATHSIG against the host, getppid),
 * and runs child_run as an exec'd one does. The zygote itself dies with
 * the host (PR_SET_PDEATHSIG) and exits at end of its socket.
 *
 * The clone is the raw system call: glibc's fork() has no CLONE_PARENT.
 * What fork() does beyond it is not needed in a single-threaded process
 * whose only thread waits in recvmsg (atfork handlers: none registered;
 * malloc and stdio locks: free). The engine process's main thread keeps
 * the zygote's cached thread id in glibc's thread descriptor; glibc's
 * raise() and pthread_kill() of the calling thread ask the kernel instead
 * (since glibc 2.34; an abort() in such a child, on Debian 12's glibc
 * 2.36, ended the child with SIGABRT and left the zygote running), and
 * nothing else in the child uses it.
 *
 * Every engine process forked by one zygote has the zygote's address
 * layout (libraries, heap, stack): a compromised engine knows where its
 * siblings' libraries are, which seccomp (no ptrace, no process_vm_*, no
 * signals to other processes) leaves it no way to use. */

/* The number of threads of this process, from /proc/self/status; -1. */
static int threads_now(void)
{
	char buf[2048];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *t = strstr(buf, "\nThreads:");
	return t ? atoi(t + 9) : -1;
}

/* One request: a byte and three descriptors (the channel's socket, the
 * progress page, the answer pipe). 0, or -1 at end of channel or on a
 * request without them (any that came are closed). */
static int recv_fds(int sock, int fds[3])
{
	char byte;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(3 * sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
	                   .msg_controllen = sizeof u.buf};
	ssize_t n;
	while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
	}
	struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&m) : NULL;
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return -1;
	if (c->cmsg_len != CMSG_LEN(3 * sizeof(int))) {
		size_t got = c->cmsg_len > CMSG_LEN(0) ? (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) : 0;
		for (size_t i = 0; i < got && i < 3; i++) { /* close what came */
			int one;
			memcpy(&one, CMSG_DATA(c) + i * sizeof one, sizeof one);
			close(one);
		}
		return -1;
	}
	memcpy(fds, CMSG_DATA(c), 3 * sizeof(int));
	return 0;
}

static int zygote_main(int fd, pid_t host)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != host)
		return 70;
	if (fd != 3 && (dup2(fd, 3) < 0 || close(fd) != 0))
		return 70;
	close_range(4, ~0u, 0);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_NAME, "txs-zygote");
	if (txs_sandbox_limits() != 0)
		return 70;
	for (;;) {
		int fds[3];
		if (recv_fds(3, fds) != 0)
			return 0; /* the host let go, or sent what it never sends */
		int cfd = fds[0];
		int32_t answer[2] = {-1, threads_now()};
		if (answer[1] == 1) {
			long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
			if (pid == 0) {
				close(3);
				prctl(PR_SET_NAME, "txscan-engine"); /* ps -o comm tells the two apart */
				exit(child_run(cfd, fds[1], fds[2], host));
			}
			answer[0] = pid > 0 ? (int32_t)pid : -errno;
		}
		close(cfd);
		close(fds[1]);
		close(fds[2]);
		if (send(3, answer, sizeof answer, MSG_NOSIGNAL) != (ssize_t)sizeof answer)
			return 0;
	}
}

int txs_isolate_child_main(int argc, char **argv)
{
	if (argc != 4)
		return 64;
	int fd = atoi(argv[2]);
	pid_t parent = (pid_t)atol(argv[3]);
	if (!strcmp(argv[1], "--zygote"))
		return zygote_main(fd, parent);
	if (strcmp(argv[1], "--engine-child"))
		return 64;
	return child_run(fd, 4, 5, parent);
}
