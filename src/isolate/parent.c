/*
 * parent.c - the host's side of process isolation: txs_proc, a proxy with
 * the operations of txs_executor whose engines run in a child process.
 *
 * Threads. Each proxy has one I/O thread: it starts the child (asks the
 * zygote, whose children have the zygote's own creator as parent: a
 * thread that lives as long as the process; or spawns it itself, always
 * from this thread: PR_SET_PDEATHSIG fires when the thread that forked the
 * child ends, and this one lives as long as the proxy), writes what
 * submitters could not write at once, watches the socket for the child's
 * end, reaps a dead child and starts the replacement. One reader thread
 * for the whole process (answers.c) reads and checks every frame of every
 * child and calls the callbacks: a fan-out's answers wake one thread, not
 * one per child; when a child's pipe ends, or a frame breaks the
 * protocol, it hands the pipe back to the I/O thread, which reaps. One
 * monitor thread for the whole process holds the hard stops: every
 * millisecond while any child is busy it compares each child's oldest scan
 * with its deadline and, while the child starts and for a scan or control
 * running longer than a millisecond, reads the child's RSS
 * (/proc/<pid>/statm) against its cap, which is absolute: from the RSS the
 * child had before any of the plugin's code ran (CH_LOADING, see
 * rss_cap_locked); a child past either limit is SIGKILLed with the reason
 * and the guilty scan recorded, and its I/O thread finishes the job when
 * the channel closes (a start past the cap is a failed start).
 *
 * Pending list (under mu): every scan and control command sent or waiting
 * to be sent, in order. The child answers in order (child.c), so an
 * answer must match the head; any other is a protocol violation and the
 * child is killed. The scan timed is the one the child's progress page
 * names (channel.h: the child runs queued scans in batches and marks each
 * start), from the start it gives; when the page names none of ours in
 * flight, the head, from when it was sent or when the one before it was
 * answered, whichever is later (the child writes a batch's answers at once
 * when the batch ends). Its deadline is that plus timeout_ms +
 * TXS_PROC_GRACE_MS, plus, for the head, the init budget when the child is
 * expected to rebuild its engine first.
 *
 * A dead child: its guilty scan (the kill's reason) or, for a crash, the
 * scan its progress page names (else the first sent) answers timeout,
 * memory or error; every other scan goes back to the list unsent, to be
 * sent again to the replacement once (a second death answers it error;
 * one behind a control the child had not answered never ran there and
 * spends no try). The replacement starts at once; quarantine_after failed starts in a row
 * make the proxy answer unavailable and retry with backoff.
 *
 * Lock order: an answer slot's lock (answers.c) before gmu (monitor list)
 * before a proxy's mu. Callbacks run on the reader (or, for the scans a
 * kill or death settles, on the monitor or the I/O thread) with no lock of
 * ours held but the slot's.
 */
#define _GNU_SOURCE
#include "isolate.h"

#include "answers.h"
#include "channel.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/procstat.h"
#include "util/srcmap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_CHUNK (256u << 10)
#define CHAN_PIPE_BYTES (256 << 10) /* the answer pipe's buffer (a socket's is ~208 KiB) */
#define START_EXTRA_MS 5000
#define CONTROL_EXTRA_MS 1000
#define BACKOFF_MIN_NS (100 * 1000000ull)
#define BACKOFF_MAX_NS (30 * 1000000000ull)
#define TICK_NS 1000000ull
#define BREAKER_MAX_NS (60 * 1000000000ull)

extern char **environ;

enum state { S_DOWN, S_STARTING, S_UP, S_QUARANTINED };
enum kill_reason { K_NONE, K_TIMEOUT, K_MEMORY, K_PROTOCOL, K_START, K_STOP, K_RECYCLE };

typedef struct pend {
	uint64_t id;
	uint16_t type;          /* CH_SCAN or a control */
	txs_scan_fn cb;         /* scans */
	void *ud;
	unsigned char *frame;   /* header + payload, kept to send again */
	size_t flen;
	bool sent, trial;
	int tries;
	uint64_t sent_ns;
	uint64_t end_at;        /* the channel's out_queued once its frame was queued (this send) */
	uint64_t page_start_ns; /* the start the progress page first gave it (this send); 0: none */
	/* controls: the waiter's */
	bool done;
	int rc;
	char *text;
	struct pend *next;
} pend;

struct counters {
	_Atomic uint64_t scans, ok, errors, timeouts, memory_stops, overloaded, unavailable;
	_Atomic uint64_t crashes, kills_timeout, kills_memory, kills_protocol, starts, failed_starts;
	_Atomic uint64_t breaker_opens, skipped;
	_Atomic uint64_t latency_sum_ns, latency[TXS_LATENCY_BUCKETS];
	_Atomic uint32_t pending;
};

struct txs_proc {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* controls done; start handshake; quarantine wait */
	char id[65];
	char engine[PATH_MAX];
	txs_console_fn console;
	void *console_ud;
	txs_event_fn event; /* set before the first submit */
	void *event_ud;
	bool (*wanted)(void *); /* txs_proc_skip_unwanted; set before the first submit */

	/* under mu */
	txs_plugin_code *code; /* what a replacement starts with */
	txs_limits lim;
	enum state state;
	pid_t pid;
	int fd;      /* the socket: frames to the child, its end of channel */
	int rfd;     /* the read end of the child's pipe: every frame from it */
	int statm_fd;
	size_t rss_base;        /* the child's RSS before the plugin's code ran (CH_LOADING) */
	bool base_known;
	uint64_t rss_at_ns;     /* the monitor's last reading of it (over_cap_locked) */
	enum kill_reason kill;
	uint64_t guilty;        /* the scan a kill is for (0: none) */
	uint64_t start_deadline_ns;
	pend *head, *tail;
	uint64_t next_id;
	uint64_t last_answer_ns;
	uint64_t head_id, head_start_ns, head_allow_ns;
	bool head_build;        /* the head's allowance has a build's time (build_allowance_locked) */
	bool rebuild;           /* the child may rebuild its engine before the next scan */
	uint32_t lane_tid;      /* the child's serving thread, as it last said */
	uint64_t lane_run_ns, lane_wait_ns; /* its schedstat then: the next head's baseline */
	int sched_fd;           /* /proc/<pid>/task/<lane_tid>/schedstat */
	uint64_t head_run0_ns, head_wait0_ns;
	uint64_t kill_took_ns, kill_ran_ns; /* what the last deadline check saw */
	bool head_has_lane;
	chan_progress *page;    /* the child's progress page (channel.h); NULL: none */
	uint64_t skip_below;    /* the horizon published on it (publish_unwanted_locked) */
	uint64_t run_id;        /* the running scan the page last showed ... */
	uint64_t run_run0_ns, run_wait0_ns; /* ... and its thread's schedstat when first seen */
	bool run_has_lane;
	uint32_t run_tid;       /* the thread the page named: not always the one the */
	int run_sched_fd;       /* last answer came from (a lane swap, the watcher) */
	uint64_t gen_seen, gen_base, scans_in_gen;
	chan_buf out;           /* bytes not yet written to the child */
	uint64_t out_queued, out_written; /* bytes this child's channel was given, and took */
	bool out_closed;        /* the socket takes no more (EPIPE): end of channel */
	bool stopping, started;
	int start_rc;
	char *last_err;
	uint32_t consecutive_failures, quarantine_after;
	bool served;            /* the child answered something since it was ready */
	bool reaping;           /* the I/O thread took the child's end in hand (io_round_locked, reap_locked) */
	uint32_t idle_deaths;   /* children in a row that died before they served */
	/* the host's circuit breaker, across the child's lifetimes (see breaker_record) */
	uint32_t br_state, kills_in_row;
	uint64_t br_until_ns, br_cooldown_ns;
	bool br_trial_out;      /* the half-open trial was sent */
	bool init_failed;       /* the child said why it could not start (CH_READY) */
	uint64_t retry_at_ns, backoff_ns;
	txs_executor_stats child, base; /* the child's last counters; the dead ones' sum */

	pthread_t io;
	int evfd;
	answers_slot *reader;   /* the answer reader's hold on rfd (I/O thread only) */
	bool rd_gone;           /* the reader met the pipe's end or a violation (under mu) */
	chan_buf in;            /* the reader's while attached, else the I/O thread's */
	atomic_bool handling;   /* frames read from the pipe and not yet handled */
	struct counters c;
	struct txs_proc *mnext; /* monitor list, under gmu */
};

#define INC(f) atomic_fetch_add_explicit(&(f), 1, memory_order_relaxed)
#define GET(f) atomic_load_explicit(&(f), memory_order_relaxed)

/* ---- the monitor --------------------------------------------------------- */

static pthread_mutex_t gmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gcv;
static txs_proc *gprocs;
static bool gstarted;
static atomic_bool gsleeping;
static pthread_t gthread;
/* This thread holds gmu around callbacks (the monitor's, console lines),
 * and a submit from one of them asked for the monitor meanwhile. */
static _Thread_local bool gmu_held, poke_owed;

static void kill_locked(txs_proc *p, enum kill_reason why, uint64_t guilty)
{
	if (p->kill || p->pid == 0)
		return;
	p->kill = why;
	p->guilty = guilty;
	if (p->pid > 0) /* -1: the fuzz driver's proxy, which has no child */
		kill(p->pid, SIGKILL);
}


/* Kills the child for g's sake and takes g off the list. */
static pend *pop_guilty_locked(txs_proc *p, enum kill_reason why, pend *g)
{
	kill_locked(p, why, g->id);
	if (p->kill != why || p->guilty != g->id)
		return NULL;
	pend **at = &p->head, *prev = NULL;
	while (*at != g) {
		prev = *at;
		at = &(*at)->next;
	}
	*at = g->next;
	if (p->tail == g)
		p->tail = prev;
	p->head_id = 0;
	return g;
}

/* How the scan (or control) being timed started and what it may take. */
typedef struct timing {
	uint64_t start_ns, allow_ns;
	bool has_lane;              /* run0/wait0 are its thread's schedstat at the start */
	uint64_t run0_ns, wait0_ns;
	int sched_fd;               /* ... read from this descriptor (that thread's) */
} timing;

/* True when the scan timed by t, past its allowance by the clock, has not
 * used it: its thread ran (on a CPU, plus up to a quarter of the timeout
 * waiting for one) for less than the allowance. A machine short of cores,
 * or a child whose threads wait for one, does not get a scan killed; a
 * native call that spins does. Bounded by the executor's backstop (10x
 * the timeout, at least timeout + 1 s), which also stops a child that
 * sleeps to look idle. Also true while the channel holds unread answers,
 * in the pipe or read and not yet handled (the I/O thread is behind: a
 * slow callback, a wait for a core; not the child). */
static bool forgiven_locked(txs_proc *p, uint64_t now, const timing *tm)
{
	uint64_t took = now - tm->start_ns, t = (uint64_t)p->lim.timeout_ms * 1000000ull;
	uint64_t backstop = t * 10 > t + 1000000000ull ? t * 10 : t + 1000000000ull;
	if (took >= tm->allow_ns + backstop)
		return false;
	int unread = 0;
	if (atomic_load(&p->handling) || (ioctl(p->rfd, FIONREAD, &unread) == 0 && unread > 0))
		return true;
	uint64_t run, wait;
	p->kill_took_ns = took;
	p->kill_ran_ns = UINT64_MAX;
	if (!tm->has_lane)
		return false;
	/* the lane thread is gone: the process is exiting (its memory is torn
	 * down before its channel closes: 20-80 ms for a big heap) and the
	 * reap answers for it; or a lane ended after a swap: the backstop holds */
	if (!procstat_schedstat(tm->sched_fd, &run, &wait))
		return true;
	uint64_t ran = run > tm->run0_ns ? run - tm->run0_ns : 0;
	uint64_t waited = wait > tm->wait0_ns ? wait - tm->wait0_ns : 0;
	p->kill_ran_ns = ran;
	return ran + (waited < t / 4 ? waited : t / 4) <= tm->allow_ns;
}

/* Follows thread tid of the child for run-queue readings: *fd reads its
 * schedstat, *cur is the thread it reads. mu held. */
static void follow_thread_locked(txs_proc *p, uint32_t tid, int *fd, uint32_t *cur)
{
	if (tid == *cur && *fd >= 0)
		return;
	char path[96];
	if (*fd >= 0)
		close(*fd);
	snprintf(path, sizeof path, "/proc/%ld/task/%u/schedstat", (long)p->pid, tid);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	*cur = tid;
}

