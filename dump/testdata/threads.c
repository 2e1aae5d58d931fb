// Workload for per-thread and per-process state: three threads (one with
// a sigaltstack, named "altstack", one with SIGUSR1 blocked), an ITIMER_REAL armed far in
// the future, a SIGUSR2 handler with SA_RESTART, RLIMIT_NOFILE soft 123,
// umask 027. Prints "ready PID TID1 TID2 ALTSTACK" when every thread is
// up; on SIGTERM checks that nothing changed and exits 0.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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
static pid_t tids[2];
static char altstack[64 * 1024];
static int bad;

static void sleep_loop(void) {
	struct timespec ts = {0, 2000000};
	while (!term) nanosleep(&ts, NULL);
}

static void *with_altstack(void *arg) {
	(void)arg;
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	if (sigaltstack(&ss, NULL)) bad++;
	if (pthread_setname_np(pthread_self(), "altstack")) bad++;
	tids[0] = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&barrier);
	sleep_loop();
	stack_t now;
	sigaltstack(NULL, &now);
	if (now.ss_sp != altstack || now.ss_size != sizeof altstack) bad++;
	return NULL;
}

static void *with_mask(void *arg) {
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	tids[1] = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&barrier);
	sleep_loop();
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	if (!sigismember(&now, SIGUSR1)) bad++;
	return NULL;
}

int main(void) {
	// Only stdio: fds leaked by whoever started the test are not ours to dump.
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

	// Only the main thread takes SIGTERM.
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
	printf("ready %d %d %d %lx\n", getpid(), tids[0], tids[1], (unsigned long)altstack);
	fflush(stdout);
	sleep_loop();
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != 123) bad++;
	if (bad) fprintf(stderr, "threads: check failed (%d)\n", bad);
	return bad ? 1 : 0;
}
