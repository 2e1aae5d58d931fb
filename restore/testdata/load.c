/* load: the workload of the repeated dump/restore test.
 * Usage: load NTASKS MIB NVMAS. The root fills MIB MiB of anonymous memory
 * with a pattern and makes NVMAS one-page VMAs (alternating protections,
 * filled first), forks NTASKS-1 children that each fill 16 pages of their
 * own, and prints READY once all of them are ready. On SIGUSR1 the root
 * checks its own memory and prints OK or FAIL; on SIGTERM it forwards
 * SIGTERM to its children (each checks its memory and exits 0 or 1),
 * checks its own, and prints PASS or FAIL. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
#define KIDPAGES 16

static volatile sig_atomic_t term, usr1;
static void on_term(int s) { (void)s; term = 1; }
static void on_usr1(int s) { (void)s; usr1 = 1; }

static uint64_t word(uint64_t seed, uint64_t i) { return (seed * 0x9e3779b97f4a7c15ULL) ^ (i * 0xff51afd7ed558ccdULL) ^ i; }

static void fill(uint64_t *p, size_t words, uint64_t seed) {
	for (size_t i = 0; i < words; i++)
		p[i] = word(seed, i);
}

static long check(const uint64_t *p, size_t words, uint64_t seed) {
	for (size_t i = 0; i < words; i++)
		if (p[i] != word(seed, i))
			return (long)i;
	return -1;
}

static void nap(void) {
	struct timespec ts = {0, 5 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: load NTASKS MIB NVMAS\n");
		return 2;
	}
	int ntasks = atoi(argv[1]);
	size_t big = (size_t)atol(argv[2]) << 20;
	int nvmas = atoi(argv[3]);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);

	volatile int *ready = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *mem = big ? mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
	uint64_t *v = nvmas ? mmap(NULL, (nvmas + 2) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
	if (ready == MAP_FAILED || mem == MAP_FAILED || v == MAP_FAILED) {
		printf("FAIL setup mmap\n");
		return 1;
	}
	if (big)
		fill(mem, big / 8, 1);
	if (nvmas) {
		/* One guard page each side; page i is RW when i is even, R when odd. */
		v = (uint64_t *)((char *)v + PG);
		if (mprotect(v, nvmas * PG, PROT_READ | PROT_WRITE)) {
			printf("FAIL setup mprotect\n");
			return 1;
		}
		fill(v, nvmas * PG / 8, 2);
		for (int i = 1; i < nvmas; i += 2)
			if (mprotect((char *)v + i * PG, PG, PROT_READ)) {
				printf("FAIL setup mprotect %d\n", i);
				return 1;
			}
	}
	pid_t *kids = calloc(ntasks > 0 ? ntasks : 1, sizeof(pid_t));
	for (int k = 1; k < ntasks; k++) {
		pid_t p = fork();
		if (p < 0) {
			printf("FAIL fork\n");
			return 1;
		}
		if (p == 0) {
			uint64_t *mine = mmap(NULL, KIDPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (mine == MAP_FAILED)
				_exit(3);
			fill(mine, KIDPAGES * PG / 8, 100 + k);
			__atomic_add_fetch(ready, 1, __ATOMIC_SEQ_CST);
			while (!term)
				nap();
			_exit(check(mine, KIDPAGES * PG / 8, 100 + k) >= 0 ? 1 : 0);
		}
		kids[k] = p;
	}
	while (__atomic_load_n(ready, __ATOMIC_SEQ_CST) < ntasks - 1)
		nap();
	printf("READY\n");
	fflush(stdout);

	long bad;
	for (;;) {
		if (usr1) {
			usr1 = 0;
			if (big && (bad = check(mem, big / 8, 1)) >= 0)
				printf("FAIL big word %ld\n", bad);
			else if (nvmas && (bad = check(v, nvmas * PG / 8, 2)) >= 0)
				printf("FAIL vmas word %ld\n", bad);
			else
				printf("OK\n");
			fflush(stdout);
		}
		if (term)
			break;
		nap();
	}
	int fails = 0;
	for (int k = 1; k < ntasks; k++)
		kill(kids[k], SIGTERM);
	for (int k = 1; k < ntasks; k++) {
		int st;
		if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (!fails)
				printf("FAIL child %d status %#x\n", kids[k], st);
			fails++;
		}
	}
	if (big && (bad = check(mem, big / 8, 1)) >= 0)
		printf("FAIL big word %ld\n", bad), fails++;
	if (nvmas && (bad = check(v, nvmas * PG / 8, 2)) >= 0)
		printf("FAIL vmas word %ld\n", bad), fails++;
	if (!fails)
		printf("PASS\n");
	fflush(stdout);
	return fails ? 1 : 0;
}