/* PAGE_LOOK bounds the walk down the pending list for the page's scan: the
 * child holds at most 32 scans in its executor, and answers that wait in
 * the channel come before them. */
#define PAGE_LOOK 1024

/* The pending command id among those sent and not answered; NULL. */
static pend *sent_pend_locked(txs_proc *p, uint64_t id)
{
	pend *pd = p->head;
	for (int i = 0; pd && pd->sent && pd->id != id && i < PAGE_LOOK; i++)
		pd = pd->next;
	return pd && pd->sent && pd->id == id ? pd : NULL;
}

/* The scan the child runs now by its progress page: one of ours, sent and
 * not answered, started no later than now; NULL when the page shows none
 * (between batches, or before the first scan). A page that lies can only
 * name one of our own scans: it can make the monitor time the wrong one
 * of them, never spare a stuck child its backstop (each scan is timed from
 * the first start the page gave it). mu held. */
static pend *page_running_locked(txs_proc *p, uint64_t now, timing *tm)
{
	uint64_t id, start;
	uint32_t tid;
	if (!p->page || !chan_progress_get(p->page, &id, &start, &tid) || !id || start > now)
		return NULL;
	pend *pd = sent_pend_locked(p, id);
	if (!pd || pd->type != CH_SCAN)
		return NULL;
	/* a scan starts once: the first start the page gives it holds, so a
	 * child that rewrites the start (or names other scans in between)
	 * cannot move its deadline on */
	if (!pd->page_start_ns)
		pd->page_start_ns = start;
	start = pd->page_start_ns;
	if (id != p->run_id) {
		p->run_id = id;
		follow_thread_locked(p, tid, &p->run_sched_fd, &p->run_tid);
		uint64_t run = 0, wait = 0;
		p->run_has_lane = tid && procstat_schedstat(p->run_sched_fd, &run, &wait);
		p->run_run0_ns = run;
		p->run_wait0_ns = wait;
	}
	*tm = (timing){.start_ns = start,
	               .allow_ns = ((uint64_t)p->lim.timeout_ms + TXS_PROC_GRACE_MS) * 1000000ull,
	               .has_lane = p->run_has_lane, .run0_ns = p->run_run0_ns,
	               .wait0_ns = p->run_wait0_ns, .sched_fd = p->run_sched_fd};
	return pd;
}

/* The memory cap of p's child: absolute for the process, from what it held
 * before any of the plugin's code ran (CH_LOADING), plus what an engine
 * process of a minimal plugin adds to that (TXS_PROC_ENGINE_MB: its VMs,
 * the standby's, JIT code, the library pages it faults in), heap_limit_mb
 * and the slack. A cap from the RSS at CH_READY counted whatever the
 * module and init(ctx) allocated as the base: a plugin that kept 1.5 GB
 * from its load had it for ever, on top of its cap. 0: no cap
 * (heap_limit_mb 0, or no base yet). mu held. */
static size_t rss_cap_locked(const txs_proc *p)
{
	if (!p->lim.heap_limit_mb || !p->base_known)
		return 0;
	size_t mb = (size_t)p->lim.heap_limit_mb + TXS_PROC_ENGINE_MB + TXS_PROC_RSS_SLACK_MB;
	return p->rss_base + (mb << 20);
}

/* How often the monitor reads the RSS of a child with work in flight whose
 * scans each end within a millisecond (one running longer is read every
 * tick), and of an idle child. Memory the plugin took where no scan ran
 * long (a standby engine's build, which runs the module and init(ctx)
 * beside the serving lane, or anything between scans) was otherwise never
 * looked at while its scans stayed short: it kept it, above the cap. */
#define RSS_BUSY_NS (10 * 1000000ull)
#define RSS_IDLE_NS (1000 * 1000000ull)

/* True when p's child holds more than its cap (read now). mu held. */
static bool over_cap_locked(txs_proc *p, uint64_t now)
{
	size_t cap = rss_cap_locked(p);
	p->rss_at_ns = now;
	return cap && procstat_statm_rss(p->statm_fd) > cap;
}

/* One look at p; *busy when it still needs watching. A scan killed for
 * its deadline or memory is taken off the list and returned, to be
 * answered now rather than when the child's teardown ends (unmapping
 * 2 GB took 20-50 ms). The scan timed is the one the progress page says
 * runs, else the oldest in flight: it started when it was sent or when
 * the one before it was answered, whichever is later (the child answers a
 * batch's scans as soon as the batch ends). */
/* Tells the child which of the oldest scans nobody waits for any more
 * (the host's report deadline claimed them: p->wanted), so that it
 * answers them CH_SKIPPED instead of running them, and the scans behind
 * them do not wait, and expire, too. As a thread executor does
 * (txs_executor_skip_unwanted), only the oldest are looked at, and the
 * breaker's trial and the scans behind a control stay. Each tick of the
 * monitor while scans are out. */
static void publish_unwanted_locked(txs_proc *p)
{
	if (!p->wanted || !p->page)
		return;
	uint64_t below = p->skip_below;
	for (pend *pd = p->head; pd && pd->type == CH_SCAN && !pd->trial; pd = pd->next) {
		if (pd->id < below)
			continue;
		if (p->wanted(pd->ud))
			break;
		below = pd->id + 1;
	}
	p->skip_below = below;
	/* rewritten when it differs: a new child's page starts at 0 */
	if (atomic_load_explicit(&p->page->skip_below, memory_order_relaxed) != below)
		atomic_store_explicit(&p->page->skip_below, below, memory_order_relaxed);
}

/* What building an engine may take the child: loading the module and
 * init(ctx), each under init_timeout_ms (a module of 600 ms and an init of
 * 600 ms are within their budgets), and the rest. */
static uint64_t build_allow_ms(const txs_proc *p)
{
	return 2ull * p->lim.init_timeout_ms + 100u;
}

/* The head waits while the child's serving thread builds an engine (its
 * page says so): a realm built ahead in idle time (after a manual restart,
 * before a scheduled one), or a rebuild the host did not foresee (the
 * heap's). It is timed from its send, so it gets the time of one build,
 * as for a rebuild it foresaw (track_head_locked), once: a child that says
 * it builds for ever gains no more. Before, a plugin whose module took
 * ~100 ms to load had the scan after each of its recycles killed. */
static void build_allowance_locked(txs_proc *p)
{
	if (p->head_build || !p->page || !atomic_load_explicit(&p->page->build_ns, memory_order_relaxed))
		return;
	p->head_build = true;
	p->head_allow_ns += build_allow_ms(p) * 1000000ull;
}

static pend *watch_locked(txs_proc *p, uint64_t now, bool *busy, bool *idle)
{
	if (p->reaping || p->rd_gone) /* the child's end: the reap settles its scans */
		return NULL;
	if (p->state == S_STARTING) {
		/* the module and init(ctx) run now: held to the cap as a scan is
		 * (the reap makes it a failed start that names the cap) */
		if (now > p->start_deadline_ns)
			kill_locked(p, K_START, 0);
		else if (over_cap_locked(p, now))
			kill_locked(p, K_MEMORY, 0);
		*busy = true;
		return NULL;
	}
	if (p->state != S_UP || p->kill)
		return NULL;
	if (!p->head || !p->head->sent) { /* idle: a look now and then (RSS_IDLE_NS) */
		*idle = *idle || rss_cap_locked(p);
		if (now - p->rss_at_ns >= RSS_IDLE_NS && over_cap_locked(p, now))
			kill_locked(p, K_MEMORY, 0);
		return NULL;
	}
	*busy = true;
	publish_unwanted_locked(p);
	timing tm;
	pend *cur = page_running_locked(p, now, &tm);
	if (!cur) {
		cur = p->head;
		build_allowance_locked(p);
		tm = (timing){.start_ns = p->head_start_ns, .allow_ns = p->head_allow_ns,
		              .has_lane = p->head_has_lane, .run0_ns = p->head_run0_ns,
		              .wait0_ns = p->head_wait0_ns, .sched_fd = p->sched_fd};
	}
	bool scan = cur->type == CH_SCAN;
	if (now > tm.start_ns + tm.allow_ns && !forgiven_locked(p, now, &tm)) {
		if (scan)
			return pop_guilty_locked(p, K_TIMEOUT, cur);
		kill_locked(p, K_TIMEOUT, 0);
		return NULL;
	}
	/* a control (restart, reload) builds an engine and runs the plugin's
	 * module and init(ctx) in it: held to the cap too */
	if ((now - tm.start_ns >= TICK_NS || now - p->rss_at_ns >= RSS_BUSY_NS) &&
	    over_cap_locked(p, now)) {
		if (scan)
			return pop_guilty_locked(p, K_MEMORY, cur);
		kill_locked(p, K_MEMORY, 0);
	}
	return NULL;
}

static void answer_killed(txs_proc *p, pend *pd, enum kill_reason k);

/* p's limits now: a reload changes them under mu, and the I/O and monitor
 * threads read them without it (TSan saw the race). */
static txs_limits lim_now(txs_proc *p)
{
	pthread_mutex_lock(&p->mu);
	txs_limits l = p->lim;
	pthread_mutex_unlock(&p->mu);
	return l;
}

/* gsleeping is set before the look at every proxy: a proxy that gets work
 * after its look sees it set and wakes the monitor; one that got work
 * before is seen busy. Callbacks of killed scans run here, under gmu (a
 * proxy cannot be freed meanwhile); they may submit, not create or free
 * proxies. gsleeping is set while they run, so a submit from one would
 * have its poke wait for gmu, held by this very thread (monitor_poke):
 * a round that ran callbacks is followed by another, which sees what they
 * submitted. */
static void *monitor_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "txs:monitor");
	gmu_held = true; /* whenever it runs a callback */
	pthread_mutex_lock(&gmu);
	for (;;) {
		bool busy = false, idle = false;
		atomic_store(&gsleeping, true);
		uint64_t now = txs_now_ns();
		for (txs_proc *p = gprocs; p; p = p->mnext) {
			pthread_mutex_lock(&p->mu);
			enum kill_reason k = p->kill;
			pend *g = watch_locked(p, now, &busy, &idle);
			k = g ? p->kill : k;
			pthread_mutex_unlock(&p->mu);
			if (g) {
				answer_killed(p, g, k);
				busy = true; /* look again: the callback may have submitted */
			}
		}
		if (!busy && idle) { /* children with a cap, idle: their RSS once a second */
			struct timespec ts = txs_timespec(now + RSS_IDLE_NS);
			pthread_cond_timedwait(&gcv, &gmu, &ts);
			continue;
		}
		if (!busy) {
			pthread_cond_wait(&gcv, &gmu);
			continue;
		}
		atomic_store(&gsleeping, false);
		pthread_mutex_unlock(&gmu);
		struct timespec ts = {0, (long)TICK_NS};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&gmu);
	}
	return NULL;
}

/* Wakes the monitor if it sleeps: p just got something to watch. Called
 * without p->mu. From a callback run under gmu (a submit from it) the
 * poke is owed instead: gmu is this thread's, which pokes once it lets go
 * (the monitor: it looks again). */
static void monitor_poke(void)
{
	if (!atomic_load(&gsleeping))
		return;
	if (gmu_held) {
		poke_owed = true;
		return;
	}
	pthread_mutex_lock(&gmu);
	if (atomic_exchange(&gsleeping, false))
		pthread_cond_signal(&gcv);
	pthread_mutex_unlock(&gmu);
}

static int monitor_add(txs_proc *p)
{
	pthread_mutex_lock(&gmu);
	if (!gstarted) {
		txs_cond_init(&gcv);
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		gstarted = pthread_create(&gthread, &a, monitor_main, NULL) == 0;
		pthread_attr_destroy(&a);
	}
	p->mnext = gprocs;
	gprocs = p;
	bool ok = gstarted;
	pthread_mutex_unlock(&gmu);
	return ok ? 0 : -1;
}

static void monitor_remove(txs_proc *p)
{
	pthread_mutex_lock(&gmu);
	for (txs_proc **q = &gprocs; *q; q = &(*q)->mnext)
		if (*q == p) {
			*q = p->mnext;
			break;
		}
	pthread_mutex_unlock(&gmu);
}

/* ---- engine path -------------------------------------------------------- */

