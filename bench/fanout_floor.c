/*
 * fanout_floor.c - the floor under a fan-out to K engine processes on this
 * machine, with no txscan code: what a fan-out to K threads costs, and what
 * the same fan-out to K processes costs with the two ways a host can read
 * their answers. Each worker spins WORK_US per request (the small plugin's
 * scan), so the only difference between the modes is the wake-ups, the
 * switches of address space and the system calls.
 *
 *   fanout_floor [K] [WORK_US] [N]     (defaults 8, 25, 4000)
 *
 * threads     K threads asleep on one futex word, woken by one call; each
 *             counts down, the last wakes the caller (txscan's thread mode)
 * per-pipe    K processes; requests over a socketpair each, answers over a
 *             pipe each, read by one thread per pipe (txscan before the
 *             answer reader)
 * one-reader  the same processes, every pipe read by one thread in epoll
 *             (src/isolate/answers.c)
 *
 * Prints one JSON line per mode (p50/p90/p99 in us), then a summary: the
 * process modes' p50 against the threads' p50, as ratios, and what one
 * reader adds to a fan-out in microseconds (which barely moves with
 * WORK_US: the ratio does, the difference is the floor).
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXK 64
#define MSG 512

static int K = 8, WORK_US = 25, N = 4000;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void futex_wait(atomic_uint *w, unsigned v)
{
	while (atomic_load(w) == v)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *w, int n)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static void work(void)
{
	uint64_t end = now_ns() + (uint64_t)WORK_US * 1000u;
	while (now_ns() < end) {
	}
}

/* the caller's countdown: the last answer wakes it */
static atomic_int left;
static atomic_uint done;

static void one_answered(void)
{
	if (atomic_fetch_sub(&left, 1) == 1) {
		atomic_fetch_add(&done, 1);
		futex_wake(&done, 1);
	}
}

static atomic_uint bell;

static void *thread_worker(void *arg)
{
	(void)arg;
	unsigned seq = 0;
	for (;;) {
		futex_wait(&bell, seq);
		seq = atomic_load(&bell);
		work();
		one_answered();
	}
	return NULL;
}

static void child(int in, int out)
{
	char buf[MSG];
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n <= 0)
			_exit(0);
		work();
		if (write(out, buf, (size_t)n) != n)
			_exit(1);
	}
}

static void *pipe_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		poll(&p, 1, -1);
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			return NULL;
		for (ssize_t i = 0; i < n / MSG; i++)
			one_answered();
	}
}

static int ep;

static void *epoll_reader(void *arg)
{
	(void)arg;
	char buf[4096];
	struct epoll_event ev[MAXK];
	for (;;) {
		int n = epoll_wait(ep, ev, MAXK, -1);
		for (int i = 0; i < n; i++) {
			ssize_t m = read(ev[i].data.fd, buf, sizeof buf);
			if (m <= 0)
				return NULL;
			for (ssize_t j = 0; j < m / MSG; j++)
				one_answered();
		}
	}
}

static double run(const char *mode)
{
	int sock[MAXK], pid[MAXK];
	char msg[MSG];
	memset(msg, 1, sizeof msg);
	bool procs = strcmp(mode, "threads") != 0;
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (!procs) {
		for (int i = 0; i < K; i++)
			pthread_create(&t, &a, thread_worker, NULL);
	} else {
		ep = epoll_create1(0);
		for (int i = 0; i < K; i++) {
			int sv[2], pp[2];
			if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(pp))
				exit(1);
			if ((pid[i] = fork()) == 0) {
				close(sv[0]);
				close(pp[0]);
				child(sv[1], pp[1]);
			}
			close(sv[1]);
			close(pp[1]);
			sock[i] = sv[0];
			if (!strcmp(mode, "per-pipe")) {
				pthread_create(&t, &a, pipe_reader, (void *)(intptr_t)pp[0]);
			} else {
				struct epoll_event e = {.events = EPOLLIN, .data.fd = pp[0]};
				epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &e);
			}
		}
		if (!strcmp(mode, "one-reader"))
			pthread_create(&t, &a, epoll_reader, NULL);
	}
	usleep(20000);
	uint64_t *lat = calloc((size_t)N, sizeof *lat);
	int warm = N / 4;
	for (int r = 0; r < N + warm; r++) {
		uint64_t t0 = now_ns();
		atomic_store(&left, K);
		unsigned d = atomic_load(&done);
		if (procs) {
			for (int i = 0; i < K; i++)
				if (send(sock[i], msg, MSG, MSG_NOSIGNAL) != MSG)
					exit(2);
		} else {
			atomic_fetch_add(&bell, 1);
			futex_wake(&bell, K);
		}
		futex_wait(&done, d);
		if (r >= warm)
			lat[r - warm] = now_ns() - t0;
	}
	qsort(lat, (size_t)N, sizeof *lat, cmp);
	double p50 = (double)lat[N / 2] / 1e3;
	printf("{\"bench\":\"fanout_floor\",\"mode\":\"%s\",\"workers\":%d,\"work_us\":%d,\"n\":%d,"
	       "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f}\n",
	       mode, K, WORK_US, N, p50, (double)lat[N * 9 / 10] / 1e3, (double)lat[N * 99 / 100] / 1e3);
	fflush(stdout);
	free(lat);
	for (int i = 0; procs && i < K; i++) {
		kill(pid[i], SIGKILL);
		waitpid(pid[i], NULL, 0);
	}
	return p50;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		puts("usage: fanout_floor [K] [WORK_US] [N]   (defaults 8, 25, 4000)");
		return 0;
	}
	if (argc > 1)
		K = atoi(argv[1]);
	if (argc > 2)
		WORK_US = atoi(argv[2]);
	if (argc > 3)
		N = atoi(argv[3]);
	if (K < 1 || K > MAXK || WORK_US < 0 || N < 100) {
		fprintf(stderr, "fanout_floor: K must be 1-%d, WORK_US >= 0, N >= 100\n", MAXK);
		return 64;
	}
	/* each mode in its own process: the workers of one never compete with
	 * the next's (and the children end with their sockets) */
	const char *modes[] = {"threads", "per-pipe", "one-reader"};
	double p50[3];
	for (int m = 0; m < 3; m++) {
		int fd[2];
		if (pipe(fd))
			return 1;
		pid_t p = fork();
		if (p == 0) {
			close(fd[0]);
			double v = run(modes[m]);
			if (write(fd[1], &v, sizeof v) != sizeof v)
				_exit(1);
			_exit(0);
		}
		close(fd[1]);
		if (read(fd[0], &p50[m], sizeof p50[m]) != sizeof p50[m])
			return 1;
		close(fd[0]);
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
	}
	printf("{\"bench\":\"fanout_floor\",\"mode\":\"summary\",\"workers\":%d,\"work_us\":%d,"
	       "\"threads_p50_us\":%.1f,\"per_pipe_p50_us\":%.1f,\"one_reader_p50_us\":%.1f,"
	       "\"per_pipe_vs_threads\":%.2f,\"one_reader_vs_threads\":%.2f,\"one_reader_extra_us\":%.1f}\n",
	       K, WORK_US, p50[0], p50[1], p50[2], p50[1] / p50[0], p50[2] / p50[0], p50[2] - p50[0]);
	return 0;
}
