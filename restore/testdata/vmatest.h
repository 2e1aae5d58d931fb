/* vmatest.h: what the restore tests' workloads share (guards.c, sealed.c,
 * droppable.c, lockonfault.c, thp.c, mlockall.c, hugetlb.c, pipes.c,
 * sockets.c...): SIGTERM handling, a look at one of the task's own VMAs in
 * /proc/self/smaps, a fork that waits until the child has set itself up,
 * and the parent's end of such a pair. */
#ifndef VMATEST_H
#define VMATEST_H

#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wunused-function"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../internal/testproc/testdata/waitterm.h"

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

static void install_term(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
}

/* wait_term waits for SIGTERM without losing one that comes just before
 * (waitterm.h). */
static void wait_term(void) { wait_for_term(&term); }

/* block_term_in_threads blocks SIGTERM in the calling thread, and so in
 * the threads it makes next: the process's SIGTERM then goes to the
 * thread in wait_term, not to one that would take it while the waiter
 * sleeps on. */
static void block_term_in_threads(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigprocmask(SIG_BLOCK, &s, NULL);
}

/* vma_info is what smaps says of the VMA starting at an address. */
struct vma_info {
	int found;
	char flags[512]; /* the VmFlags line, " rd wr ... " */
	long locked_kb;
	long page_kb; /* KernelPageSize */
};

static struct vma_info vma_smaps(const void *addr)
{
	struct vma_info vi = {0};
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = start == (unsigned long)addr;
			vi.found |= in;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0)
			snprintf(vi.flags, sizeof(vi.flags), "%s", line + 8);
		if (in) {
			sscanf(line, "Locked: %ld kB", &vi.locked_kb);
			sscanf(line, "KernelPageSize: %ld kB", &vi.page_kb);
		}
	}
	if (f)
		fclose(f);
	return vi;
}

/* has_flag says whether the VmFlags line holds the two-letter flag. */
static int has_flag(const struct vma_info *vi, const char *flag)
{
	char want[8];
	snprintf(want, sizeof(want), " %s", flag);
	return strstr(vi->flags, want) != NULL;
}

/* fork_ready forks a child that runs setup (when set) and tells the parent
 * it is done; it returns 0 in the child, the child's pid in the parent once
 * the child is ready, and -1 when it could not. */
static pid_t fork_ready(void (*setup)(void))
{
	int ready[2];
	if (pipe(ready))
		return -1;
	pid_t kid = fork();
	if (kid == 0) {
		close(ready[0]);
		if (setup)
			setup();
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		close(ready[1]);
		return 0;
	}
	close(ready[1]);
	char c;
	/* The byte, then EOF once the child has closed its end: a dump must
	 * not meet the pipe as one of the child's fds. */
	int ok = kid > 0 && read(ready[0], &c, 1) == 1 && read(ready[0], &c, 1) == 0;
	close(ready[0]);
	return ok ? kid : -1;
}

/* finish_parent stops fork_ready's child, folds its exit status (0: its
 * checks passed) into the parent's bad, prints PASS when all is well and
 * returns the exit code. */
static int finish_parent(int bad, pid_t kid)
{
	kill(kid, SIGTERM);
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL child: status %#x\n", st);
		bad = 1;
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}

static int nonblocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

/* shares_nonblocking says (0) whether fd, non-blocking, and its dup are
 * one open file description: clearing O_NONBLOCK through dup clears it for
 * fd too (it is set again after). */
static int shares_nonblocking(const char *what, int fd, int dup)
{
	if (!nonblocking(fd) || fcntl(dup, F_GETFL) != fcntl(fd, F_GETFL)) {
		printf("FAIL parent: %s: fd %d non-blocking %d, its dup %d flags %#o\n", what, fd, nonblocking(fd), dup,
		       fcntl(dup, F_GETFL));
		return 1;
	}
	fcntl(dup, F_SETFL, 0);
	int parted = nonblocking(fd);
	fcntl(dup, F_SETFL, O_NONBLOCK);
	if (parted) {
		printf("FAIL parent: %s: fd %d and its dup %d are two open file descriptions\n", what, fd, dup);
		return 1;
	}
	return 0;
}

/* reap_said_bye stops fork_ready's child, whose last act was to write
 * "bye" to the other end of the parent's (non-blocking) fd, and folds into
 * bad its exit status and whether fd then reads "bye" and EOF: the child
 * held the last other end (mmcr left no open of it behind). */
static int reap_said_bye(int bad, pid_t kid, int fd, const char *what)
{
	kill(kid, SIGTERM);
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL child: status %#x\n", st);
		bad = 1;
	}
	char buf[8] = {0};
	if (!bad) {
		ssize_t r = read(fd, buf, sizeof(buf));
		ssize_t eof = read(fd, buf + 3, 1);
		if (r != 3 || memcmp(buf, "bye", 3) != 0 || eof != 0) {
			printf("FAIL parent: %s after the child: %zd bytes \"%.3s\", then %zd (%s), want \"bye\" and EOF\n", what, r,
			       buf, eof, eof < 0 ? strerror(errno) : "");
			bad = 1;
		}
	}
	return bad;
}

/* run_pair forks fork_ready's child (setup: as there), says READY and on
 * SIGTERM runs check_child in the child and check_parent in the parent
 * (each returns 0 when its checks passed); it returns the exit code. */
static int run_pair(void (*setup)(void), int (*check_child)(void), int (*check_parent)(void))
{
	pid_t kid = fork_ready(setup);
	if (kid == 0) {
		wait_term();
		_exit(check_child());
	}
	if (kid < 0) {
		printf("FAIL child setup\n");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	wait_term();
	return finish_parent(check_parent(), kid);
}

/* opt returns an int socket option of fd, -1 when getsockopt fails. */
static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t n = sizeof(v);
	getsockopt(fd, level, name, &v, &n);
	return v;
}

#endif
