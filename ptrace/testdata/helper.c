/* Test workload for package ptrace.
 *   helper count        print 0,1,2,... one per line every 5 ms, forever
 *   helper sleep MS     print "start", nanosleep MS ms, print "done ELAPSED";
 *                       exit 3 if nanosleep failed, 4 if it returned early
 *   helper vfork        vfork a child that prints its pid and sleeps 30 s:
 *                       the parent waits for it in a killable-only sleep
 *   (every mode counts SIGUSR1 in a handler and ignores it otherwise; it
 *   catches SIGTRAP the same way, or ignores it if HELPER_TRAP=ignore, so
 *   that a test can see its action kept)
 *   helper threads      start 3 threads that sleep in a loop; the main
 *                       thread prints "ready", then counts like "count"
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void *sleeper(void *arg)
{
	for (;;) {
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	return arg;
}

static volatile unsigned long usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

int main(int argc, char **argv)
{
	signal(SIGUSR1, on_usr1);
	const char *trap = getenv("HELPER_TRAP");
	signal(SIGTRAP, trap && strcmp(trap, "ignore") == 0 ? SIG_IGN : on_usr1);
	if (argc > 2 && strcmp(argv[1], "sleep") == 0) {
		long ms = atol(argv[2]);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		long start = now_ms();
		if (write(1, "start\n", 6) != 6)
			return 2;
		if (nanosleep(&ts, NULL) != 0) {
			printf("nanosleep: %s\n", strerror(errno));
			return 3;
		}
		long el = now_ms() - start;
		printf("done %ld\n", el);
		return el >= ms ? 0 : 4;
	}
	if (argc > 1 && strcmp(argv[1], "vfork") == 0) {
		if (vfork() == 0) {
			char buf[32];
			int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
			if (write(1, buf, n) != n)
				_exit(2);
			struct timespec ts = { 30, 0 };
			nanosleep(&ts, NULL);
			_exit(0);
		}
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "threads") == 0) {
		for (int i = 0; i < 3; i++) {
			pthread_t th;
			if (pthread_create(&th, NULL, sleeper, NULL) != 0)
				return 2;
		}
		if (write(1, "ready\n", 6) != 6)
			return 2;
	}
	for (unsigned long i = 0;; i++) {
		char buf[32];
		int n = snprintf(buf, sizeof buf, "%lu\n", i);
		if (write(1, buf, n) != n)
			return 2;
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
}
