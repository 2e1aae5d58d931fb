// Workload for the refusal of POSIX timers: a task with one timer
// (timer_create, CLOCK_MONOTONIC, SIGUSR1 every 10 ms, counted). Prints
// "ready PID"; on SIGTERM exits 0 if the timer still ticks.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t term, ticks;
static void on_term(int sig) { (void)sig; term = 1; }
static void on_tick(int sig) { (void)sig; ticks++; }

int main(void)
{
	close_range(3, ~0U, 0); /* nothing of the test's: only the timer is refused */
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_tick;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	timer_t tm;
	struct itimerspec its = {{0, 10000000}, {0, 10000000}};
	if (timer_create(CLOCK_MONOTONIC, &ev, &tm) || timer_settime(tm, 0, &its, NULL))
		return 2;
	printf("ready %d\n", getpid());
	fflush(stdout);
	while (!term)
		pause();
	sig_atomic_t seen = ticks;
	struct timespec nap = {0, 100000000};
	while (nanosleep(&nap, &nap))
		;
	return ticks > seen ? 0 : 1;
}
