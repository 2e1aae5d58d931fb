/*
 * common.h: the protocol every e2e workload follows.
 *
 * A workload runs with its cwd set to a private run directory. It builds its
 * state, writes its pid to ./pidfile (atomically, via rename) once every task
 * of its tree is ready, then waits for SIGTERM. On SIGTERM it verifies all of
 * its state and the root writes ./result: "PASS" or "FAIL: <first reason>".
 * Every failure is also printed to stdout as "[name pid] FAIL: ...".
 *
 * Tasks that fork forward SIGTERM to their children and fold the children's
 * exit codes (0 = pass) into their own verdict.
 *
 * fds 0-2 are what the driver gave (/dev/null, files), and
 * readiness is signalled by files in the run directory (workload.h, shared
 * with the benchmark's workloads).
 */
#ifndef E2E_COMMON_H
#define E2E_COMMON_H

#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wunused-function"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
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

static const char *who = "root";
static int nfail;
static char first_fail[600];

static void out_line(const char *kind, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "[%s %d] %s", who, (int)getpid(), kind);
	if (n < 0 || n >= (int)sizeof(buf))
		n = 0;
	int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	ssize_t w = write(1, buf, n);
	(void)w;
}

/* failf records a failure: the first one becomes the verdict's reason. */
__attribute__((format(printf, 1, 2))) static void failf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out_line("FAIL: ", fmt, ap);
	va_end(ap);
	if (nfail++ == 0) {
		int n = snprintf(first_fail, sizeof(first_fail), "%s: ", who);
		va_start(ap, fmt);
		vsnprintf(first_fail + n, sizeof(first_fail) - n, fmt, ap);
		va_end(ap);
	}
}

__attribute__((format(printf, 1, 2))) static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out_line("", fmt, ap);
	va_end(ap);
}

/* die is for setup errors: the workload cannot even start its scenario. */
__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out_line("SETUP ERROR: ", fmt, ap);
	va_end(ap);
	_exit(3);
}

#include "../../../internal/testproc/testdata/workload.h"

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * wait_moved waits, polling every usec microseconds at most tries times,
 * until count(i) differs from since[i] (from 0 when since is NULL) for
 * every i < n, and returns how many did: a thread's progress counter.
 */
static int wait_moved(int n, uint64_t (*count)(int), const uint64_t *since, int tries, int usec)
{
	int moved = 0;
	for (int t = 0; t < tries; t++) {
		moved = 0;
		for (int i = 0; i < n; i++)
			moved += count(i) != (since ? since[i] : 0);
		if (moved == n)
			break;
		usleep(usec);
	}
	return moved;
}

/* wait_term sleeps in short nanosleeps until SIGTERM; gives up after 15 minutes. */
static void wait_term(void)
{
	double start = mono_now();
	while (!got_term) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
		if (mono_now() - start > 900) {
			failf("no SIGTERM within 15 minutes, giving up");
			return;
		}
	}
}

/*
 * spawn forks a child task named name that runs fn (setup, mark_ready,
 * wait_term, verify) and exits 0 iff it found no failure. The parent waits
 * until the child is ready.
 */
static pid_t spawn(const char *name, void (*fn)(void))
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork %s: %s", name, strerror(errno));
	if (pid == 0) {
		who = name;
		nfail = 0;
		first_fail[0] = 0;
		fn();
		_exit(nfail ? 1 : 0);
	}
	wait_ready(pid);
	return pid;
}

/* forward_term passes SIGTERM on to the children. */
static void forward_term(const pid_t *kids, int n)
{
	for (int i = 0; i < n; i++)
		if (kill(kids[i], SIGTERM))
			failf("kill(%d, SIGTERM): %s", (int)kids[i], strerror(errno));
}

/* reap_kids waits (30 s at most in all) for the children and folds their statuses into the verdict. */
static void reap_kids(const pid_t *kids, const char *const *names, int n)
{
	double deadline = mono_now() + 30;
	for (int i = 0; i < n; i++) {
		int status = 0;
		pid_t r;
		for (;;) {
			r = waitpid(kids[i], &status, WNOHANG);
			if (r < 0 && errno == EINTR)
				continue;
			if (r != 0 || mono_now() > deadline)
				break;
			usleep(5000);
		}
		if (r == 0) {
			failf("child %s (pid %d) did not exit within 30s of SIGTERM", names[i], (int)kids[i]);
			kill(kids[i], SIGKILL);
			waitpid(kids[i], &status, 0);
		} else if (r < 0)
			failf("waitpid child %s (pid %d): %s", names[i], (int)kids[i], strerror(errno));
		else if (WIFSIGNALED(status))
			failf("child %s (pid %d) killed by signal %d (%s)", names[i], (int)kids[i],
			      WTERMSIG(status), strsignal(WTERMSIG(status)));
		else if (WEXITSTATUS(status) != 0)
			failf("child %s (pid %d) failed with exit code %d (its reasons are above)",
			      names[i], (int)kids[i], WEXITSTATUS(status));
	}
}

