// Workload for a signal that is already pending when restore lets the
// tree go: the task sits in a blocking syscall at dump, and the signal's
// handler (no SA_RESTART) must interrupt that syscall with EINTR, as it
// would have without the checkpoint, not run and leave the syscall to
// block again.
//
// Usage: eintr pause|wait [WORD]. pause: the task waits in pause()
// (-ERESTARTNOHAND); wait: in waitpid() for a child that never exits
// (-ERESTARTSYS). Prints "WORD PID" (default READY: each test package has
// its own ready line), then on SIGTERM "PASS" and exits 0 once
// the syscall returned EINTR; a watchdog armed before it blocks prints
// FAIL and exits 3 after 15 s (a syscall that blocked again after the
// handler).
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "FAIL: still blocked after 15 s\n";
	ssize_t w = write(1, msg, sizeof(msg) - 1);
	(void)w;
	_exit(3);
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "pause") && strcmp(argv[1], "wait")))
		return 2;
	const char *word = argc > 2 ? argv[2] : "READY";
	close_range(3, ~0U, 0); /* nothing but stdio: a dump refuses pipes */
	struct sigaction sa = {0};
	sa.sa_handler = on_term; /* no SA_RESTART */
	sigaction(SIGTERM, &sa, NULL);
	pid_t kid = -1;
	if (!strcmp(argv[1], "wait")) {
		kid = fork();
		if (kid < 0)
			return 2;
		if (kid == 0) {
			signal(SIGTERM, SIG_IGN);
			for (;;)
				pause();
		}
	}
	signal(SIGALRM, on_alarm);
	alarm(15);
	printf("%s %d\n", word, (int)getpid());
	fflush(stdout);
	int r, err;
	if (kid < 0)
		r = pause();
	else
		r = waitpid(kid, NULL, 0);
	err = errno;
	alarm(0);
	if (kid > 0) {
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
	}
	if (r != -1 || err != EINTR || !term) {
		printf("FAIL: %s returned %d (%s), handler ran: %d\n", argv[1], r, strerror(err), (int)term);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