static bool executable(const char *path)
{
	return path && *path && access(path, X_OK) == 0;
}

int txs_isolate_engine_path(const char *opt, char *buf, size_t cap)
{
	const char *env = getenv("TXSCAN_ENGINE");
	char self[PATH_MAX];
	if (executable(opt) || executable(env)) {
		snprintf(buf, cap, "%s", executable(opt) ? opt : env);
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			int w = snprintf(buf, cap, "%s/txscan-engine", self);
			if (w > 0 && (size_t)w < cap && executable(buf))
				return 0;
		}
	}
#ifdef TXS_ENGINE_BUILD_PATH
	if (executable(TXS_ENGINE_BUILD_PATH)) {
		snprintf(buf, cap, "%s", TXS_ENGINE_BUILD_PATH);
		return 0;
	}
#endif
	return txs_fail(TXS_ENOTFOUND, "process isolation: no txscan-engine helper (set TXSCAN_ENGINE, "
	                "or install it beside the program)");
}

/* ---- code copies ---------------------------------------------------------- */

static void code_free(txs_plugin_code *c)
{
	if (!c)
		return;
	free((char *)c->id);
	free((char *)c->version);
	free((char *)c->filename);
	free((char *)c->source);
	free((char *)c->config_json);
	free(c);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static txs_plugin_code *code_copy(const txs_plugin_code *in)
{
	txs_plugin_code *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->id = dup_or_null(in->id);
	c->version = dup_or_null(in->version ? in->version : "");
	c->filename = dup_or_null(in->filename ? in->filename : in->id);
	char *src = malloc(in->source_len + 1);
	if (src) {
		memcpy(src, in->source, in->source_len);
		src[in->source_len] = '\0';
	}
	c->source = src;
	c->source_len = in->source_len;
	c->config_json = dup_or_null(in->config_json);
	if (!c->id || !c->version || !c->filename || !c->source ||
	    (in->config_json && !c->config_json)) {
		code_free(c);
		return NULL;
	}
	return c;
}

/* ---- sending ------------------------------------------------------------ */

/* Wakes p's I/O thread out of its poll. */
static void poke_io(txs_proc *p)
{
	uint64_t one = 1;
	if (write(p->evfd, &one, sizeof one) < 0) {
		/* the counter is full: the I/O thread is woken anyway */
	}
}

/* Writes what fits now; the rest waits in p->out for the I/O thread. A
 * child that shut the reading side of its socket (or is gone) makes every
 * send fail with EPIPE while poll still says the socket is writable: that
 * is the end of the channel (out_closed, the I/O thread reaps), not a
 * write to retry at once for as long as the child lives. */
static void flush_locked(txs_proc *p)
{
	while (p->fd >= 0 && !p->out_closed && p->out.off < p->out.len) {
		ssize_t n = send(p->fd, p->out.p + p->out.off, p->out.len - p->out.off,
		                 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			p->out_closed = true;
		if (n <= 0)
			break;
		p->out.off += (size_t)n;
		p->out_written += (uint64_t)n;
	}
	if (p->out.off == p->out.len)
		p->out.off = p->out.len = 0;
	else if (p->out.off > (1u << 20))
		chan_buf_compact(&p->out);
}

static void track_head_locked(txs_proc *p, uint64_t now);

/* Scans in flight past which a submit only queues its frame: the child
 * has a backlog, and the I/O thread writes what was queued when the next
 * answers come in (child.c batches answers by 32 behind a backlog). One
 * write per scan cost the submitting thread a system call and woke the
 * child's reader each time: 18 % of the CPU of a pipelined stream. */
#define SEND_AHEAD 64

/* Queues pd's frame for the child (state UP) and writes what fits, unless
 * defer (see SEND_AHEAD). */
static void send_locked(txs_proc *p, pend *pd, uint64_t now, bool defer)
{
	bool was_empty = p->out.len == p->out.off;
	if (chan_buf_put(&p->out, pd->frame, pd->flen) != 0)
		return; /* stays unsent: the monitor's deadline covers it */
	p->out_queued += pd->flen;
	pd->end_at = p->out_queued;
	pd->sent = true;
	pd->sent_ns = now;
	pd->page_start_ns = 0;
	if (p->head == pd)
		track_head_locked(p, now);
	if (defer)
		return;
	flush_locked(p);
	if (was_empty && p->out.len != p->out.off)
		poke_io(p); /* it writes the rest when the child reads (POLLOUT) */
}

static void send_unsent_locked(txs_proc *p)
{
	uint64_t now = txs_now_ns();
	for (pend *pd = p->head; pd; pd = pd->next)
		if (!pd->sent)
			send_locked(p, pd, now, false);
}

/* The head's start and allowance (see the top of the file). */
static void track_head_locked(txs_proc *p, uint64_t now)
{
	pend *h = p->head;
	if (!h || !h->sent || h->id == p->head_id)
		return;
	p->head_id = h->id;
	uint64_t start = h->sent_ns > p->last_answer_ns ? h->sent_ns : p->last_answer_ns;
	p->head_start_ns = start < now ? start : now;
	uint64_t ms = h->type == CH_SCAN
	                  ? (uint64_t)p->lim.timeout_ms + TXS_PROC_GRACE_MS +
	                        (p->rebuild ? build_allow_ms(p) : 0)
	                  : 2ull * p->lim.init_timeout_ms + CONTROL_EXTRA_MS;
	p->head_allow_ns = ms * 1000000ull;
	p->head_build = h->type != CH_SCAN || p->rebuild;
	p->head_run0_ns = p->lane_run_ns;
	p->head_wait0_ns = p->lane_wait_ns;
	p->head_has_lane = p->sched_fd >= 0 && p->lane_run_ns;
}

/* The child named its serving thread: follow its schedstat. mu held. */
static void set_lane_locked(txs_proc *p, const chan_lane *lane)
{
	p->lane_run_ns = lane->run_ns;
	p->lane_wait_ns = lane->wait_ns;
	follow_thread_locked(p, lane->tid, &p->sched_fd, &p->lane_tid);
}

static void append_locked(txs_proc *p, pend *pd)
{
	pd->next = NULL;
	if (p->tail)
		p->tail->next = pd;
	else
		p->head = pd;
	p->tail = pd;
}

/* A pending command and its frame, in one allocation. */
static pend *pend_new(txs_proc *p, uint16_t type, const void *payload, size_t len)
{
	pend *pd = len > UINT32_MAX ? NULL : malloc(sizeof *pd + CHAN_HEADER + len);
	if (!pd)
		return NULL;
	*pd = (pend){0};
	unsigned char *frame = (unsigned char *)(pd + 1);
	pd->id = ++p->next_id;
	pd->type = type;
	chan_header h = {.len = (uint32_t)len, .type = type, .id = pd->id};
	chan_header_put(frame, &h);
	if (len)
		memcpy(frame + CHAN_HEADER, payload, len);
	pd->frame = frame;
	pd->flen = CHAN_HEADER + len;
	return pd;
}

static void pend_free(pend *pd)
{
	if (!pd)
		return;
	free(pd->text);
	free(pd);
}

/* ---- answers ------------------------------------------------------------- */

static void record(txs_proc *p, const txs_scan_result *r)
{
	switch (r->status) {
	case TXS_STATUS_OK: INC(p->c.ok); break;
	case TXS_STATUS_ERROR: INC(p->c.errors); break;
	case TXS_STATUS_TIMEOUT: INC(p->c.timeouts); break;
	case TXS_STATUS_MEMORY: INC(p->c.memory_stops); break;
	case TXS_STATUS_OVERLOADED: INC(p->c.overloaded); return;
	case TXS_STATUS_UNAVAILABLE: INC(p->c.unavailable); return;
	default: return;
	}
	INC(p->c.scans);
	const double *b = txs_latency_bounds_ms();
	int i = 0;
	while (i < TXS_LATENCY_BUCKETS - 1 && r->ms > b[i])
		i++;
	INC(p->c.latency[i]);
	atomic_fetch_add_explicit(&p->c.latency_sum_ns, (uint64_t)(r->ms * 1e6), memory_order_relaxed);
}

/* Answers a scan that leaves the pending list (no lock held). */
static void emit(txs_proc *p, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void emit(txs_proc *p, const char *event, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	if (!p->event)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	p->event(p->id, event, detail, p->event_ud);
}

/* The executor's circuit breaker, kept by the host across the child's
 * lifetimes: the child's own breaker starts closed in every replacement,
 * so a plugin whose every scan hangs in a native call would cost a
 * process start per scan. breaker_after kills in a row (timeout, memory:
 * the child's or the host's) open it: submits answer unavailable for a
 * cool-down, then one trial runs (half-open); a kill reopens it for twice
 * as long (to 60 s), anything that ran closes it. */
static void breaker_record(txs_proc *p, txs_status st, bool trial)
{
	bool kill = st == TXS_STATUS_TIMEOUT || st == TXS_STATUS_MEMORY;
	bool ran = kill || st == TXS_STATUS_OK || st == TXS_STATUS_ERROR;
	const char *event = NULL;
	uint64_t cool = 0;
	uint32_t row;
	pthread_mutex_lock(&p->mu);
	if (kill)
		p->kills_in_row++;
	else if (ran)
		p->kills_in_row = 0;
	row = p->kills_in_row;
	uint32_t after = p->lim.breaker_after;
	if (trial && p->br_state == TXS_BREAKER_HALF_OPEN) {
		p->br_trial_out = false;
		if (kill) {
			cool = p->br_cooldown_ns * 2;
			event = "breaker_open";
		} else if (ran) {
			p->br_state = TXS_BREAKER_CLOSED;
			p->br_cooldown_ns = 0;
			event = "breaker_closed";
		}
	} else if (kill && p->br_state == TXS_BREAKER_CLOSED && after && row >= after) {
		cool = (uint64_t)p->lim.breaker_cooldown_ms * 1000000ull;
		event = "breaker_open";
	}
	if (cool) {
		p->br_cooldown_ns = cool > BREAKER_MAX_NS ? BREAKER_MAX_NS : cool;
		p->br_until_ns = txs_now_ns() + p->br_cooldown_ns;
		p->br_state = TXS_BREAKER_OPEN;
		INC(p->c.breaker_opens);
	}
	cool = p->br_cooldown_ns;
	pthread_mutex_unlock(&p->mu);
	if (event && !strcmp(event, "breaker_open"))
		emit(p, event, "%u consecutive timeouts or memory stops; unavailable for %llu ms, then "
		     "one trial scan", row, (unsigned long long)(cool / 1000000));
	else if (event)
		emit(p, event, "the trial scan ran: scans run again");
}

/* Submit's gate while the circuit is not closed: 0 (*trial set for the
 * half-open trial), or TXS_EUNAVAILABLE. mu held. */
static int breaker_gate_locked(txs_proc *p, bool *trial)
{
	if (p->br_state == TXS_BREAKER_CLOSED)
		return 0;
	uint64_t now = txs_now_ns();
	if (p->br_state == TXS_BREAKER_OPEN && now >= p->br_until_ns) {
		p->br_state = TXS_BREAKER_HALF_OPEN;
		p->br_trial_out = false;
	}
	if (p->br_state == TXS_BREAKER_HALF_OPEN && !p->br_trial_out) {
		p->br_trial_out = *trial = true;
		return 0;
	}
	return txs_fail(TXS_EUNAVAILABLE, "plugin %s: circuit open after %u consecutive timeouts or "
	                "memory stops (%s)", p->id, p->kills_in_row,
	                p->br_state == TXS_BREAKER_OPEN ? "cooling down" : "a trial scan runs");
}

/* A bundled plugin's positions in text, as its original files': the source
 * maps are registered in this process (util/srcmap.h), not in the child.
 * Positions are replaced in the first MAPPED_TEXT_MAX bytes (the child's
 * error texts are 16 KB at most). */
#define MAPPED_TEXT_MAX (16u << 10)
static void map_positions(char **text)
{
	char *m = *text ? srcmap_rewrite(*text, MAPPED_TEXT_MAX) : NULL;
	if (m) {
		free(*text);
		*text = m;
	}
}

static void answer(txs_proc *p, pend *pd, txs_scan_result *r)
{
	map_positions(&r->error);
	record(p, r);
	breaker_record(p, r->status, pd->trial);
	atomic_fetch_sub_explicit(&p->c.pending, 1, memory_order_relaxed);
	pd->cb(r, pd->ud);
	pend_free(pd);
}

static void answer_status(txs_proc *p, pend *pd, txs_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void answer_status(txs_proc *p, pend *pd, txs_status st, const char *fmt, ...)
{
	txs_scan_result r = {.status = st};
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&r.error, fmt, ap) < 0)
		r.error = NULL;
	va_end(ap);
	answer(p, pd, &r);
}

static void control_done_locked(txs_proc *p, pend *pd, int rc, char *text)
{
	pd->done = true;
	pd->rc = rc;
	pd->text = text;
	pthread_cond_broadcast(&p->cv);
}

/* ---- frames from the child (I/O thread) ----------------------------------- */

static void violation(txs_proc *p, const char *what)
{
	pthread_mutex_lock(&p->mu);
	free(p->last_err);
	p->last_err = strdup(what);
	kill_locked(p, K_PROTOCOL, 0);
	pthread_mutex_unlock(&p->mu);
}

/* Pops the head if it is the sent command id of type; else NULL. */
static pend *pop_head_locked(txs_proc *p, uint64_t id, uint16_t type)
{
	pend *h = p->head;
	if (!h || !h->sent || h->id != id || (type == CH_SCAN) != (h->type == CH_SCAN))
		return NULL;
	p->head = h->next;
	if (!p->head)
		p->tail = NULL;
	if (!p->served) { /* this child's start held */
		p->served = true;
		p->idle_deaths = 0;
		p->backoff_ns = 0;
	}
	p->last_answer_ns = txs_now_ns();
	track_head_locked(p, p->last_answer_ns);
	return h;
}

static void on_result(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	txs_scan_result r;
	chan_lane lane;
	const char *bad = chan_result_decode(pl, h->len, lim_now(p).max_result_bytes, &r, &lane);
	if (bad) {
		violation(p, bad);
		return;
	}
	pthread_mutex_lock(&p->mu);
	set_lane_locked(p, &lane);
	if (r.generation != p->gen_seen) {
		p->gen_seen = r.generation;
		p->scans_in_gen = 0;
	}
	p->scans_in_gen++;
	p->rebuild = r.status == TXS_STATUS_TIMEOUT || r.status == TXS_STATUS_MEMORY ||
	             (p->lim.restart_every && p->scans_in_gen >= p->lim.restart_every);
	pend *pd = pop_head_locked(p, h->id, CH_SCAN);
	r.generation += p->gen_base;
	pthread_mutex_unlock(&p->mu);
	if (!pd) {
		txs_scan_result_clear(&r);
		violation(p, "result for a scan that is not the oldest in flight");
		return;
	}
	answer(p, pd, &r);
}

/* The child did not run the oldest scan, as the horizon on its page
 * allowed (publish_unwanted_locked): nobody waits for it, and it is
 * answered timeout, as a thread executor answers a scan it skips: not
 * the plugin's, so neither counted nor held against it by the breaker.
 * Above the horizon, the child lied: a scan still waited for would go
 * unanswered. */
static void on_skipped(txs_proc *p, const chan_header *h)
{
	pthread_mutex_lock(&p->mu);
	pend *pd = p->head;
	bool ok = h->len == 0 && pd && pd->sent && pd->id == h->id && pd->type == CH_SCAN &&
	          !pd->trial && pd->id < p->skip_below;
	pd = ok ? pop_head_locked(p, h->id, CH_SCAN) : NULL;
	pthread_mutex_unlock(&p->mu);
	if (!pd) {
		violation(p, "skipped a scan that is not the oldest in flight or still waited for");
		return;
	}
	INC(p->c.skipped);
	atomic_fetch_sub_explicit(&p->c.pending, 1, memory_order_relaxed);
	txs_scan_result r = {.status = TXS_STATUS_TIMEOUT};
	pd->cb(&r, pd->ud);
	pend_free(pd);
}

static void on_done(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	int rc;
	char *text;
	const char *bad = chan_rc_decode(pl, h->len, &rc, &text);
	if (bad) {
		violation(p, bad);
		return;
	}
	map_positions(&text);
	pthread_mutex_lock(&p->mu);
	pend *pd = pop_head_locked(p, h->id, CH_DONE);
	if (pd)
		control_done_locked(p, pd, rc, text);
	p->rebuild = false;
	pthread_mutex_unlock(&p->mu);
	if (!pd) {
		free(text);
		violation(p, "control answer out of order");
	}
}

static void on_ready(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	int rc;
	char *text;
	const char *bad = chan_rc_decode(pl, h->len, &rc, &text);
	pthread_mutex_lock(&p->mu);
	if (bad || p->state != S_STARTING || !p->base_known) {
		pthread_mutex_unlock(&p->mu);
		free(text);
		violation(p, bad ? bad : p->state != S_STARTING ? "ready frame after the start"
		                                                 : "ready frame before the memory base");
		return;
	}
	if (rc != 0) {
		free(p->last_err);
		p->last_err = text;
		p->init_failed = true;
		kill_locked(p, K_START, 0);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	free(text);
	/* what the module and init(ctx) kept, past the cap: a failed start */
	if (over_cap_locked(p, txs_now_ns())) {
		kill_locked(p, K_MEMORY, 0);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	p->state = S_UP;
	p->consecutive_failures = 0;
	p->served = false; /* the backoff is reset once it serves (pop_head_locked) */
	p->last_answer_ns = txs_now_ns();
	p->head_id = 0;
	p->rebuild = false;
	INC(p->c.starts);
	if (!p->started) {
		p->started = true;
		pthread_cond_broadcast(&p->cv);
	}
	send_unsent_locked(p);
	pthread_mutex_unlock(&p->mu);
	monitor_poke();
}

/* The child's RSS before the plugin's code ran: the base of its memory
 * cap (rss_cap_locked). Written by the child's own code before the
 * executor is built, so no plugin code could write it; still, once per
 * process, before CH_READY, and no more than the RSS read here. */
static void on_loading(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	uint64_t rss;
	pthread_mutex_lock(&p->mu);
	bool ok = h->len == sizeof rss && p->state == S_STARTING && !p->base_known;
	if (ok) {
		memcpy(&rss, pl, sizeof rss);
		size_t now = procstat_statm_rss(p->statm_fd);
		p->rss_base = now && now < rss ? now : (size_t)rss;
		p->base_known = true;
	}
	pthread_mutex_unlock(&p->mu);
	if (!ok)
		violation(p, "memory base frame: bad, repeated or after the start");
}

static void on_lane(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	chan_lane lane;
	const char *bad = chan_lane_decode(pl, h->len, &lane);
	if (bad) {
		violation(p, bad);
		return;
	}
	pthread_mutex_lock(&p->mu);
	set_lane_locked(p, &lane);
	p->head_id = 0; /* a head tracked before this frame gets the baseline */
	track_head_locked(p, txs_now_ns());
	pthread_mutex_unlock(&p->mu);
}

/* An executor event from the child, passed on; a lane abandoned in a
 * native call (the executor answered its scan timeout and left the thread
 * spinning) gets the child replaced: a process can be stopped. */
static void on_event(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	char name[32], *detail;
	const char *bad = chan_event_decode(pl, h->len, name, sizeof name, &detail);
	if (bad) {
		violation(p, bad);
		return;
	}
	/* The breaker's transitions are the host's own (breaker_record): the
	 * child's, which open at the same count, would say each one twice. */
	if (p->event && strncmp(name, "breaker_", 8))
		p->event(p->id, name, detail, p->event_ud);
	free(detail);
	if (strcmp(name, "lane_abandoned") && strcmp(name, "lanes_exhausted"))
		return;
	pthread_mutex_lock(&p->mu);
	kill_locked(p, K_RECYCLE, 0);
	pthread_mutex_unlock(&p->mu);
}

/* A console line goes out tagged with the scan it came from (through
 * txs_log_scan_userdata): the child names it (the scan its progress page
 * showed as the line was printed), and writes a scan's console lines before
 * its result; a line from no scan (loading, init) goes with the oldest in
 * flight. gmu is held around
 * the call because the monitor answers a killed head under gmu, and an
 * answered scan's userdata may be gone. */
static void console_of_scan(txs_proc *p, uint64_t id, const char *level, const char *msg,
                            size_t len)
{
	pthread_mutex_lock(&gmu);
	pthread_mutex_lock(&p->mu);
	pend *h = id ? sent_pend_locked(p, id) : NULL;
	if (!h)
		h = p->head; /* none, or not one of ours in flight: the oldest */
	void *scan = h && h->type == CH_SCAN && h->sent ? h->ud : NULL;
	pthread_mutex_unlock(&p->mu);
	txs_log_scan_userdata = scan;
	gmu_held = true;
	p->console(p->id, level, msg, len, p->console_ud);
	gmu_held = false;
	txs_log_scan_userdata = NULL;
	pthread_mutex_unlock(&gmu);
	if (poke_owed) { /* the console sink submitted */
		poke_owed = false;
		monitor_poke();
	}
}

static void on_console(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	char level[16], *msg;
	size_t len;
	const char *bad = chan_console_decode(pl, h->len, level, sizeof level, &msg, &len);
	if (bad) {
		violation(p, bad);
		return;
	}
	if (strlen(msg) == len) { /* no NUL inside */
		map_positions(&msg);
		len = strlen(msg);
	}
	if (p->console)
		console_of_scan(p, h->id, level, msg, len);
	free(msg);
}

static void on_stats(txs_proc *p, const chan_header *h, const unsigned char *pl)
{
	txs_executor_stats s;
	const char *bad = chan_stats_decode(pl, h->len, &s);
	if (bad) {
		violation(p, bad);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->child = s;
	pthread_mutex_unlock(&p->mu);
}

/* Every whole frame read so far; false once the child broke the protocol. */
static bool frames(txs_proc *p)
{
	chan_header h;
	const unsigned char *pl;
	size_t max = lim_now(p).max_result_bytes + CHAN_MAX_TEXT + CHAN_RESULT_FIXED;
	int k;
	while ((k = chan_take(&p->in, max, &h, &pl)) == 1) {
		switch (h.type) {
		case CH_RESULT: on_result(p, &h, pl); break;
		case CH_DONE: on_done(p, &h, pl); break;
		case CH_READY: on_ready(p, &h, pl); break;
		case CH_CONSOLE: on_console(p, &h, pl); break;
		case CH_STATS: on_stats(p, &h, pl); break;
		case CH_LANE: on_lane(p, &h, pl); break;
		case CH_EVENT: on_event(p, &h, pl); break;
		case CH_LOADING: on_loading(p, &h, pl); break;
		case CH_SKIPPED: on_skipped(p, &h); break;
		default: violation(p, "unknown frame type"); return false;
		}
		pthread_mutex_lock(&p->mu);
		bool killed = p->kill != K_NONE;
		pthread_mutex_unlock(&p->mu);
		if (killed)
			return false;
	}
	if (k < 0) {
		violation(p, "frame over its size cap");
		return false;
	}
	chan_buf_compact(&p->in);
	return true;
}

/* ---- starting and reaping --------------------------------------------------- */

/* posix_spawn of the helper in mode ("--engine-child", "--zygote") with
 * cfd as its fd 3 (and, for an engine process, the progress page pfd as
 * fd 4 and the write end of its answer pipe ofd as fd 5): empty environment, 0-2 on /dev/null, every other
 * descriptor closed (all of the host's are close-on-exec), default signal
 * dispositions, its own process group (a terminal's ^C goes to the host).
 * 0, or a positive errno. */
static int spawn_helper(const char *engine, const char *mode, int cfd, int pfd, int ofd,
                        pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, cfd, 3);
	if (pfd >= 0)
		posix_spawn_file_actions_adddup2(&fa, pfd, 4);
	if (ofd >= 0)
		posix_spawn_file_actions_adddup2(&fa, ofd, 5);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&at);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	                                  POSIX_SPAWN_SETPGROUP);
	char ppid[24];
	snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
	char *argv[] = {(char *)engine, (char *)mode, "3", ppid, NULL};
	char *envp[] = {NULL};
	int rc = posix_spawn(pid, engine, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return rc;
}

/* ---- the zygote (child.c) ------------------------------------------------------
 * One per host process: the helper exec'd once, linked, single-threaded,
 * forking each engine process on request (CLONE_PARENT: the engine
 * process is this process's child). It is spawned by a thread of its own
 * that lives as long as the process: PR_SET_PDEATHSIG fires when the
 * thread that created a process ends, and the zygote's children inherit
 * that thread as their parent. Requests go one at a time under zmu; any
 * failure (no zygote, a zygote that died or answered it has more than one
 * thread, another helper path, a forked copy of the host) makes the caller
 * posix_spawn the helper itself, as before: on new descriptors when the
 * request had been sent (ZY_SENT). TXSCAN_ZYGOTE=0 turns it off. */

enum zstate { Z_NONE, Z_WANT, Z_UP, Z_OFF };

static pthread_mutex_t zmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t zcv;
static enum zstate zstate;
static bool zthread_up, zchecked;
static int zfd = -1;
static pid_t zpid, zhost;
static char zengine[PATH_MAX];

#define ZYGOTE_ANSWER_MS 2000

static void *zygote_owner(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "txs:zygote");
	pthread_mutex_lock(&zmu);
	for (;;) {
		while (zstate != Z_WANT)
			pthread_cond_wait(&zcv, &zmu);
		int sv[2] = {-1, -1}, cfd = -1;
		pid_t pid = 0;
		bool ok = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0 &&
		          (cfd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10)) >= 0 &&
		          spawn_helper(zengine, "--zygote", cfd, -1, -1, &pid) == 0;
		if (sv[1] >= 0)
			close(sv[1]);
		if (cfd >= 0)
			close(cfd);
		if (!ok && sv[0] >= 0)
			close(sv[0]);
		zfd = ok ? sv[0] : -1;
		zpid = ok ? pid : 0;
		zhost = getpid();
		zstate = ok ? Z_UP : Z_NONE;
		pthread_cond_broadcast(&zcv);
	}
	return NULL;
}

/* Asks the owner thread for a zygote (zmu held); false when it is off. */
static bool zygote_want_locked(const char *engine)
{
	if (!zchecked) {
		const char *env = getenv("TXSCAN_ZYGOTE");
		zchecked = true;
		if (env && !strcmp(env, "0"))
			zstate = Z_OFF;
	}
	if (zstate == Z_OFF)
		return false;
	if (zstate != Z_NONE)
		return true;
	if (!zthread_up) {
		pthread_t t;
		pthread_attr_t a;
		txs_cond_init(&zcv);
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		zthread_up = pthread_create(&t, &a, zygote_owner, NULL) == 0;
		pthread_attr_destroy(&a);
		if (!zthread_up) {
			zstate = Z_OFF;
			return false;
		}
	}
	snprintf(zengine, sizeof zengine, "%s", engine);
	zstate = Z_WANT;
	pthread_cond_broadcast(&zcv);
	return true;
}

/* Answers the zygote sent after the host stopped waiting (it is dead now:
 * no more can come). Each names an engine process forked for a request the
 * host gave up on, which holds that request's descriptors: it is the
 * host's child (CLONE_PARENT), killed and reaped here. One forked and not
 * yet answered for when the zygote was killed cannot be named: it holds
 * only descriptors the host closes (spawn_child), and ends at the end of
 * its channel (child.c), a zombie until the host exits. zmu held. */
static void zygote_late_locked(void)
{
	int32_t answer[2];
	while (recv(zfd, answer, sizeof answer, MSG_DONTWAIT) == (ssize_t)sizeof answer) {
		if (answer[0] <= 0)
			continue;
		kill((pid_t)answer[0], SIGKILL);
		while (waitpid((pid_t)answer[0], NULL, 0) < 0 && errno == EINTR) {
		}
	}
}

/* The zygote failed a request: it goes (the next request starts another),
 * or for good when it broke its promise of one thread. zmu held. */
static void zygote_drop_locked(bool for_good)
{
	if (zpid > 0 && zhost == getpid()) {
		kill(zpid, SIGKILL);
		while (waitpid(zpid, NULL, 0) < 0 && errno == EINTR) {
		}
		if (zfd >= 0)
			zygote_late_locked();
	}
	if (zfd >= 0)
		close(zfd);
	zfd = -1;
	zpid = 0;
	zstate = for_good ? Z_OFF : Z_NONE;
}

void txs_isolate_zygote_start(const char *engine_opt)
{
	char engine[PATH_MAX];
	if (txs_isolate_engine_path(engine_opt, engine, sizeof engine) != 0)
		return;
	pthread_mutex_lock(&zmu);
	zygote_want_locked(engine);
	pthread_mutex_unlock(&zmu);
}

pid_t txs_isolate_zygote_pid(void)
{
	pthread_mutex_lock(&zmu);
	pid_t pid = zstate == Z_UP && zhost == getpid() ? zpid : 0;
	pthread_mutex_unlock(&zmu);
	return pid;
}

/* zygote_fork's failures: the request never reached a zygote (the
 * descriptors are the caller's alone), or it was sent and not answered as
 * it should be (late, short, refused): the zygote, or an engine process it
 * forked, may hold them, and they go to no other process. */
enum { ZY_UNSENT = -1, ZY_SENT = -2 };

/* An engine process forked by the zygote on the channel cfd with the
 * progress page pfd and the answer pipe's write end ofd: 0 and *pid, or
 * ZY_UNSENT or ZY_SENT (the caller spawns the helper itself; after
 * ZY_SENT on new descriptors). */
static int zygote_fork(const char *engine, int cfd, int pfd, int ofd, pid_t *pid)
{
	int rc = ZY_UNSENT;
	pthread_mutex_lock(&zmu);
	if (zstate == Z_UP && zhost != getpid())
		goto out; /* a fork of the host holds its parent's zygote socket */
	if (!zygote_want_locked(engine))
		goto out;
	while (zstate == Z_WANT)
		pthread_cond_wait(&zcv, &zmu);
	if (zstate != Z_UP || strcmp(zengine, engine))
		goto out;
	char byte = 'F';
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(3 * sizeof(int))];
	} u;
	memset(&u, 0, sizeof u);
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
	                   .msg_controllen = sizeof u.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(3 * sizeof(int));
	int fds[3] = {cfd, pfd, ofd};
	memcpy(CMSG_DATA(c), fds, sizeof fds);
	int32_t answer[2] = {0, 0};
	struct pollfd pf = {.fd = zfd, .events = POLLIN};
	ssize_t n = sendmsg(zfd, &m, MSG_NOSIGNAL);
	if (n == 1)
		rc = ZY_SENT; /* from here on, the descriptors may be the zygote's too */
	int pr = n == 1 ? poll(&pf, 1, ZYGOTE_ANSWER_MS) : -1;
	n = pr == 1 ? recv(zfd, answer, sizeof answer, MSG_DONTWAIT) : -1;
	if (n != (ssize_t)sizeof answer) {
		zygote_drop_locked(false);
		goto out;
	}
	if (answer[0] <= 0) {
		/* more than one thread: never fork it again; or clone failed */
		zygote_drop_locked(answer[1] != 1);
		goto out;
	}
	*pid = (pid_t)answer[0];
	rc = 0;
