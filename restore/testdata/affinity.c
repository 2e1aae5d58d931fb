/* affinity: a thread kept to CPU 1 (sched_setaffinity) with the idle I/O
 * priority, and a main thread free to run anywhere with best-effort I/O
 * priority 7 (ioprio_set), in a process whose coredump_filter is 0x7f,
 * across a dump and restore. On SIGTERM each checks its CPU mask and I/O
 * priority, the main thread the coredump filter. Prints PASS or the first FAIL.
 * Run as "affinity probe" it exits 0 where there are two CPUs online. */
#include "vmatest.h"
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#define IOPRIO_BE7 ((2 << 13) | 7)
#define IOPRIO_IDLE (3 << 13)

static int set_ioprio(int v) { return syscall(SYS_ioprio_set, 1, 0, v); }

static int ioprio_is(const char *who, int want)
{
	int got = syscall(SYS_ioprio_get, 1, 0);
	if (got != want) {
		printf("FAIL %s: I/O priority %#x, want %#x\n", who, got, want);
		return 1;
	}
	return 0;
}

static volatile int check, result = -1;

static int mask_is(const char *who, const cpu_set_t *want)
{
	cpu_set_t got;
	if (sched_getaffinity(0, sizeof(got), &got) || !CPU_EQUAL(&got, want)) {
		printf("FAIL %s: CPU mask has %d CPUs, CPU 1 %d, want %d CPUs\n", who, CPU_COUNT(&got), CPU_ISSET(1, &got),
		       CPU_COUNT(want));
		return 1;
	}
	return 0;
}

static void *pinned(void *arg)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(1, &one);
	if (sched_setaffinity(0, sizeof(one), &one) || set_ioprio(IOPRIO_IDLE)) {
		result = 1;
		return NULL;
	}
	*(volatile int *)arg = 1;
	while (!check)
		usleep(1000);
	result = mask_is("pinned thread", &one) | ioprio_is("pinned thread", IOPRIO_IDLE);
	return NULL;
}

int main(int argc, char **argv)
{
	install_term();
	cpu_set_t all;
	if (sched_getaffinity(0, sizeof(all), &all) || CPU_COUNT(&all) < 2 || !CPU_ISSET(1, &all))
		return 1;
	if (argc > 1 && strcmp(argv[1], "probe") == 0)
		return 0;
	FILE *cf = fopen("/proc/self/coredump_filter", "w");
	if (set_ioprio(IOPRIO_BE7) || !cf || fprintf(cf, "0x7f") < 0 || fclose(cf))
		return 1;
	volatile int ready = 0;
	block_term_in_threads();
	pthread_t th;
	if (pthread_create(&th, NULL, pinned, (void *)&ready))
		return 1;
	while (!ready && result < 0)
		usleep(1000);
	printf("READY\n");
	fflush(stdout);
	wait_term();
	int bad = mask_is("main thread", &all) | ioprio_is("main thread", IOPRIO_BE7);
	char filter[32] = "";
	cf = fopen("/proc/self/coredump_filter", "r");
	if (!cf || !fgets(filter, sizeof(filter), cf) || strtoul(filter, NULL, 16) != 0x7f) {
		printf("FAIL: coredump_filter %s, want 7f\n", filter);
		bad = 1;
	}
	if (cf)
		fclose(cf);
	check = 1;
	pthread_join(th, NULL);
	bad |= result != 0;
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
