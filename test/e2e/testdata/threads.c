/*
 * threads: one process, 8 pthreads passing work between them.
 *
 *   prod0, prod1  produce numbered items into a bounded queue (mutex + two
 *                 condvars), waiting while it is full
 *   cons0, cons1  take items, waiting while it is empty, and account for
 *                 each: per-producer count and sum, and the order of each
 *                 producer's items (a consumer must see them increasing)
 *   busy0, busy1  spin in a register-heavy loop (an LCG chain), publishing
 *                 the step count now and then
 *   ping, pong    hand a token back and forth through one condvar
 *
 * The main thread waits in nanosleep for SIGTERM. Every thread names
 * itself, and records its clear_child_tid (PR_GET_TID_ADDRESS) and
 * robust list (get_robust_list) at start.
 *
 * On SIGTERM main samples every thread's progress counter, waits, and
 * checks that each one advanced (every thread kept running after restore);
 * then stops them all, joins them (pthread_join waits on clear_child_tid,
 * so a lost one hangs: a watchdog alarm turns that into a failure), and
 * checks that no item was lost or duplicated, that each busy chain
 * recomputes to the same value, that the token count is consistent, and
 * that every thread kept its name, tid address and robust list.
 */
#include "common.h"
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define NTHR 8
#define QCAP 16

enum { PROD0, PROD1, CONS0, CONS1, BUSY0, BUSY1, PING, PONG };
static const char *names[NTHR] = {"prod0", "prod1", "cons0", "cons1", "busy0", "busy1", "ping", "pong"};

struct thr {
	pthread_t pt;
	pid_t tid;
	volatile uint64_t progress; /* bumped as the thread works */
	uint64_t tidaddr, robust_head, robust_len; /* at start */
	uint64_t end_tidaddr, end_robust_head, end_robust_len; /* when stopping */
	char err[200];
	/* consumer accounting */
	uint64_t got[2], sum[2], last[2];
	/* busy chain */
	uint64_t busy_steps, busy_val;
};

static struct thr thr[NTHR];
static volatile int stop;

static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnotfull = PTHREAD_COND_INITIALIZER, qnotempty = PTHREAD_COND_INITIALIZER;
static uint64_t queue[QCAP];
static int qhead, qlen;
static uint64_t produced[2], prodsum[2];

static pthread_mutex_t tokmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tokcv = PTHREAD_COND_INITIALIZER;
static uint64_t token; /* even: ping's turn, odd: pong's */

/* kernel_state reads the calling thread's clear_child_tid and robust list. */
static void kernel_state(struct thr *t, uint64_t *tidaddr, uint64_t *head, uint64_t *len)
{
	int *addr = NULL;
	if (prctl(PR_GET_TID_ADDRESS, &addr, 0, 0, 0))
		snprintf(t->err, sizeof(t->err), "PR_GET_TID_ADDRESS: %s", strerror(errno));
	*tidaddr = (uint64_t)(uintptr_t)addr;
	void *h = NULL;
	size_t l = 0;
	if (syscall(SYS_get_robust_list, 0, &h, &l))
		snprintf(t->err, sizeof(t->err), "get_robust_list: %s", strerror(errno));
	*head = (uint64_t)(uintptr_t)h;
	*len = l;
}

static void thread_start(int i)
{
	struct thr *t = &thr[i];
	t->tid = (pid_t)syscall(SYS_gettid);
	if (pthread_setname_np(pthread_self(), names[i]))
		snprintf(t->err, sizeof(t->err), "setname failed");
	kernel_state(t, &t->tidaddr, &t->robust_head, &t->robust_len);
}

/* thread_end runs as a thread stops: what the kernel knows of it now. */
static void *thread_end(int i)
{
	struct thr *t = &thr[i];
	kernel_state(t, &t->end_tidaddr, &t->end_robust_head, &t->end_robust_len);
	return NULL;
}

/* item encodes producer p's n-th item (n from 1). */
static uint64_t item(int p, uint64_t n) { return (uint64_t)p << 56 | n; }

