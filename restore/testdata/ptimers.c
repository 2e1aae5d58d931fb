/* ptimers: POSIX timers across a dump and restore. Timer 0 sends the
 * process SIGUSR1 every 10 ms with sigev_value 0x1234; timer 1 sends
 * SIGUSR2 to a worker thread every 10 ms (SIGEV_THREAD_ID); timer 2 is
 * disarmed; timer 3 was deleted, so the next one is 4: CLOCK_REALTIME,
 * no notification, armed for an hour. On SIGTERM: timers 0, 1, 2 and 4
 * exist with those settings (3 does not), and both signals keep coming
 * with the right value, id and thread. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>

static volatile sig_atomic_t ticks1, ticks2, wrong;
static pid_t worker_tid;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (si->si_code != SI_TIMER || si->si_value.sival_int != 0x1234 || si->si_timerid != 0)
		wrong = 1;
	ticks1++;
}

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (si->si_code != SI_TIMER || syscall(SYS_gettid) != worker_tid)
		wrong = 2;
	ticks2++;
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = syscall(SYS_gettid);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	for (;;)
		pause();
	return NULL;
}

/* make creates a timer with id want (0: any). */
static int make(clockid_t clock, struct sigevent *ev, timer_t *t, long want)
{
	if (timer_create(clock, ev, t))
		return -1;
	return (long)*t == want ? 0 : -1;
}

static void nap(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts))
		;
}

int main(void)
{
	install_term();
	struct sigaction sa = {0};
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_sigaction = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sigset_t s; /* SIGUSR2 only in the worker */
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	block_term_in_threads();
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL))
		return 1;
	while (!worker_tid)
		nap(1);

	timer_t t0, t1, t2, t3, t4;
	struct sigevent e0 = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1, .sigev_value.sival_int = 0x1234};
	struct sigevent e1 = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR2};
	e1._sigev_un._tid = worker_tid;
	struct sigevent e2 = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	struct sigevent e4 = {.sigev_notify = SIGEV_NONE};
	struct itimerspec fast = {{0, 10000000}, {0, 10000000}}, hour = {{0, 0}, {3600, 0}};
	if (make(CLOCK_MONOTONIC, &e0, &t0, 0) || make(CLOCK_MONOTONIC, &e1, &t1, 1) || make(CLOCK_MONOTONIC, &e2, &t2, 2) ||
	    make(CLOCK_MONOTONIC, &e2, &t3, 3) || timer_delete(t3) || make(CLOCK_REALTIME, &e4, &t4, 4) ||
	    timer_settime(t0, 0, &fast, NULL) || timer_settime(t1, 0, &fast, NULL) || timer_settime(t4, 0, &hour, NULL)) {
		printf("FAIL: make the timers: %m\n");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	wait_term();

	int bad = 0;
	struct itimerspec its;
	if (timer_gettime(t0, &its) || its.it_interval.tv_nsec != 10000000 || timer_gettime(t2, &its) ||
	    its.it_value.tv_sec || its.it_value.tv_nsec || timer_gettime(t4, &its) || its.it_value.tv_sec < 3000 ||
	    its.it_value.tv_sec > 3600 || timer_gettime(t3, &its) == 0) {
		printf("FAIL: timers 0, 2, 4 as set and 3 gone: %m\n");
		bad = 1;
	}
	sig_atomic_t a = ticks1, b = ticks2;
	nap(200);
	if (ticks1 < a + 5 || ticks2 < b + 5 || wrong) {
		printf("FAIL: in 200 ms %d ticks of timer 0 and %d of timer 1 (wrong: %d)\n", ticks1 - a, ticks2 - b, wrong);
		bad = 1;
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
