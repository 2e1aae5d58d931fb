/*
 * threads: per-thread and per-process state, for the dump and the restore
 * tests. Three threads, each with its own TLS pattern: the main one, one
 * with a sigaltstack (named "altstack"), one with SIGUSR1 blocked and
 * pending. An ITIMER_REAL armed far in the future, a SIGUSR2 handler with
 * SA_RESTART, a soft RLIMIT_NOFILE of 123, umask 027.
 *
 * Prints "WORD PID TID1 TID2 ALTSTACK" when every thread is up, WORD being
 * argv[1] (default READY: each test package has its own ready line). On
 * SIGTERM every thread checks that nothing changed (a dump that left the
 * tree running, or a restore, must keep it all); prints PASS or FAIL lines
 * and exits 0 iff all held.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }
static void on_usr2(int sig) { (void)sig; }

static pthread_barrier_t barrier;
static pid_t tids[3];
static char altstack[64 * 1024];
static volatile int bad;
static __thread unsigned long tls[64];

static void sleep_loop(void)
{
	struct timespec ts = {0, 2000000};
	while (!term)
		nanosleep(&ts, NULL);
}

static void tls_fill(unsigned long seed)
{
	for (int i = 0; i < 64; i++)
		tls[i] = seed * 1000 + i;
}

/* tls_check checks the calling thread's TLS pattern, name and tid. */
static void tls_check(const char *who, unsigned long seed, int idx, const char *comm)
{
	for (int i = 0; i < 64; i++)
		if (tls[i] != seed * 1000 + i) {
			printf("FAIL %s: tls[%d] = %lu\n", who, i, tls[i]);
			bad++;
			break;
		}
	char name[16] = {0};
	prctl(PR_GET_NAME, name);
	if (strcmp(name, comm) != 0) {
		printf("FAIL %s: comm %s, want %s\n", who, name, comm);
		bad++;
	}
	if ((pid_t)syscall(SYS_gettid) != tids[idx]) {
		printf("FAIL %s: tid %ld, want %d\n", who, syscall(SYS_gettid), tids[idx]);
		bad++;
	}
}

static void *with_altstack(void *arg)
{
	(void)arg;
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	if (sigaltstack(&ss, NULL)) {
		printf("FAIL sigaltstack\n");
		bad++;
	}
	if (pthread_setname_np(pthread_self(), "altstack")) {
		printf("FAIL pthread_setname_np\n");
		bad++;
	}
	tids[1] = (pid_t)syscall(SYS_gettid);
	tls_fill(1);
	pthread_barrier_wait(&barrier);
	sleep_loop();
	stack_t now;
	sigaltstack(NULL, &now);
	if (now.ss_sp != altstack || now.ss_size != sizeof altstack) {
		printf("FAIL altstack %p %zu\n", now.ss_sp, now.ss_size);
		bad++;
	}
	tls_check("altstack thread", 1, 1, "altstack");
	return NULL;
}

static void *with_mask(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	tids[2] = (pid_t)syscall(SYS_gettid);
	tls_fill(2);
	pthread_barrier_wait(&barrier);
	sleep_loop();
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	if (!sigismember(&now, SIGUSR1)) {
		printf("FAIL mask lost SIGUSR1\n");
		bad++;
	}
	sigpending(&now);
	if (!sigismember(&now, SIGUSR1)) {
		printf("FAIL pending SIGUSR1 lost\n");
		bad++;
	}
	tls_check("mask thread", 2, 2, "threads");
	return NULL;
}

int main(int argc, char **argv)
{
	const char *word = argc > 1 ? argv[1] : "READY";
	/* Only stdio: fds leaked by whoever started the test are not ours to dump. */
	close_range(3, ~0U, 0);
	umask(027);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 123;
	setrlimit(RLIMIT_NOFILE, &rl);
	struct itimerval it = {.it_interval = {1000, 0}, .it_value = {1000, 0}};
	setitimer(ITIMER_REAL, &it, NULL);
	tids[0] = getpid();
	tls_fill(7);

	/* Only the main thread takes SIGTERM. */
	sigset_t s, old;
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &s, &old);
	pthread_barrier_init(&barrier, NULL, 3);
	pthread_t a, b;
	pthread_create(&a, NULL, with_altstack, NULL);
	pthread_create(&b, NULL, with_mask, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_barrier_wait(&barrier);
	syscall(SYS_tgkill, getpid(), tids[2], SIGUSR1);
	printf("%s %d %d %d %lx\n", word, getpid(), tids[1], tids[2], (unsigned long)altstack);
	fflush(stdout);
	sleep_loop();
	/* The others see term after their next nanosleep. */
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	tls_check("main", 7, 0, "threads");
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != 123) {
		printf("FAIL rlimit %lu\n", (unsigned long)rl.rlim_cur);
		bad++;
	}
	getitimer(ITIMER_REAL, &it);
	if (it.it_value.tv_sec < 900 || it.it_interval.tv_sec != 1000) {
		printf("FAIL itimer %ld %ld\n", (long)it.it_value.tv_sec, (long)it.it_interval.tv_sec);
		bad++;
	}
	mode_t m = umask(0);
	if (m != 027) {
		printf("FAIL umask %o\n", m);
		bad++;
	}
	if (bad)
		fprintf(stderr, "threads: check failed (%d)\n", bad);
	else
		printf("PASS\n");
	fflush(stdout);
	return bad ? 1 : 0;
}
