/*
 * guardstacks: thread stacks guarded the way glibc 2.42+ guards them, with
 * a guard region (madvise MADV_GUARD_INSTALL, Linux 6.13+) on the lowest
 * pages of each stack instead of a PROT_NONE mapping.
 *
 * Main maps four stacks of 256 KiB, guards the lowest 2 pages of each and
 * starts a thread on each (pthread_attr_setstack: glibc adds no guard of
 * its own). Every thread recurses 48 KiB deep over and over, filling its
 * frames with a pattern that depends on the depth and checking it on the
 * way back, and counts its rounds.
 *
 * On SIGTERM main checks that every guard page still faults (SIGSEGV,
 * caught) while the page above it reads, that every thread still makes
 * rounds and found no bad frame, then stops and joins them. Where the
 * kernel has no guard regions (EINVAL), the stacks are plain and only the
 * threads are checked.
 */
#include "common.h"
#include <pthread.h>
#include <setjmp.h>

#define NTHR 4
#define STACK (256 * 1024)
#define GUARD_PAGES 2
#define MADV_GUARD_INSTALL_ 102

struct thr {
	pthread_t pt;
	uint8_t *stack;
	volatile uint64_t rounds;
	volatile int bad; /* a frame did not hold its pattern */
};

static struct thr thr[NTHR];
static volatile int stop;
static int guarded;

/* recurse fills a 1 KiB frame per level and checks it on the way back. */
static uint64_t recurse(int depth, uint64_t seed)
{
	volatile uint8_t frame[1024];
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(seed + depth * 31 + i);
	uint64_t sum = depth ? recurse(depth - 1, seed) : 0;
	for (size_t i = 0; i < sizeof(frame); i++)
		if (frame[i] != (uint8_t)(seed + depth * 31 + i))
			return ~0ULL;
	return sum == ~0ULL ? sum : sum + frame[depth % sizeof(frame)];
}

static void *worker(void *arg)
{
	struct thr *t = arg;
	uint64_t want = recurse(47, 7);
	while (!stop) {
		if (recurse(47, 7) != want)
			t->bad = 1;
		t->rounds++;
		usleep(500);
	}
	return NULL;
}

static sigjmp_buf probe_jmp;
static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(probe_jmp, 1);
}

/* faults says whether reading p raises SIGSEGV. */
static int faults(volatile uint8_t *p)
{
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, &old);
	int hit = 1;
	if (!sigsetjmp(probe_jmp, 1)) {
		(void)*p;
		hit = 0;
	}
	sigaction(SIGSEGV, &old, NULL);
	return hit;
}

static uint64_t rounds_of(int i) { return thr[i].rounds; }

int main(void)
{
	install_term();
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	guarded = 1;
	for (int i = 0; i < NTHR; i++) {
		struct thr *t = &thr[i];
		t->stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (t->stack == MAP_FAILED)
			die("mmap stack %d: %s", i, strerror(errno));
		if (guarded && madvise(t->stack, GUARD_PAGES * PAGE, MADV_GUARD_INSTALL_)) {
			if (errno != EINVAL)
				die("madvise(MADV_GUARD_INSTALL): %s", strerror(errno));
			logf_("no guard regions in this kernel: plain stacks");
			guarded = 0;
		}
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstack(&attr, t->stack, STACK);
		if (pthread_create(&t->pt, &attr, worker, t))
			die("pthread_create %d", i);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_UNBLOCK, &term, NULL);
	wait_moved(NTHR, rounds_of, NULL, 3000, 1000);
	for (int i = 0; i < NTHR; i++)
		if (!thr[i].rounds)
			die("thread %d made no round during setup", i);
	write_pidfile();
	wait_term();

	for (int i = 0; i < NTHR && guarded; i++) {
		for (int pg = 0; pg < GUARD_PAGES; pg++)
			if (!faults(thr[i].stack + pg * PAGE))
				failf("stack %d: guard page %d (%p) does not fault", i, pg, (void *)(thr[i].stack + pg * PAGE));
		if (faults(thr[i].stack + GUARD_PAGES * PAGE))
			failf("stack %d: the page above the guard faults", i);
	}
	uint64_t before[NTHR];
	for (int i = 0; i < NTHR; i++)
		before[i] = thr[i].rounds;
	wait_moved(NTHR, rounds_of, before, 500, 10 * 1000);
	stop = 1;
	for (int i = 0; i < NTHR; i++) {
		pthread_join(thr[i].pt, NULL);
		if (thr[i].rounds == before[i])
			failf("thread %d made no round in 5 s after SIGTERM", i);
		if (thr[i].bad)
			failf("thread %d found a stack frame changed", i);
	}
	finish();
}
