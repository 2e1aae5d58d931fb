/*
 * workload.h: the readiness and SIGTERM protocol shared by the C workloads
 * of the e2e suite (test/e2e/testdata/common.h) and of the benchmark
 * (bench/workloads/bench.h). The driver knows a tree is ready when
 * ./pidfile exists in its run directory, and asks it to verify with
 * SIGTERM. Readiness is files, never a pipe to the driver (a pipe shared
 * with a process outside the tree is not the tree's to dump).
 *
 * The includer defines die(fmt, ...) (noreturn, for setup errors) first.
 * The root's verdict is ./result: "PASS" or "FAIL: <first reason>".
 */
#ifndef MMCR_WORKLOAD_H
#define MMCR_WORKLOAD_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/*
 * install_term sets the SIGTERM handler; forked children inherit it. No
 * SA_RESTART: blocking calls see EINTR.
 */
static void install_term(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		die("sigaction SIGTERM: %s", strerror(errno));
}

/*
 * write_pidfile publishes the root pid once every task is ready. By
 * rename, so that the driver never reads half a pid.
 */
static void write_pidfile(void)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	int fd = open("pidfile.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open pidfile.tmp: %s", strerror(errno));
	if (write(fd, buf, n) != n)
		die("write pidfile.tmp: %s", strerror(errno));
	close(fd);
	if (rename("pidfile.tmp", "pidfile"))
		die("rename pidfile: %s", strerror(errno));
}

/* mark_ready tells the parent this task has finished its setup. The file
 * appears by rename once closed: the parent, which goes on as soon as it
 * sees it, must not find the task still holding it open (a snapshot of the
 * tree's fds taken then would differ from one taken later). */
static void mark_ready(void)
{
	char name[64], tmp[80];
	snprintf(name, sizeof(name), "ready.%d", (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s: %s", tmp, strerror(errno));
	close(fd);
	if (rename(tmp, name))
		die("rename %s: %s", tmp, strerror(errno));
}

/* wait_ready waits (30 s at most) until child pid has called mark_ready. */
static void wait_ready(pid_t pid)
{
	char name[64];
	struct stat st;
	snprintf(name, sizeof(name), "ready.%d", (int)pid);
	for (int i = 0; i < 6000; i++) {
		if (stat(name, &st) == 0) {
			unlink(name);
			return;
		}
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid)
			die("child %d died during setup (status 0x%x)", (int)pid, status);
		usleep(5000);
	}
	die("child %d not ready after 30s", (int)pid);
}

/*
 * format_verdict writes the root's verdict line into buf (of size > 1)
 * and returns its length, cut to fit.
 */
static int format_verdict(char *buf, size_t size, int nfail, const char *first_fail)
{
	int n;
	if (nfail)
		n = snprintf(buf, size, "FAIL: %s (%d failures)\n", first_fail, nfail);
	else
		n = snprintf(buf, size, "PASS\n");
	if (n >= (int)size)
		n = size - 1;
	return n;
}

/*
 * write_result publishes the verdict as ./result, by rename so that the
 * driver never reads half of it. Returns -1 when the write fell short; a
 * file that cannot be created is no result, which the driver reports.
 */
static int write_result(const char *buf, int n)
{
	int ret = 0;
	int fd = open("result.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return 0;
	if (write(fd, buf, n) != n)
		ret = -1;
	close(fd);
	rename("result.tmp", "result");
	return ret;
}

#endif
