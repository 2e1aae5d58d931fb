// Workload for the dump refusal test: a parent and a child; the child
// holds as its fd 3 the read end of a pipe the test process made and
// still writes to (the workload's fd 3 at start), which dump must refuse:
// the pipe is not the tree's alone. Prints "ready PARENT CHILD"; on SIGTERM
// both exit 0 (the parent after the child, failing if the child failed,
// its counter stopped moving or its pipe lost the test's bytes).
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	// Only stdio and the test's pipe: fds leaked by whoever started the
	// test are not ours to dump.
	close_range(4, ~0U, 0);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	int ready[2];
	if (pipe(ready)) return 2;
	pid_t child = fork();
	if (child < 0) return 2;
	if (child == 0) {
		close(ready[0]);
		if (write(ready[1], "x", 1) != 1) return 2;
		close(ready[1]);
		loop();
		char buf[16] = {0};
		return read(3, buf, sizeof(buf) - 1) == 4 && strcmp(buf, "test") == 0 ? 0 : 3;
	}
	close(ready[1]);
	close(3);
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
