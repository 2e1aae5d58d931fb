// Workload for the shared-mm refusal: a child made with clone(CLONE_VM)
// shares its parent's address space (as a vfork child does until it
// execs). Prints "ready PARENT CHILD"; on SIGTERM kills the child and
// exits 0.
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static int child(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 2000000};
	for (;;)
		nanosleep(&ts, NULL);
	return 0;
}

int main(void)
{
	close_range(3, ~0U, 0);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	size_t stack = 256 << 10;
	char *st = malloc(stack);
	if (!st)
		return 2;
	pid_t kid = clone(child, st + stack, CLONE_VM | SIGCHLD, NULL);
	if (kid < 0) {
		perror("clone");
		return 2;
	}
	printf("ready %d %d\n", getpid(), kid);
	fflush(stdout);
	struct timespec ts = {0, 2000000};
	while (!term)
		nanosleep(&ts, NULL);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	return 0;
}
