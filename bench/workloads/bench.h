/*
 * bench.h: the protocol every benchmark workload follows.
 *
 * A workload runs with its cwd set to a private run directory. It fills its
 * memory with a pattern (never zero: a dump skips all-zero pages), writes
 * its pid to ./pidfile (atomically, via rename) once every task is ready,
 * then sleeps in short nanosleeps until SIGTERM. On SIGTERM every task checks
 * its memory against the pattern; children exit 0 (all good) or 1, the root
 * folds their statuses into its own and writes ./result: "PASS" or
 * "FAIL: <first reason>".
 *
 * No pipes to the harness or sockets: fds 0-2 are what the harness gave.
 * The pidfile, ready files and SIGTERM handling are workload.h's, shared
 * with the e2e workloads.
 */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wunused-function"
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MiB (1024UL * 1024UL)

static int nfail;
static char first_fail[512];

__attribute__((format(printf, 1, 2))) static void failf(const char *fmt, ...)
{
	va_list ap;
	char buf[400];
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("[%d] FAIL: %s\n", (int)getpid(), buf);
	fflush(stdout);
	if (nfail++ == 0)
		snprintf(first_fail, sizeof(first_fail), "pid %d: %s", (int)getpid(), buf);
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[%d] SETUP ERROR: ", (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	_exit(3);
}

#include "../../internal/testproc/testdata/workload.h"

/*
 * wait_term sleeps until SIGTERM. nanosleep in a loop rather than pause():
 * a signal between the flag test and pause() would be lost. Gives up after
 * an hour so a lost workload cannot live forever.
 */
static void wait_term(void)
{
	for (long i = 0; !got_term && i < 3600L * 20; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (!got_term)
		failf("no SIGTERM within an hour");
}

/* term_and_reap sends SIGTERM to the children and folds their exit statuses in. */
static void term_and_reap(const pid_t *kids, int n)
{
	for (int i = 0; i < n; i++)
		if (kill(kids[i], SIGTERM))
			failf("kill(%d, SIGTERM): %s", (int)kids[i], strerror(errno));
	for (int i = 0; i < n; i++) {
		int status;
		pid_t r;
		do
			r = waitpid(kids[i], &status, 0);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			failf("waitpid %d: %s", (int)kids[i], strerror(errno));
		else if (WIFSIGNALED(status))
			failf("child %d killed by signal %d", (int)kids[i], WTERMSIG(status));
		else if (WEXITSTATUS(status) != 0)
			failf("child %d found bad memory (exit %d)", (int)kids[i], WEXITSTATUS(status));
	}
}

/* finish writes the root's verdict to ./result and exits. */
__attribute__((noreturn)) static void finish(void)
{
	char buf[700];
	int n = format_verdict(buf, sizeof(buf), nfail, first_fail);
	if (write_result(buf, n))
		nfail++;
	_exit(nfail ? 1 : 0);
}

/*
 * The pattern: word i of page pg under seed s. Cheap (one multiply-xor per
 * word) so that filling and checking a GiB stays well under a second, never
 * zero, and different for every page and seed.
 */
static inline uint64_t pat(uint64_t seed, uint64_t pg, uint64_t i)
{
	uint64_t z = (seed << 48) ^ (pg << 9) ^ i;
	z *= 0x9E3779B97F4A7C15ULL;
	return z ^ (z >> 29) ^ 0x8000000000000000ULL;
}

static void fill_page(uint8_t *p, uint64_t seed, uint64_t pg)
{
	uint64_t *w = (uint64_t *)p;
	for (uint64_t i = 0; i < PAGE / 8; i++)
		w[i] = pat(seed, pg, i);
}

/* check_page returns 1 when page p holds the pattern of (seed, pg). */
static int check_page(const uint8_t *p, uint64_t seed, uint64_t pg)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t bad = 0;
	for (uint64_t i = 0; i < PAGE / 8; i++)
		bad |= w[i] ^ pat(seed, pg, i);
	return bad == 0;
}

static int is_zero_page(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t any = 0;
	for (uint64_t i = 0; i < PAGE / 8; i++)
		any |= w[i];
	return any == 0;
}

static void *xmmap(void *addr, size_t len, int prot, int flags)
{
	void *p = mmap(addr, len, prot, flags, -1, 0);
	if (p == MAP_FAILED)
		die("mmap %zu bytes: %s", len, strerror(errno));
	return p;
}

/* now_ns is CLOCK_MONOTONIC in ns: the references that time themselves
 * print now_ns() differences on stdout. */
static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static unsigned long arg_ul(int argc, char **argv, int i, const char *what)
{
	if (i >= argc)
		die("usage: missing argument %d (%s)", i, what);
	char *end;
	unsigned long v = strtoul(argv[i], &end, 10);
	if (*end || end == argv[i])
		die("bad %s \"%s\"", what, argv[i]);
	return v;
}

#endif