out:
	pthread_mutex_unlock(&zmu);
	return rc;
}

/* A descriptor at 10 or above (never 3-5: dup2 onto itself keeps
 * CLOEXEC), close-on-exec; fd itself is closed. -1 with errno. */
static int fd_high(int fd)
{
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	int e = errno;
	close(fd);
	errno = e;
	return hi;
}

/* A zeroed progress page (channel.h), mapped here; its descriptor, or -1
 * with errno. */
static int progress_page(chan_progress **out)
{
	int fd = memfd_create("txs-progress", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	void *m = MAP_FAILED;
	if (fd < 10)
		fd = fd_high(fd);
	/* sealed at its size: a child that truncated it would have the host
	 * fault (SIGBUS) on its next read of the mapping */
	if (fd >= 0 && ftruncate(fd, CHAN_PROGRESS_BYTES) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
		m = mmap(NULL, CHAN_PROGRESS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	*out = m;
	return fd;
}

/* One engine process's channel: the host's ends (the socket, the pipe's
 * read end, the mapped progress page) and the child's (its socket, the
 * pipe's write end, the page's memfd: at 10 or above, close-on-exec). */
typedef struct chan_ends {
	int sock, rfd;
	chan_progress *page;
	int cfd, ofd, pfd;
} chan_ends;

static void ends_close_child(chan_ends *c)
{
	int *fds[3] = {&c->cfd, &c->ofd, &c->pfd};
	for (int i = 0; i < 3; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

static void ends_close(chan_ends *c)
{
	ends_close_child(c);
	if (c->sock >= 0)
		close(c->sock);
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->page)
		munmap(c->page, CHAN_PROGRESS_BYTES);
	c->sock = c->rfd = -1;
	c->page = NULL;
}

/* The channel: a socketpair carries frames to the child (and tells each
 * side of the other's end), a pipe carries every frame back; a pipe's
 * write and wake-up cost less than a socket's (bench/channel_pingpong:
 * a round trip of 13.7-16 us against 20-28). 0, or -errno. */
static int ends_new(chan_ends *c)
{
	int sv[2] = {-1, -1}, pp[2] = {-1, -1};
	*c = (chan_ends){.sock = -1, .rfd = -1, .cfd = -1, .ofd = -1, .pfd = -1};
	c->pfd = progress_page(&c->page);
	if (c->pfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
	    pipe2(pp, O_CLOEXEC) != 0) {
		int e = errno;
		c->sock = sv[0];
		c->cfd = sv[1];
		ends_close(c);
		return -e;
	}
	c->sock = sv[0];
	c->rfd = pp[0];
	c->cfd = fd_high(sv[1]);
	int e = errno;
	c->ofd = fd_high(pp[1]);
	if (c->ofd < 0)
		e = errno;
	if (c->cfd < 0 || c->ofd < 0) {
		ends_close(c);
		return -e;
	}
	return 0;
}

/* A child on a new channel: forked by the zygote, else spawned. *fd_out is
 * the socket, *rfd_out the pipe's read end, both non-blocking. */
static int spawn_child(txs_proc *p, int *fd_out, int *rfd_out, pid_t *pid_out,
                       chan_progress **page_out)
{
	chan_ends c;
	int rc = ends_new(&c);
	if (rc)
		return rc;
	pid_t pid = 0;
	int z = zygote_fork(p->engine, c.cfd, c.pfd, c.ofd, &pid);
	if (z == ZY_SENT) {
		/* the zygote, or an engine it forked and did not answer for in
		 * time, may hold these: a second engine on them shared its
		 * channel with that one (which read the code and answered for
		 * it). Closed here, they end that one (end of channel). */
		ends_close(&c);
		if ((rc = ends_new(&c)) != 0)
			return rc;
	}
	rc = z == 0 ? 0 : spawn_helper(p->engine, "--engine-child", c.cfd, c.pfd, c.ofd, &pid);
	ends_close_child(&c);
	if (rc != 0) {
		ends_close(&c);
		return -rc;
	}
	fcntl(c.sock, F_SETFL, fcntl(c.sock, F_GETFL) | O_NONBLOCK);
	fcntl(c.rfd, F_SETFL, fcntl(c.rfd, F_GETFL) | O_NONBLOCK);
	fcntl(c.rfd, F_SETPIPE_SZ, CHAN_PIPE_BYTES); /* as much as a socket buffers; best effort */
	*fd_out = c.sock;
	*rfd_out = c.rfd;
	*pid_out = pid;
	*page_out = c.page;
	return 0;
}

static bool answers_of(void *owner, int fd);
static void reader_off(txs_proc *p);

/* Starts a child and sends it the code (state DOWN -> STARTING). */
static int start_locked(txs_proc *p)
{
	int fd = -1, rfd = -1;
	pid_t pid = 0;
	chan_progress *page = NULL;
	/* unlocked: the zygote's first answer waits for it to be linked, and
	 * the monitor must not wait for that; in S_DOWN only this thread
	 * changes p's state, pid or channel */
	pthread_mutex_unlock(&p->mu);
	int rc = spawn_child(p, &fd, &rfd, &pid, &page);
	pthread_mutex_lock(&p->mu);
	if (rc) {
		free(p->last_err);
		if (asprintf(&p->last_err, "cannot start %s: %s", p->engine, strerror(-rc)) < 0)
			p->last_err = NULL;
		return rc;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/statm", (long)pid);
	p->fd = fd;
	p->rfd = rfd;
	p->pid = pid;
	p->page = page;
	/* scans sent again to a replacement: those that expired stay skipped */
	atomic_store_explicit(&page->skip_below, p->skip_below, memory_order_relaxed);
	p->run_id = 0;
	p->statm_fd = open(path, O_RDONLY | O_CLOEXEC);
	p->kill = K_NONE;
	p->guilty = 0;
	p->rss_base = 0;
	p->base_known = false;
	p->rss_at_ns = 0;
	p->state = S_STARTING;
	p->start_deadline_ns = txs_now_ns() +
	                       ((uint64_t)p->lim.init_timeout_ms + START_EXTRA_MS) * 1000000ull;
	p->out.off = p->out.len = 0;
	p->out_closed = false;
	p->in.off = p->in.len = 0;
	p->rd_gone = false;
	/* unlocked: the reader takes a slot's lock before mu (answers.c); in
	 * S_STARTING only this thread changes the channel */
	pthread_mutex_unlock(&p->mu);
	answers_slot *rd = answers_attach(rfd, answers_of, p);
	int err = errno;
	pthread_mutex_lock(&p->mu);
	p->reader = rd;
	if (!rd) { /* the reap says the start failed, and why */
		free(p->last_err);
		if (asprintf(&p->last_err, "cannot read the answers of engine process %ld: %s",
		             (long)p->pid, strerror(err)) < 0)
			p->last_err = NULL;
	}
	if (!p->reader || chan_code_encode(&p->out, CH_INIT, 0, p->code, &p->lim) != 0)
		kill_locked(p, K_START, 0);
	p->out_queued = p->out.len;
	p->out_written = 0;
	flush_locked(p);
	return 0;
}

static const char *reason_text(enum kill_reason k)
{
	switch (k) {
	case K_TIMEOUT: return "no answer by its deadline";
	case K_MEMORY: return "its memory passed the cap";
	case K_PROTOCOL: return "it broke the channel protocol";
	case K_START: return "it did not start";
	case K_RECYCLE: return "a thread of it was stuck in a native call";
	default: return "it was stopped";
	}
}

/* The generation of the child's engine now: its counters' (sent every
 * 50 ms) or its last answer's, whichever is later. A replacement's
 * generations follow it: with the counters' alone, a child that rebuilt
 * its engine and died before they said so had its replacement repeat the
 * generations its last engines had. mu held. */
static uint64_t child_gen_locked(txs_proc *p)
{
	return p->child.generation > p->gen_seen ? p->child.generation : p->gen_seen;
}

static void add_child_stats(txs_executor_stats *b, const txs_executor_stats *s)
{
	b->restarts_scheduled += s->restarts_scheduled;
	b->restarts_heap += s->restarts_heap;
	b->restarts_killed += s->restarts_killed;
	b->restarts_manual += s->restarts_manual;
	b->reloads += s->reloads;
	b->failed_starts += s->failed_starts;
	b->heap_readings += s->heap_readings;
	b->console_dropped += s->console_dropped;
	b->standby_swaps += s->standby_swaps;
	b->realm_restarts += s->realm_restarts;
	b->realm_prepared += s->realm_prepared;
	b->recycle_sum_ms += s->recycle_sum_ms;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		b->recycle_buckets[i] += s->recycle_buckets[i];
	b->lanes_abandoned += s->lanes_abandoned;
}

/* A failed start, the in_row-th in a row: quarantine_after of them
 * quarantine the proxy, for a backoff that doubles until a child serves. */
static void start_failed_locked(txs_proc *p, uint32_t in_row)
{
	INC(p->c.failed_starts);
	if (in_row < p->lim.quarantine_after)
		return;
	p->backoff_ns = p->backoff_ns ? p->backoff_ns * 2 : BACKOFF_MIN_NS;
	if (p->backoff_ns > BACKOFF_MAX_NS)
		p->backoff_ns = BACKOFF_MAX_NS;
	p->retry_at_ns = txs_now_ns() + p->backoff_ns;
	p->state = S_QUARANTINED;
}

static void failed_start_locked(txs_proc *p)
{
	start_failed_locked(p, ++p->consecutive_failures);
}

/* A child killed for its memory before it was ready: its module or
 * init(ctx) passed the cap. Said as thread isolation says a load past the
 * heap limit, naming the file. mu held. */
static void start_memory_locked(txs_proc *p)
{
	char *e = NULL;
	if (asprintf(&e, "%s: loading the module or init(ctx) passed the memory cap of its engine "
	             "process (heap_limit_mb %u + %u MB); it was killed",
	             p->code && p->code->filename ? p->code->filename : p->id, p->lim.heap_limit_mb,
	             TXS_PROC_ENGINE_MB + TXS_PROC_RSS_SLACK_MB) < 0)
		e = NULL;
	free(p->last_err);
	p->last_err = e;
}

/* True when the pending list holds nothing sent to the child. mu held. */
static bool nothing_sent_locked(txs_proc *p)
{
	for (pend *pd = p->head; pd; pd = pd->next)
		if (pd->sent)
			return false;
	return true;
}

static void answer_killed(txs_proc *p, pend *pd, enum kill_reason k)
{
	pthread_mutex_lock(&p->mu);
	txs_limits l = p->lim;
	uint64_t ran = p->kill_ran_ns, took = p->kill_took_ns;
	pthread_mutex_unlock(&p->mu);
	if (k == K_TIMEOUT && ran != UINT64_MAX)
		answer_status(p, pd, TXS_STATUS_TIMEOUT, "scan passed its deadline of %u ms (%.1f ms on "
		              "a CPU in %.1f ms); its engine process was killed (a native call that "
		              "cannot be interrupted)", l.timeout_ms, (double)ran / 1e6, (double)took / 1e6);
	else if (k == K_TIMEOUT)
		answer_status(p, pd, TXS_STATUS_TIMEOUT, "scan passed its deadline of %u ms (no answer "
		              "in %.1f ms); its engine process was killed", l.timeout_ms, (double)took / 1e6);
	else
		answer_status(p, pd, TXS_STATUS_MEMORY, "engine process passed its memory cap "
		              "(heap_limit_mb %u + %u MB); it was killed", l.heap_limit_mb,
		              TXS_PROC_ENGINE_MB + TXS_PROC_RSS_SLACK_MB);
}

/* What a death means for one scan that was in flight. held: it came
 * after a control the child had not answered, and the child reads no
 * frame after a control until the control is done (child.c): it never
 * ran there. */
static void settle_after_death(txs_proc *p, pend *pd, bool guilty, bool held, enum kill_reason k,
                               const char *how, pend **retry_tail, pend **retry_head)
{
	if (guilty) {
		txs_limits l = lim_now(p);
		txs_status st = k == K_TIMEOUT ? TXS_STATUS_TIMEOUT
		               : k == K_MEMORY ? TXS_STATUS_MEMORY
		                               : TXS_STATUS_ERROR;
		if (k == K_TIMEOUT)
			answer_status(p, pd, st, "scan passed its deadline of %u ms; its engine process "
			              "was killed (%s)", l.timeout_ms, how);
		else if (k == K_MEMORY)
			answer_status(p, pd, st, "engine process passed the memory cap (heap_limit_mb %u "
			              "+ %u MB); it was killed", l.heap_limit_mb,
			              TXS_PROC_ENGINE_MB + TXS_PROC_RSS_SLACK_MB);
		else
			answer_status(p, pd, st, "engine process died while running this scan: %s", how);
		return;
	}
	if (!pd->sent || held) {
		/* never reached a child's executor: waits for the next one, no
		 * try spent (a reload that takes down every process it goes to
		 * would otherwise spend the scans behind it) */
	} else if (pd->tries >= 1) {
		answer_status(p, pd, TXS_STATUS_ERROR, "engine process died twice while this scan was "
		              "queued (%s)", how);
		return;
	} else {
		pd->tries++;
	}
	pd->sent = false;
	pd->next = NULL;
	if (*retry_tail)
		(*retry_tail)->next = pd;
	else
		*retry_head = pd;
	*retry_tail = pd;
}

/* The scan a child that crashed was running: the one its progress page
 * names, when that is a scan of ours still unanswered (read before the
 * page is unmapped); 0 when it names none, and the first scan sent is
 * taken instead. Between the start of a scan and the crash, the child may
 * have finished scans whose answers it still held (a batch's answers go
 * out when the batch ends): the first scan sent is not always the one
 * that was running. The page is the child's word, so it can only pick
 * among this plugin's own scans. mu held. */
static uint64_t crashed_scan_locked(txs_proc *p)
{
	uint64_t id, start;
	uint32_t tid;
	if (!p->page || !chan_progress_get(p->page, &id, &start, &tid) || !id)
		return 0;
	pend *pd = sent_pend_locked(p, id);
	return pd && pd->type == CH_SCAN ? id : 0;
}

/* Commands whose frame the child's socket never took in whole (still in
 * out: the child was gone, the send failed) never reached it: they are
 * unsent again, neither blamed for its death nor spent by it (a scan
 * submitted after a crash, before the I/O thread saw it, was the first
 * sent and answered error for it). mu held. */
static void unreached_locked(txs_proc *p)
{
	for (pend *pd = p->head; pd; pd = pd->next)
		if (pd->sent && pd->end_at > p->out_written)
			pd->sent = false;
}

/* How long a child whose channel closed without the host's kill may take
 * to end by itself: a crash closes the descriptors last (after its memory
 * is torn down), and is a zombie microseconds later. */
#define CLOSED_GRACE_MS 100

/* True when pid ended by itself within CLOSED_GRACE_MS (*ws its status,
 * reaped); false when it lives on, as a child that closed or shut its end
 * of the channel does: reaped at once and killed by SIGKILL, it was
 * reported "killed by signal SIGKILL (9)", a crash, when the kill was the
 * host's. */
static bool ended_by_itself(pid_t pid, int *ws)
{
	for (int i = 0; i <= CLOSED_GRACE_MS; i++) {
		pid_t r = waitpid(pid, ws, WNOHANG);
		if (r == pid)
			return true;
		if (r < 0 && errno != EINTR)
			return true; /* not ours to wait for (ECHILD): nothing to kill either */
		if (i < CLOSED_GRACE_MS)
			usleep(1000);
	}
	return false;
}

/* The child is gone or must go: reap it, settle what it held (I/O thread,
 * mu held on entry and exit; dropped around waitpid and callbacks). */
static void reap_locked(txs_proc *p)
{
	pid_t pid = p->pid;
	enum kill_reason k = p->kill;
	bool was_up = p->state == S_UP;
	p->reaping = true; /* the monitor leaves it be: its end is decided here */
	pthread_mutex_unlock(&p->mu);
	reader_off(p); /* before its pipe is closed */
	int ws = 0;
	/* the host did not ask for this end: a child that crashed, or one
	 * that closed its channel and lives on, which the host kills */
	bool closed = k == K_NONE && !ended_by_itself(pid, &ws);
	if (k != K_NONE || closed) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
		}
	}
	pthread_mutex_lock(&p->mu);
	p->reaping = false;
	uint64_t guilty = p->guilty;
	if (closed) { /* its own act, not a crash: the host's kill for the protocol */
		k = K_PROTOCOL;
		free(p->last_err);
		p->last_err = strdup("it closed its channel and lived on");
	}
	unreached_locked(p);
	/* a child that was ready, served nothing and had nothing to serve:
	 * no scan to blame, so without this the host started one after
	 * another at full speed, each start a success (a kill for its first
	 * scan, which the monitor took off the list, is not one) */
	bool idle = was_up && !p->served && k != K_STOP && !guilty && nothing_sent_locked(p);
	if ((k == K_NONE || closed) && !guilty)
		guilty = crashed_scan_locked(p);
	close(p->fd);
	close(p->rfd);
	if (p->statm_fd >= 0)
		close(p->statm_fd);
	if (p->sched_fd >= 0)
		close(p->sched_fd);
	if (p->run_sched_fd >= 0)
		close(p->run_sched_fd);
	if (p->page)
		munmap(p->page, CHAN_PROGRESS_BYTES);
	p->page = NULL;
	p->fd = p->rfd = p->statm_fd = p->sched_fd = p->run_sched_fd = -1;
	p->lane_tid = p->run_tid = 0;
	p->lane_run_ns = p->lane_wait_ns = 0;
	p->pid = 0;
	p->state = S_DOWN;
	add_child_stats(&p->base, &p->child);
	p->gen_base += child_gen_locked(p);
	p->gen_seen = p->scans_in_gen = 0;
	memset(&p->child, 0, sizeof p->child);
	char how[320];
	if (k == K_STOP)
		snprintf(how, sizeof how, "the plugin was stopped");
	else if (k == K_PROTOCOL)
		snprintf(how, sizeof how, "killed by the host: it broke the channel protocol (%s)",
		         p->last_err ? p->last_err : "?");
	else if (k != K_NONE)
		snprintf(how, sizeof how, "killed by the host: %s", reason_text(k));
	else if (WIFSIGNALED(ws))
		snprintf(how, sizeof how, "killed by signal SIG%s (%d)", sigabbrev_np(WTERMSIG(ws))
		         ? sigabbrev_np(WTERMSIG(ws)) : "?", WTERMSIG(ws));
	else
		snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(ws));
	if (!was_up && p->init_failed) { /* the plugin's own error, as thread isolation says it */
		p->init_failed = false;
		failed_start_locked(p);
	} else if (!was_up && k == K_MEMORY) { /* the module or init(ctx) kept too much */
		start_memory_locked(p);
		failed_start_locked(p);
	} else if (!was_up || idle) {
		char *e = NULL;
		if (asprintf(&e, "plugin %s: engine process %s: %s%s%s", p->id,
		             idle ? "died before it served anything" : "did not start", how,
		             p->last_err && !idle ? ": " : "", p->last_err && !idle ? p->last_err : "") < 0)
			e = NULL;
		free(p->last_err);
		p->last_err = e;
		if (idle)
			start_failed_locked(p, ++p->idle_deaths);
		else
			failed_start_locked(p);
	} else if (k == K_NONE) {
		INC(p->c.crashes);
	} else if (k == K_TIMEOUT || k == K_RECYCLE) {
		INC(p->c.kills_timeout);
	} else if (k == K_MEMORY) {
		INC(p->c.kills_memory);
	} else if (k == K_PROTOCOL) {
		INC(p->c.kills_protocol);
	}
	/* settle: take the list, answer outside the lock, put retries back */
	pend *list = p->head, *rh = NULL, *rt = NULL;
	p->head = p->tail = NULL;
	p->head_id = 0;
	bool stopping = p->stopping, quarantined = p->state == S_QUARANTINED;
	pthread_mutex_unlock(&p->mu);
	bool first_sent = true, held = false;
	while (list) {
		pend *pd = list;
		list = list->next;
		if (pd->type != CH_SCAN) {
			held = held || pd->sent;
			/* a restart is what the replacement is; a reload or probe
			 * goes to it, once, like an innocent scan */
			bool done = stopping || quarantined || pd->type == CH_RESTART || pd->tries;
			int rc = stopping ? TXS_ESTOPPED : quarantined ? TXS_EUNAVAILABLE
			       : pd->type == CH_RESTART ? 0 : TXS_EPLUGIN;
			first_sent = first_sent && !pd->sent;
			if (done) {
				pthread_mutex_lock(&p->mu);
				control_done_locked(p, pd, rc, strdup(rc ? how : ""));
				pthread_mutex_unlock(&p->mu);
				continue;
			}
			pd->tries++;
			pd->sent = false;
			pd->next = NULL;
			if (rt)
				rt->next = pd;
			else
				rh = pd;
			rt = pd;
			continue;
		}
		if (stopping) {
			answer_status(p, pd, TXS_STATUS_STOPPED, "plugin %s was stopped", p->id);
			continue;
		}
		if (quarantined) {
			answer_status(p, pd, TXS_STATUS_UNAVAILABLE, "plugin %s has no running engine: %s",
			              p->id, p->last_err ? p->last_err : how);
			continue;
		}
		bool is_guilty = was_up && pd->sent &&
		                 (guilty ? pd->id == guilty : (k == K_NONE || k == K_PROTOCOL) && first_sent);
		if (pd->sent)
			first_sent = false;
		settle_after_death(p, pd, is_guilty, held, k, how, &rt, &rh);
	}
	pthread_mutex_lock(&p->mu);
	if (rt) { /* retries go first, in their order, ahead of what came since */
		rt->next = p->head;
		if (!p->head)
			p->tail = rt;
		p->head = rh;
	}
}

/* Answers every pending scan with st (quarantine, stop). mu held. */
static void drain_locked(txs_proc *p, txs_status st, const char *why)
{
	pend *list = p->head;
	p->head = p->tail = NULL;
	pthread_mutex_unlock(&p->mu);
	while (list) {
		pend *pd = list;
		list = list->next;
		if (pd->type == CH_SCAN) {
			answer_status(p, pd, st, "plugin %s: %s", p->id, why);
		} else {
			pthread_mutex_lock(&p->mu);
			control_done_locked(p, pd, st == TXS_STATUS_STOPPED ? TXS_ESTOPPED : TXS_EUNAVAILABLE,
			                    strdup(why));
			pthread_mutex_unlock(&p->mu);
		}
	}
	pthread_mutex_lock(&p->mu);
}

/* ---- the I/O thread ------------------------------------------------------ */

/* Reads what the child wrote, one read (READ_CHUNK, the pipe's whole
 * buffer) per round: a child that keeps its pipe full would otherwise
 * hold this thread in here for as long as it writes, away from a stop
 * (txs_proc_free waited for ever), the socket's end and the frames
 * waiting to go out. False at end of channel or on a violation. */
static bool read_child(txs_proc *p, int fd)
{
	if (chan_buf_reserve(&p->in, READ_CHUNK)) {
		violation(p, "out of memory");
		return false;
	}
	/* from before the read until its frames are handled, what left the
	 * pipe is still unread for the monitor (forgiven_locked) */
	atomic_store(&p->handling, true);
	ssize_t n;
	while ((n = read(fd, p->in.p + p->in.len, READ_CHUNK)) < 0 && errno == EINTR) {
	}
	bool ok = n < 0 && errno == EAGAIN;
	if (n > 0) {
		p->in.len += (size_t)n;
		ok = frames(p);
	}
	atomic_store(&p->handling, false);
	return ok;
}

/* The answer reader's call (answers.h) while the child's pipe is attached:
 * what the child wrote since. At the pipe's end, or a violation, the I/O
 * thread is told to reap. */
static bool answers_of(void *owner, int fd)
{
	txs_proc *p = owner;
	if (read_child(p, fd)) {
		/* frames queued behind a backlog (SEND_AHEAD) go out as answers
		 * come in; what the socket does not take, the I/O thread writes
		 * when it can (POLLOUT) */
		pthread_mutex_lock(&p->mu);
		if (p->out.off < p->out.len && !p->out_closed) {
			flush_locked(p);
			if (p->out.off < p->out.len || p->out_closed)
				poke_io(p);
		}
		pthread_mutex_unlock(&p->mu);
		return true;
	}
	pthread_mutex_lock(&p->mu);
	p->rd_gone = true;
	pthread_mutex_unlock(&p->mu);
	poke_io(p);
	return false;
}

/* Takes the child's pipe back from the reader (I/O thread, mu not held):
 * from now on only this thread reads it. */
static void reader_off(txs_proc *p)
{
	answers_detach(p->reader);
	p->reader = NULL;
}

/* One poll round with the child up or starting: the reader reads the
 * child's answers, this thread writes what waits to go out and watches the
 * socket for the child's end. mu held. */
static void io_round_locked(txs_proc *p)
{
	bool closed = p->out_closed; /* a send failed for good: reap this round */
	struct pollfd pf[2] = {{.fd = p->evfd, .events = POLLIN},
	                       {.fd = p->fd, .events = 0}}; /* POLLHUP, POLLERR always */
	if (p->out.off < p->out.len && !closed)
		pf[1].events |= POLLOUT;
	bool gone = closed || p->rd_gone;
	pthread_mutex_unlock(&p->mu);
	int n = gone ? 0 : poll(pf, 2, -1);
	if (n > 0 && (pf[0].revents & POLLIN)) {
		uint64_t v;
		if (read(p->evfd, &v, sizeof v) < 0) {
			/* EAGAIN: another round drained it */
		}
	}
	bool hup = n > 0 && (pf[1].revents & (POLLHUP | POLLERR));
	pthread_mutex_lock(&p->mu);
	bool seen = p->rd_gone; /* the reader read to the end */
	gone = gone || hup || seen;
	if (!gone && p->out.off < p->out.len) /* POLLOUT, or scans queued behind a backlog */
		flush_locked(p);
	if (gone || p->stopping) {
		if (p->stopping)
			kill_locked(p, K_STOP, 0);
		/* from here the reap decides this child's end: the monitor must
		 * not time a scan while the reader finishes a callback (a scan
		 * sent meanwhile went to a closed socket: the reap sends it again) */
		p->reaping = true;
		pthread_mutex_unlock(&p->mu);
		reader_off(p);
		if (gone && !seen)
			read_child(p, p->rfd); /* the child's end closed: what it wrote, then reap */
		pthread_mutex_lock(&p->mu);
		reap_locked(p);
	}
}

static void *io_main(void *arg)
{
	txs_proc *p = arg;
	char name[16];
	snprintf(name, sizeof name, "txs-io:%.8s", p->id);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		if (p->state == S_QUARANTINED) {
			if (!p->started)
				break; /* the first start failed: new() reports it */
			drain_locked(p, TXS_STATUS_UNAVAILABLE, p->last_err ? p->last_err : "quarantined");
			if (txs_now_ns() < p->retry_at_ns) {
				struct timespec ts = txs_timespec(p->retry_at_ns);
				pthread_cond_timedwait(&p->cv, &p->mu, &ts);
				continue;
			}
			p->state = S_DOWN;
		}
		if (p->state == S_DOWN) {
			if (start_locked(p) != 0) {
				failed_start_locked(p);
				continue;
			}
			pthread_mutex_unlock(&p->mu);
			monitor_poke();
			pthread_mutex_lock(&p->mu);
		}
		io_round_locked(p);
	}
	if (p->state == S_UP || p->state == S_STARTING) {
		kill_locked(p, K_STOP, 0);
		reap_locked(p);
	}
	drain_locked(p, TXS_STATUS_STOPPED, "stopped");
	if (!p->started) {
		p->started = true;
		p->start_rc = TXS_EPLUGIN;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- public (internal) API -------------------------------------------------- */

static void proc_destroy(txs_proc *p)
{
	code_free(p->code);
	chan_buf_free(&p->out);
	chan_buf_free(&p->in);
	free(p->last_err);
	if (p->evfd >= 0)
		close(p->evfd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

int txs_proc_start(txs_proc **out, const txs_plugin_code *code, const txs_limits *limits,
                   txs_console_fn console, void *userdata, const char *engine)
{
	*out = NULL;
	if (!code || !code->id || !code->source)
		return txs_fail(TXS_EINVAL, "txs_proc_new: NULL code");
	txs_proc *p = calloc(1, sizeof *p);
	if (!p)
		return txs_fail(TXS_ENOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	txs_cond_init(&p->cv);
	p->fd = p->rfd = p->statm_fd = p->evfd = p->sched_fd = p->run_sched_fd = -1;
	snprintf(p->id, sizeof p->id, "%s", code->id);
	p->console = console;
	p->console_ud = userdata;
	if (limits)
		p->lim = *limits;
	else
		txs_limits_init(&p->lim);
	p->quarantine_after = p->lim.quarantine_after ? p->lim.quarantine_after : 1;
	/* a failed first start is not retried: txs_proc_wait_started reports it */
	p->lim.quarantine_after = 1;
	p->code = code_copy(code);
	p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = txs_isolate_engine_path(engine, p->engine, sizeof p->engine);
	if (!rc && (!p->code || p->evfd < 0))
		rc = txs_fail(TXS_ENOMEM, "out of memory");
	if (rc)
		goto fail;
	if (monitor_add(p) != 0 || pthread_create(&p->io, NULL, io_main, p) != 0) {
		monitor_remove(p);
		rc = txs_fail(TXS_ENOMEM, "cannot start the threads of plugin %s", code->id);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	proc_destroy(p);
	return rc;
}

int txs_proc_wait_started(txs_proc *p)
{
	pthread_mutex_lock(&p->mu);
	while (!p->started && p->state != S_QUARANTINED)
		pthread_cond_wait(&p->cv, &p->mu);
	bool ok = p->started && p->start_rc == 0;
	if (ok)
		p->lim.quarantine_after = p->quarantine_after;
	pthread_mutex_unlock(&p->mu);
	if (ok)
		return 0;
	return txs_fail_msg(TXS_EPLUGIN, p->last_err ? p->last_err : "engine process did not start");
}

int txs_proc_new(txs_proc **out, const txs_plugin_code *code, const txs_limits *limits,
                 txs_console_fn console, void *userdata, const char *engine)
{
	int rc = txs_proc_start(out, code, limits, console, userdata, engine);
	if (!rc && (rc = txs_proc_wait_started(*out)) != 0) {
		char *msg = strdup(txs_last_error());
		txs_proc_free(*out);
		*out = NULL;
		txs_fail_msg(rc, msg);
		free(msg);
	}
	return rc;
}

int txs_proc_submit(txs_proc *p, const char *tx, size_t len, txs_scan_fn cb, void *ud)
{
	return txs_proc_submit_quiet(p, tx, len, cb, ud, NULL);
}

void txs_proc_flush(txs_proc *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->state == S_UP && p->out.len != p->out.off) {
		flush_locked(p);
		if (p->out.len != p->out.off)
			poke_io(p);
	}
	pthread_mutex_unlock(&p->mu);
}

int txs_proc_submit_quiet(txs_proc *p, const char *tx, size_t len, txs_scan_fn cb, void *ud,
                          bool *flush_due)
{
	if (!p || !tx || !cb)
		return txs_fail(TXS_EINVAL, "txs_proc_submit: NULL argument");
	pthread_mutex_lock(&p->mu);
	int rc = 0;
	if (len > p->lim.max_input_bytes)
		rc = txs_fail(TXS_ETOOBIG, "transaction is %zu bytes, the cap is %zu", len,
		              p->lim.max_input_bytes);
	else if (p->stopping)
		rc = txs_fail(TXS_ESTOPPED, "plugin %s is stopping", p->id);
	else if (p->state == S_QUARANTINED)
		rc = txs_fail(TXS_EUNAVAILABLE, "plugin %s has no running engine: %s", p->id,
		              p->last_err ? p->last_err : "quarantined");
	else if (GET(p->c.pending) >= p->lim.queue_capacity)
		rc = txs_fail(TXS_EOVERLOADED, "plugin %s: queue full (%u)", p->id,
		              p->lim.queue_capacity);
	bool trial = false;
	if (!rc)
		rc = breaker_gate_locked(p, &trial);
	pend *pd = rc ? NULL : pend_new(p, CH_SCAN, tx, len);
	if (pd)
		pd->trial = trial;
	else if (trial)
		p->br_trial_out = false;
	if (!rc && !pd)
		rc = txs_fail(TXS_ENOMEM, "out of memory");
	if (rc) {
		if (rc == TXS_EOVERLOADED)
			INC(p->c.overloaded);
		if (rc == TXS_EUNAVAILABLE)
			INC(p->c.unavailable);
		pthread_mutex_unlock(&p->mu);
		return rc;
	}
	pd->cb = cb;
	pd->ud = ud;
	bool first = !p->head;
	append_locked(p, pd);
	uint32_t ahead = atomic_fetch_add_explicit(&p->c.pending, 1, memory_order_relaxed);
	if (p->state == S_UP) {
		send_locked(p, pd, txs_now_ns(), ahead >= SEND_AHEAD || flush_due);
		if (flush_due && ahead < SEND_AHEAD)
			*flush_due = true; /* past SEND_AHEAD the I/O thread writes */
	}
	pthread_mutex_unlock(&p->mu);
	if (first)
		monitor_poke();
	return 0;
}

/* Sends a control command and waits for its answer. */
static int control(txs_proc *p, uint16_t type, const txs_plugin_code *code,
                   const txs_limits *lim)
{
	chan_buf b = {0};
	if (code && chan_code_encode(&b, type, 0, code, lim) != 0)
		return txs_fail(TXS_ENOMEM, "out of memory");
	pthread_mutex_lock(&p->mu);
	pend *pd = pend_new(p, type, code ? b.p + CHAN_HEADER : NULL, code ? b.len - CHAN_HEADER : 0);
	chan_buf_free(&b);
	if (!pd || p->stopping || p->state == S_QUARANTINED) {
		pthread_mutex_unlock(&p->mu);
		pend_free(pd);
		return !pd ? txs_fail(TXS_ENOMEM, "out of memory")
		       : p->stopping ? txs_fail(TXS_ESTOPPED, "plugin %s is stopping", p->id)
		                     : txs_fail(TXS_EUNAVAILABLE, "plugin %s is quarantined", p->id);
	}
	bool first = !p->head;
	append_locked(p, pd);
	if (p->state == S_UP)
		send_locked(p, pd, txs_now_ns(), false);
	pthread_mutex_unlock(&p->mu);
	if (first)
		monitor_poke();
	pthread_mutex_lock(&p->mu);
	while (!pd->done)
		pthread_cond_wait(&p->cv, &p->mu);
	int rc = pd->rc;
	if (rc == 0 && type == CH_RELOAD) {
		txs_plugin_code *c = code_copy(code);
		if (c) {
			code_free(p->code);
			p->code = c;
		}
		if (lim) {
			uint32_t qc = p->lim.queue_capacity;
			size_t mi = p->lim.max_input_bytes;
			p->lim = *lim;
			p->lim.queue_capacity = qc;
			p->lim.max_input_bytes = mi;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (rc)
		txs_fail_msg(rc, pd->text);
	else if (type == CH_PROBE)
		txs_fail_msg(0, pd->text);
	pend_free(pd);
	return rc;
}

int txs_proc_restart(txs_proc *p)
{
	return control(p, CH_RESTART, NULL, NULL);
}

int txs_proc_reload(txs_proc *p, const txs_plugin_code *code, const txs_limits *limits)
{
	if (!code || !code->id || !code->source)
		return txs_fail(TXS_EINVAL, "txs_proc_reload: NULL code");
	return control(p, CH_RELOAD, code, limits);
}

int txs_proc_probe(txs_proc *p, char **report)
{
	int rc = control(p, CH_PROBE, NULL, NULL);
	*report = strdup(txs_last_error());
	return rc;
}

void txs_proc_stats_get(const txs_proc *cp, txs_executor_stats *s)
{
	txs_proc *p = (txs_proc *)cp;
	pthread_mutex_lock(&p->mu);
	txs_executor_stats ch = p->child;
	txs_executor_stats sum = p->base;
	uint64_t gen = p->gen_base + child_gen_locked(p);
	bool up = p->state == S_UP, quarantined = p->state == S_QUARANTINED;
	/* a replacement being started is not an outage (readiness does not flap) */
	bool replacing = p->started && (p->state == S_DOWN || p->state == S_STARTING);
	uint32_t fails = p->consecutive_failures, br_state = p->br_state;
	size_t rss = procstat_statm_rss(p->statm_fd); /* under mu: the reaper closes it */
	pthread_mutex_unlock(&p->mu);
	add_child_stats(&sum, &ch);
	*s = sum;
	s->scans = GET(p->c.scans);
	s->ok = GET(p->c.ok);
	s->errors = GET(p->c.errors);
	s->timeouts = GET(p->c.timeouts);
	s->memory_stops = GET(p->c.memory_stops);
	s->overloaded = GET(p->c.overloaded);
	s->unavailable = GET(p->c.unavailable);
	s->process_crashes = GET(p->c.crashes);
	s->process_kills = GET(p->c.kills_timeout) + GET(p->c.kills_memory) + GET(p->c.kills_protocol);
	s->process_starts = GET(p->c.starts);
	s->process_rss_bytes = rss;
	s->restarts_killed += s->process_crashes + s->process_kills;
	s->failed_starts += GET(p->c.failed_starts);
	s->generation = gen;
	s->heap_bytes = ch.heap_bytes;
	s->queue_depth = GET(p->c.pending);
	s->consecutive_failures = fails + ch.consecutive_failures;
	s->quarantined = quarantined || ch.quarantined;
	s->running = (up && ch.running) || replacing;
	s->busy = GET(p->c.pending) > 0;
	s->standby_ready = up && ch.standby_ready;
	s->lanes_stuck = ch.lanes_stuck;
	s->breaker_state = br_state != TXS_BREAKER_CLOSED ? br_state : ch.breaker_state;
	/* the host's breaker only: the child's opens at the same count (on_event) */
	s->breaker_opens = GET(p->c.breaker_opens);
	s->skipped = GET(p->c.skipped); /* the child's executor skips part of them */
	s->latency_sum_ms = (double)GET(p->c.latency_sum_ns) / 1e6;
	for (int i = 0; i < TXS_LATENCY_BUCKETS; i++)
		s->latency_buckets[i] = GET(p->c.latency[i]);
}

void txs_proc_on_event(txs_proc *p, txs_event_fn fn, void *userdata)
{
	p->event = fn;
	p->event_ud = userdata;
}

void txs_proc_skip_unwanted(txs_proc *p, bool (*wanted)(void *userdata))
{
	pthread_mutex_lock(&p->mu);
	p->wanted = wanted;
	pthread_mutex_unlock(&p->mu);
}

uint32_t txs_proc_load(const txs_proc *p)
{
	return GET(((txs_proc *)p)->c.pending);
}

pid_t txs_proc_pid(const txs_proc *cp)
{
	txs_proc *p = (txs_proc *)cp;
	pthread_mutex_lock(&p->mu);
	pid_t pid = p->state == S_UP ? p->pid : 0;
	pthread_mutex_unlock(&p->mu);
	return pid;
}

void txs_proc_free(txs_proc *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	poke_io(p);
	pthread_join(p->io, NULL);
	monitor_remove(p);
	proc_destroy(p);
}

int txs_isolation_parse(const char *name, txs_isolation *out)
{
	if (name && !strcmp(name, "thread"))
		*out = TXS_ISOLATION_THREAD;
	else if (name && !strcmp(name, "process"))
		*out = TXS_ISOLATION_PROCESS;
	else
		return txs_fail(TXS_EINVAL, "isolation must be \"thread\" or \"process\", not \"%s\"",
		                name ? name : "(null)");
	return 0;
}

#ifdef TXS_FUZZ
/* fuzz/fuzz_channel.c: the bytes a (hostile) child could write, fed to the
 * parent's frame handling with a proxy that has scans and a control
 * command in flight and no child behind it. Checks the invariants the
 * host relies on: each scan is answered at most once, with a known status,
 * valid JSON on ok; processing stops at the first violation. */
static void fuzz_cb(txs_scan_result *r, void *ud)
{
	int *answered = ud;
	if ((unsigned)r->status > TXS_STATUS_STOPPED || (r->status == TXS_STATUS_OK && !r->json))
		abort();
	(*answered)++;
	txs_scan_result_clear(r);
}

static void fuzz_console(const char *id, const char *level, const char *msg, size_t len, void *ud)
{
	(void)id;
	(void)ud;
	if (strlen(level) >= 16 || strlen(msg) != len)
		abort();
}

int txs_proc_fuzz_feed(const unsigned char *data, size_t n)
{
	txs_proc *p = calloc(1, sizeof *p);
	int answered = 0;
	pthread_mutex_init(&p->mu, NULL);
	txs_cond_init(&p->cv);
	txs_limits_init(&p->lim);
	p->lim.max_result_bytes = 4096;
	p->fd = p->rfd = p->statm_fd = p->evfd = p->sched_fd = p->run_sched_fd = -1;
	p->pid = -1;
	p->state = S_UP;
	p->console = fuzz_console;
	snprintf(p->id, sizeof p->id, "fuzz");
	pend *ctl = NULL;
	for (int i = 0; i < 4; i++) {
		pend *pd = pend_new(p, i == 2 ? CH_RESTART : CH_SCAN, "{}", 2);
		if (i == 2)
			ctl = pd;
		pd->cb = fuzz_cb;
		pd->ud = &answered;
		pd->sent = true;
		append_locked(p, pd);
		if (pd->type == CH_SCAN)
			atomic_fetch_add(&p->c.pending, 1);
	}
	p->skip_below = 2; /* the first scan may be skipped (CH_SKIPPED), no other */
	chan_buf_put(&p->in, data, n);
	frames(p);
	if (answered > 3)
		abort();
	if (ctl->done) /* popped and answered: the waiter's to free */
		pend_free(ctl);
	while (p->head) {
		pend *pd = p->head;
		p->head = pd->next;
		pend_free(pd);
	}
	chan_buf_free(&p->in);
	chan_buf_free(&p->out);
	free(p->last_err);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	return 0;
}
#endif
