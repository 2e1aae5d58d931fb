/* seccomp: a tree whose threads run under seccomp filters. With
 * no_new_privs set, the parent installs filter A (getpriority fails with
 * errno 42; flag LOG), forks a child (which inherits A) and starts a
 * thread that adds filter B of its own (getpgid fails with errno 43).
 * On SIGTERM each checks that its filters still act (and B only in the
 * thread) and that /proc says filter mode with the right count, and the
 * child adds filter C with TSYNC, which its thread must take; prints
 * PASS or the first FAIL. Run as "seccomp probe" it exits 0 where
 * seccomp filters can be installed. */
#include "vmatest.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static long install(int nr, int err, unsigned flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* filtered says (0) whether getpriority and getpgid fail as the filters
 * of the calling thread say: A always, B when b. */
static int filtered(const char *who, int b)
{
	errno = 0;
	int prio = getpriority(PRIO_PROCESS, 0);
	if (prio != -1 || errno != 42) {
		printf("FAIL %s: getpriority: %d errno %d, want filter A's 42\n", who, prio, errno);
		return 1;
	}
	errno = 0;
	pid_t pg = getpgid(0);
	if (b ? pg != -1 || errno != 43 : pg <= 0) {
		printf("FAIL %s: getpgid: %d errno %d, want %s\n", who, (int)pg, errno, b ? "filter B's 43" : "the group");
		return 1;
	}
	return 0;
}

/* status_says checks /proc/self/task/TID/status: filter mode, n filters. */
static int status_says(const char *who, int n)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/task/%ld/status", (long)syscall(SYS_gettid));
	FILE *f = fopen(path, "r");
	int mode = -1, count = -1;
	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "Seccomp: %d", &mode);
		sscanf(line, "Seccomp_filters: %d", &count);
	}
	if (f)
		fclose(f);
	if (mode != 2 || count != n) {
		printf("FAIL %s: seccomp mode %d with %d filters, want 2 with %d\n", who, mode, count, n);
		return 1;
	}
	return 0;
}

static volatile int thread_ready, thread_check, thread_bad = -1;

static void *worker(void *arg)
{
	(void)arg;
	if (install(__NR_getpgid, 43, 0)) {
		printf("FAIL thread: install filter B: %m\n");
		thread_bad = 1;
		thread_ready = 1;
		return NULL;
	}
	thread_ready = 1;
	while (!thread_check)
		usleep(1000);
	thread_bad = filtered("thread", 1) | status_says("thread", 2);
	return NULL;
}

/* The child's thread, made after filter A: its filter is A itself, shared
 * with the child's main thread. */
static volatile int child_check, child_result = -1;

static void *child_thread(void *arg)
{
	(void)arg;
	while (!child_check)
		usleep(1000);
	errno = 0; /* glibc's getppid() sets no errno: getppid "cannot fail" */
	child_result = syscall(SYS_getppid) == -1 && errno == 44 ? 0 : 1;
	if (child_result)
		printf("FAIL child's thread: filter C (TSYNC) did not reach it\n");
	return NULL;
}

static pthread_t child_th;

static void child_setup(void)
{
	block_term_in_threads();
	if (pthread_create(&child_th, NULL, child_thread, NULL))
		_exit(2);
}

/* child_main checks A, then adds filter C (getppid fails with errno 44)
 * with TSYNC: the kernel takes it only if every thread's filters are the
 * caller's (shared, as inherited), and C then acts in the thread too. */
static void child_main(void)
{
	wait_term();
	int bad = filtered("child", 0) | status_says("child", 1);
	long r = install(__NR_getppid, 44, SECCOMP_FILTER_FLAG_TSYNC);
	if (r != 0) {
		printf("FAIL child: seccomp TSYNC: %ld (a thread whose filters are not the caller's)\n", r);
		bad = 1;
	}
	child_check = 1;
	pthread_join(child_th, NULL);
	fflush(stdout);
	_exit(bad | (child_result != 0));
}

int main(int argc, char **argv)
{
	install_term();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || install(__NR_getpriority, 42, SECCOMP_FILTER_FLAG_LOG)) {
		printf("FAIL parent: install filter A: %m\n");
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], "probe") == 0)
		return 0;
	pid_t kid = fork_ready(child_setup);
	if (kid == 0)
		child_main();
	block_term_in_threads();
	pthread_t th;
	if (kid < 0 || pthread_create(&th, NULL, worker, NULL)) {
		printf("FAIL parent: fork or thread\n");
		return 1;
	}
	while (!thread_ready)
		usleep(1000);
	printf("READY\n");
	fflush(stdout);
	wait_term();

	int bad = filtered("parent", 0) | status_says("parent", 1);
	thread_check = 1;
	pthread_join(th, NULL);
	bad |= thread_bad;
	return finish_parent(bad, kid);
}