static void *producer(void *arg)
{
	int i = (int)(intptr_t)arg, p = i - PROD0;
	thread_start(i);
	for (uint64_t n = 1;; n++) {
		pthread_mutex_lock(&qmu);
		while (qlen == QCAP && !stop)
			pthread_cond_wait(&qnotfull, &qmu);
		if (stop) {
			pthread_mutex_unlock(&qmu);
			break;
		}
		queue[(qhead + qlen++) % QCAP] = item(p, n);
		produced[p] = n;
		prodsum[p] += n;
		pthread_cond_signal(&qnotempty);
		pthread_mutex_unlock(&qmu);
		thr[i].progress++;
		if (n % 64 == 0)
			usleep(200);
	}
	return thread_end(i);
}

static void *consumer(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct thr *t = &thr[i];
	thread_start(i);
	for (;;) {
		pthread_mutex_lock(&qmu);
		while (qlen == 0 && !stop)
			pthread_cond_wait(&qnotempty, &qmu);
		if (qlen == 0 && stop) {
			pthread_mutex_unlock(&qmu);
			break;
		}
		uint64_t it = queue[qhead];
		qhead = (qhead + 1) % QCAP;
		qlen--;
		int p = (int)(it >> 56);
		uint64_t n = it & ((1ULL << 56) - 1);
		if (p < 0 || p > 1) {
			if (!t->err[0])
				snprintf(t->err, sizeof(t->err), "bad item 0x%llx", (unsigned long long)it);
		} else {
			/* Under the queue lock: this consumer's items of p increase. */
			if (n <= t->last[p] && !t->err[0])
				snprintf(t->err, sizeof(t->err), "producer %d item %llu after %llu", p,
					 (unsigned long long)n, (unsigned long long)t->last[p]);
			t->last[p] = n;
			t->got[p]++;
			t->sum[p] += n;
		}
		pthread_cond_signal(&qnotfull);
		pthread_mutex_unlock(&qmu);
		t->progress++;
	}
	return thread_end(i);
}

static uint64_t lcg(uint64_t x) { return x * 6364136223846793005ULL + 1442695040888963407ULL; }

static void *busy(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct thr *t = &thr[i];
	thread_start(i);
	uint64_t x = 0x1234567ULL + i, n = 0;
	while (!stop) {
		for (int k = 0; k < 4096; k++)
			x = lcg(x);
		n += 4096;
		t->progress = n;
	}
	t->busy_steps = n;
	t->busy_val = x;
	return thread_end(i);
}

static void *pingpong(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct thr *t = &thr[i];
	uint64_t parity = i == PING ? 0 : 1;
	thread_start(i);
	pthread_mutex_lock(&tokmu);
	for (;;) {
		while (token % 2 != parity && !stop)
			pthread_cond_wait(&tokcv, &tokmu);
		if (stop)
			break;
		token++;
		t->progress++;
		pthread_cond_broadcast(&tokcv);
		pthread_mutex_unlock(&tokmu);
		usleep(100);
		pthread_mutex_lock(&tokmu);
	}
	pthread_mutex_unlock(&tokmu);
	return thread_end(i);
}

static void check_self_state(int i)
{
	struct thr *t = &thr[i];
	char path[128], comm[32] = {0};
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)t->tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		failf("thread %s: open %s: %s", names[i], path, strerror(errno));
		return;
	}
	ssize_t n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n > 0 && comm[n - 1] == '\n')
		comm[n - 1] = 0;
	if (strcmp(comm, names[i]))
		failf("thread %d is named %s, want %s", (int)t->tid, comm, names[i]);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "[threads] FAIL: watchdog: stuck joining threads\n";
	ssize_t w = write(1, msg, sizeof(msg) - 1);
	(void)w;
	int fd = open("result", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		w = write(fd, "FAIL: watchdog: stuck joining threads\n", 38);
		close(fd);
	}
	_exit(1);
}

static uint64_t progress_of(int i) { return thr[i].progress; }

