/* itimer: a periodic ITIMER_REAL of 1 ms (setitimer), across a dump and
 * restore. So short that it expires while the task is frozen for the dump,
 * which leaves it waiting, 0 left, for its SIGALRM to be taken. On SIGTERM
 * the task checks that SIGALRM still comes every millisecond or so.
 * Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t ticks;
static void on_alarm(int s) { (void)s; ticks++; }

int main(void)
{
	install_term();
	struct sigaction sa = {0};
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 1000}, {0, 1000}};
	if (setitimer(ITIMER_REAL, &it, NULL))
		return 1;
	while (ticks < 5)
		pause();
	printf("READY\n");
	fflush(stdout);
	wait_term();
	sig_atomic_t seen = ticks;
	struct timespec nap = {0, 100000000};
	while (nanosleep(&nap, &nap))
		;
	if (ticks < seen + 20) {
		printf("FAIL: %d SIGALRMs in 100 ms of a 1 ms ITIMER_REAL\n", (int)(ticks - seen));
		return 1;
	}
	printf("PASS\n");
	return 0;
}
