/* cowtree: memory shared copy-on-write across a tree, and the ways a
 * child's private memory can differ from its parent's.
 *
 * The root fills NP pages of private anonymous memory A (every page
 * non-zero) and a read-only region R, then forks:
 *   C1: rewrites every 50th page of A, zeroes every 70th (a present page
 *       full of zeros), drops every 90th with MADV_DONTNEED (reads as
 *       zeros), writes into R through a writable window, maps a region of
 *       its own, then forks G, which rewrites every 40th page;
 *   C2: touches nothing: all of A shared with the root;
 *   C3: unmaps the second half of A and maps fresh memory there.
 * It prints READY once every task is set up and, after SIGTERM, every
 * task checks all its memory and reports to its parent; the root prints
 * PASS or FAIL. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define NP 4096 /* 16 MiB */
#define NR 16

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

static uint8_t *A, *R, *own;
/* ver[pg]: what page pg of A holds in this task: 0 root's, -1 zeros,
 * else a task's own pattern. */
static int ver[NP];
static int rver;

static void fill(uint8_t *p, int v, size_t pg) {
	for (size_t i = 0; i < PAGE; i += 8)
		*(uint64_t *)(p + i) = (uint64_t)v * 0x9e3779b97f4a7c15ull + pg * 4096 + i + 1;
}

static int ok(const uint8_t *p, int v, size_t pg) {
	if (v < 0) {
		for (size_t i = 0; i < PAGE; i++)
			if (p[i])
				return 0;
		return 1;
	}
	for (size_t i = 0; i < PAGE; i += 8)
		if (*(const uint64_t *)(p + i) != (uint64_t)v * 0x9e3779b97f4a7c15ull + pg * 4096 + i + 1)
			return 0;
	return 1;
}

static int verify(const char *who, int nA) {
	int bad = 0;
	for (int pg = 0; pg < nA; pg++)
		if (!ok(A + (size_t)pg * PAGE, ver[pg], pg)) {
			if (bad++ < 3)
				printf("FAIL %s: page %d of A is not version %d\n", who, pg, ver[pg]);
		}
	for (int pg = 0; pg < NR; pg++)
		if (!ok(R + (size_t)pg * PAGE, pg == 3 ? rver : 0, 10000 + pg)) {
			if (bad++ < 3)
				printf("FAIL %s: page %d of R\n", who, pg);
		}
	if (own)
		for (int pg = 0; pg < 64; pg++)
			if (!ok(own + (size_t)pg * PAGE, 77, 20000 + pg)) {
				if (bad++ < 3)
					printf("FAIL %s: own page %d\n", who, pg);
			}
	fflush(stdout);
	return bad;
}

/* run waits for SIGTERM, checks, passes it on to kid and reaps it. */
static int run(const char *who, int nA, pid_t kid, int ready_fd) {
	if (ready_fd >= 0) {
		char c = 1;
		if (write(ready_fd, &c, 1) != 1)
			return 1;
		close(ready_fd);
	}
	while (!term)
		usleep(1000);
	int bad = verify(who, nA) != 0;
	if (kid > 0) {
		int st;
		kill(kid, SIGTERM);
		if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("FAIL %s: child %d status %#x\n", who, kid, st);
			bad = 1;
		}
	}
	fflush(stdout);
	return bad;
}

/* spawn forks body, which says it is ready on the fd it gets; close is
 * the caller's own ready fd, which the child must not keep (no pipes at
 * dump beyond stdio). */
static pid_t spawn(void (*body)(int), int *ready, int close_fd) {
	int p[2];
	if (pipe(p))
		exit(1);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (close_fd >= 0)
			close(close_fd);
		body(p[1]);
		exit(1);
	}
	close(p[1]);
	char c;
	/* The byte, then EOF once the child has closed the pipe. */
	if (read(p[0], &c, 1) != 1 || read(p[0], &c, 1) != 0)
		*ready = 0;
	close(p[0]);
	return pid;
}

static void g(int fd) {
	for (int pg = 0; pg < NP; pg += 40) {
		ver[pg] = 5;
		fill(A + (size_t)pg * PAGE, 5, pg);
	}
	exit(run("G", NP, 0, fd));
}

static void c1(int fd) {
	for (int pg = 0; pg < NP; pg += 50) {
		ver[pg] = 2;
		fill(A + (size_t)pg * PAGE, 2, pg);
	}
	for (int pg = 1; pg < NP; pg += 70) {
		ver[pg] = -1;
		memset(A + (size_t)pg * PAGE, 0, PAGE);
	}
	for (int pg = 2; pg < NP; pg += 90) {
		ver[pg] = -1;
		madvise(A + (size_t)pg * PAGE, PAGE, MADV_DONTNEED);
	}
	mprotect(R + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE);
	rver = 9;
	fill(R + 3 * PAGE, 9, 10003);
	mprotect(R + 3 * PAGE, PAGE, PROT_READ);
	own = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int pg = 0; pg < 64; pg++)
		fill(own + (size_t)pg * PAGE, 77, 20000 + pg);
	int ready = 1;
	pid_t kid = spawn(g, &ready, fd);
	if (!ready)
		exit(1);
	exit(run("C1", NP, kid, fd));
}

static void c2(int fd) { exit(run("C2", NP, 0, fd)); }

static void c3(int fd) {
	uint8_t *half = A + (size_t)(NP / 2) * PAGE;
	if (mmap(half, (size_t)(NP / 2) * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != half)
		exit(1);
	for (int pg = NP / 2; pg < NP; pg++) {
		ver[pg] = -1;
		if (pg % 10 == 0) {
			ver[pg] = 3;
			fill(A + (size_t)pg * PAGE, 3, pg);
		}
	}
	exit(run("C3", NP, 0, fd));
}

int main(void) {
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	A = mmap(NULL, (size_t)NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	R = mmap(NULL, NR * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (A == MAP_FAILED || R == MAP_FAILED) {
		printf("FAIL setup\n");
		return 1;
	}
	for (int pg = 0; pg < NP; pg++)
		fill(A + (size_t)pg * PAGE, 0, pg);
	for (int pg = 0; pg < NR; pg++)
		fill(R + (size_t)pg * PAGE, 0, 10000 + pg);
	mprotect(R, NR * PAGE, PROT_READ);
	int ready = 1;
	pid_t kids[3];
	kids[0] = spawn(c1, &ready, -1);
	kids[1] = spawn(c2, &ready, -1);
	kids[2] = spawn(c3, &ready, -1);
	if (!ready) {
		printf("FAIL children not ready\n");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	int bad = 0;
	while (!term)
		usleep(1000);
	bad |= verify("root", NP) != 0;
	for (int i = 0; i < 3; i++) {
		int st;
		kill(kids[i], SIGTERM);
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("FAIL root: child %d status %#x\n", kids[i], st);
			bad = 1;
		}
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
