/* waitterm.h: wait_for_term(&flag) waits until the SIGTERM handler has set
 * flag (for the dump and restore tests' workloads), without the race of `while (!flag) pause();`: a SIGTERM that
 * comes between the test and pause() runs its handler and pause() then
 * waits for good. A dump makes that window likely: the task it lets go
 * re-enters its interrupted pause() just as the test sends SIGTERM. Here
 * SIGTERM is blocked except inside sigsuspend. */
#ifndef WAITTERM_H
#define WAITTERM_H

#include <signal.h>

static void wait_for_term(volatile sig_atomic_t *flag)
{
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	sigset_t inside = old;
	sigdelset(&inside, SIGTERM);
	while (!*flag)
		sigsuspend(&inside);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

#endif
