// Workload for freezing a tree that grows during the freeze: two threads
// keep forking children (up to 40 in all, a few ms apart); each child
// sleeps until SIGTERM. Prints "ready PID" at once. On SIGTERM the parent
// stops forking, ends every child and exits 0 if all of them exited 0.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 40

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static atomic_int nchildren;
static pid_t children[MAX_CHILDREN];

static void nap(long ns) {
	struct timespec ts = {0, ns};
	nanosleep(&ts, NULL);
}

static void *forker(void *arg) {
	(void)arg;
	while (!term) {
		int i = atomic_fetch_add(&nchildren, 1);
		if (i >= MAX_CHILDREN) break;
		pid_t pid = fork();
		if (pid == 0) {
			while (!term) nap(2000000);
			_exit(0);
		}
		children[i] = pid;
		nap(3000000);
	}
	return NULL;
}

int main(void) {
	close_range(3, ~0U, 0);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	pthread_t a, b;
	pthread_create(&a, NULL, forker, NULL);
	pthread_create(&b, NULL, forker, NULL);
	printf("ready %d\n", getpid());
	fflush(stdout);
	while (!term) nap(2000000);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	int n = atomic_load(&nchildren), bad = 0;
	if (n > MAX_CHILDREN) n = MAX_CHILDREN;
	for (int i = 0; i < n; i++) {
		if (children[i] <= 0) continue;
		kill(children[i], SIGTERM);
		int st;
		if (waitpid(children[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
	}
	if (bad) fprintf(stderr, "forker: %d children failed\n", bad);
	return bad ? 1 : 0;
}