/*
 * serve_one_child is the root's part of a one-child workload: it forks the
 * child "child" running fn, says it is ready, sleeps until SIGTERM and
 * passes the signal on. The root then checks its own memory and calls
 * reap_one_child(kid).
 */
static pid_t serve_one_child(void (*fn)(void))
{
	pid_t kid = spawn("child", fn);
	write_pidfile();
	wait_term();
	forward_term(&kid, 1);
	return kid;
}

/* reap_one_child waits for serve_one_child's child and folds its status into the verdict. */
static void reap_one_child(pid_t kid)
{
	static const char *const names[1] = {"child"};
	reap_kids(&kid, names, 1);
}

/* finish writes the root's verdict to ./result and stdout and exits. */
__attribute__((noreturn)) static void finish(void)
{
	char buf[800];
	int n = format_verdict(buf, sizeof(buf), nfail, first_fail);
	logf_("verdict: %.*s", n - 1, buf);
	write_result(buf, n);
	_exit(nfail ? 1 : 0);
}

/* pat is the 64-bit word expected at index idx of a region seeded with seed. */
static inline uint64_t pat(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed * 0x9E3779B97F4A7C15ULL + idx + 1;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	z ^= z >> 31;
	return z ? z : 1; /* never zero: a zero page must never look filled */
}

/* fill writes the pattern of seed into p[0:len), word index starting at first. */
static void fill(void *p, size_t len, uint64_t seed, uint64_t first)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = pat(seed, first + i);
}

/*
 * check compares every word of p[0:len) with the pattern and reports the
 * first mismatch and how many words differ. Returns 1 when all match.
 */
static int check(const void *p, size_t len, uint64_t seed, uint64_t first, const char *what)
{
	const uint64_t *w = p;
	size_t bad = 0, firstbad = 0;
	uint64_t got = 0, want = 0;
	for (size_t i = 0; i < len / 8; i++) {
		uint64_t e = pat(seed, first + i);
		if (w[i] != e) {
			if (bad++ == 0) {
				firstbad = i;
				got = w[i];
				want = e;
			}
		}
	}
	if (bad)
		failf("%s: %zu of %zu words differ; first at offset 0x%zx (addr %p): got 0x%016llx want 0x%016llx",
		      what, bad, len / 8, firstbad * 8, (const void *)(w + firstbad),
		      (unsigned long long)got, (unsigned long long)want);
	return bad == 0;
}

/* check_zero reports any non-zero byte in p[0:len). */
static int check_zero(const void *p, size_t len, const char *what)
{
	const uint64_t *w = p;
	size_t bad = 0, firstbad = 0;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] && bad++ == 0)
			firstbad = i;
	if (bad)
		failf("%s: must be zero but %zu of %zu words are not; first at offset 0x%zx = 0x%016llx",
		      what, bad, len / 8, firstbad * 8, (unsigned long long)w[firstbad]);
	return bad == 0;
}

/* xmmap is mmap that dies on failure. */
static void *xmmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, const char *what)
{
	void *p = mmap(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		die("mmap %s (len %zu): %s", what, len, strerror(errno));
	return p;
}

/* map_files_stat stats /proc/self/map_files/<start>-<end> of [p, p+len). */
static int map_files_stat(const void *p, size_t len, struct stat *st, const char *what)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + len);
	if (stat(path, st)) {
		failf("%s: stat %s: %s (is the VMA at exactly this range?)", what, path, strerror(errno));
		return 0;
	}
	return 1;
}

/* write_file creates path with len bytes of pattern seed. */
static void write_file(const char *path, size_t len, uint64_t seed)
{
	void *buf = malloc(len);
	if (!buf)
		die("malloc %zu", len);
	fill(buf, len, seed, 0);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	if (write(fd, buf, len) != (ssize_t)len)
		die("write %s: %s", path, strerror(errno));
	close(fd);
	free(buf);
}

/* pread_all reads len bytes at off of path into buf; returns 1 on success. */
static int pread_file(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		failf("open %s: %s", path, strerror(errno));
		return 0;
	}
	ssize_t n = pread(fd, buf, len, off);
	close(fd);
	if (n != (ssize_t)len) {
		failf("pread %s at %lld: got %zd of %zu bytes (%s)", path, (long long)off, n, len,
		      n < 0 ? strerror(errno) : "short");
		return 0;
	}
	return 1;
}

static int pwrite_file(const char *path, const void *buf, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		failf("open %s for writing: %s", path, strerror(errno));
		return 0;
	}
	ssize_t n = pwrite(fd, buf, len, off);
	close(fd);
	if (n != (ssize_t)len) {
		failf("pwrite %s at %lld: %zd of %zu bytes", path, (long long)off, n, len);
		return 0;
	}
	return 1;
}

#endif