int main(void)
{
	install_term();
	/* Only main takes SIGTERM: the others block it. */
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	for (int i = 0; i < NTHR; i++) {
		void *(*fn)(void *) = i <= PROD1 ? producer : i <= CONS1 ? consumer : i <= BUSY1 ? busy : pingpong;
		if (pthread_create(&thr[i].pt, NULL, fn, (void *)(intptr_t)i))
			die("pthread_create %s", names[i]);
	}
	pthread_sigmask(SIG_UNBLOCK, &term, NULL);
	wait_moved(NTHR, progress_of, NULL, 3000, 1000);
	for (int i = 0; i < NTHR; i++)
		if (!thr[i].progress)
			die("thread %s made no progress during setup", names[i]);
	/* The state each thread recorded at start, as main sees it now. */
	struct thr at_start[NTHR];
	memcpy(at_start, thr, sizeof(at_start));
	write_pidfile();
	wait_term();

	/*
	 * Every thread must advance after restore. Each gets up to 5 s: on a
	 * loaded machine a thread may wait that long for a CPU, but one that
	 * is really stuck never advances.
	 */
	uint64_t before[NTHR];
	for (int i = 0; i < NTHR; i++)
		before[i] = thr[i].progress;
	wait_moved(NTHR, progress_of, before, 500, 10 * 1000);
	for (int i = 0; i < NTHR; i++)
		if (thr[i].progress == before[i])
			failf("thread %s (tid %d) made no progress in 5 s after SIGTERM", names[i], (int)thr[i].tid);
	for (int i = 0; i < NTHR; i++)
		check_self_state(i);

	signal(SIGALRM, on_alarm);
	alarm(20);
	pthread_mutex_lock(&qmu);
	pthread_mutex_lock(&tokmu);
	stop = 1;
	pthread_cond_broadcast(&qnotfull);
	pthread_cond_broadcast(&qnotempty);
	pthread_cond_broadcast(&tokcv);
	pthread_mutex_unlock(&tokmu);
	pthread_mutex_unlock(&qmu);
	for (int i = 0; i < NTHR; i++)
		if (pthread_join(thr[i].pt, NULL))
			failf("pthread_join %s failed", names[i]);
	alarm(0);

	for (int i = 0; i < NTHR; i++) {
		struct thr *t = &thr[i];
		if (t->err[0])
			failf("thread %s: %s", names[i], t->err);
		if (t->end_tidaddr != at_start[i].tidaddr || !t->end_tidaddr)
			failf("thread %s: clear_child_tid is %#llx, was %#llx", names[i],
			      (unsigned long long)t->end_tidaddr, (unsigned long long)at_start[i].tidaddr);
		if (t->end_robust_head != at_start[i].robust_head || t->end_robust_len != at_start[i].robust_len)
			failf("thread %s: robust list is %#llx len %llu, was %#llx len %llu", names[i],
			      (unsigned long long)t->end_robust_head, (unsigned long long)t->end_robust_len,
			      (unsigned long long)at_start[i].robust_head, (unsigned long long)at_start[i].robust_len);
	}
	/* Every produced item was consumed exactly once (the queue is drained). */
	if (qlen)
		failf("%d items left in the queue after the consumers stopped", qlen);
	for (int p = 0; p < 2; p++) {
		uint64_t got = thr[CONS0].got[p] + thr[CONS1].got[p];
		uint64_t sum = thr[CONS0].sum[p] + thr[CONS1].sum[p];
		if (got != produced[p] || sum != prodsum[p])
			failf("producer %d: produced %llu items (sum %llu), consumed %llu (sum %llu)", p,
			      (unsigned long long)produced[p], (unsigned long long)prodsum[p],
			      (unsigned long long)got, (unsigned long long)sum);
		if (produced[p] < 100)
			failf("producer %d made only %llu items", p, (unsigned long long)produced[p]);
	}
	for (int i = BUSY0; i <= BUSY1; i++) {
		uint64_t x = 0x1234567ULL + i;
		for (uint64_t n = 0; n < thr[i].busy_steps; n++)
			x = lcg(x);
		if (x != thr[i].busy_val)
			failf("busy thread %s: chain of %llu steps ends at %#llx, recomputed %#llx", names[i],
			      (unsigned long long)thr[i].busy_steps, (unsigned long long)thr[i].busy_val,
			      (unsigned long long)x);
	}
	if (token != thr[PING].progress + thr[PONG].progress)
		failf("token is %llu but ping and pong passed it %llu times", (unsigned long long)token,
		      (unsigned long long)(thr[PING].progress + thr[PONG].progress));
	logf_("produced %llu+%llu items, token %llu", (unsigned long long)produced[0],
	      (unsigned long long)produced[1], (unsigned long long)token);
	finish();
}
