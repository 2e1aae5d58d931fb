// Workload for the dump refusal test: a parent and a child; the child
// holds a pipe whose read end is fd 3, which dump must refuse.
// Prints "ready PARENT CHILD"; on SIGTERM both exit 0 (the parent after
// the child, failing if the child failed or its counter stopped moving).
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static void loop(void) {
	struct timespec ts = {0, 2000000};
	while (!term) nanosleep(&ts, NULL);
}

int main(void) {
	// Only stdio: fds leaked by whoever started the test are not ours to dump.
	close_range(3, ~0U, 0);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	int ready[2];
	if (pipe(ready)) return 2;
	pid_t child = fork();
	if (child < 0) return 2;
	if (child == 0) {
		close(ready[0]);
		int p[2];
		if (pipe(p)) return 2;
		if (p[0] != 3 && dup2(p[0], 3) < 0) return 2;
		if (write(ready[1], "x", 1) != 1) return 2;
		close(ready[1]);
		loop();
		return 0;
	}
	close(ready[1]);
	char x;
	/* The byte, then EOF once the child has closed its end. */
	if (read(ready[0], &x, 1) != 1 || read(ready[0], &x, 1) != 0) return 2;
	close(ready[0]);
	printf("ready %d %d\n", getpid(), child);
	fflush(stdout);
	loop();
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) < 0) return 2;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
