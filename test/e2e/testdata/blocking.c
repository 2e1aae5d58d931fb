/*
 * blocking: tasks interrupted inside blocking syscalls.
 *   R   waitpid(C1) — restarts (ERESTARTSYS) and must not return early
 *   C1  pause() — must return only because of SIGTERM (ERESTARTNOHAND)
 *   C2  nanosleep(3600 s) — may see EINTR after restore (RESTARTBLOCK) but
 *       must never complete early; the remaining time must stay sane
 *   C3  sigsuspend with SIGTERM blocked outside it; the saved mask must
 *       come back after the handler
 * Each task arms alarm(1200) as a watchdog (SIGALRM kills it) in case no
 * SIGTERM ever comes.
 */
#include "common.h"

static void task_c1(void)
{
	alarm(1200);
	mark_ready();
	int r = pause();
	if (!got_term)
		failf("pause() returned %d (%s) without SIGTERM", r, strerror(errno));
}

static void task_c2(void)
{
	double t0 = mono_now();
	struct timespec req = {3600, 0}, rem;
	int spurious = 0;
	alarm(1200);
	mark_ready();
	for (;;) {
		rem = req;
		int r = nanosleep(&req, &rem);
		if (r == 0) {
			failf("nanosleep(3600s) completed after %.1fs", mono_now() - t0);
			return;
		}
		if (errno != EINTR) {
			failf("nanosleep: %s", strerror(errno));
			return;
		}
		double left = rem.tv_sec + rem.tv_nsec / 1e9, el = mono_now() - t0;
		if (left > 3600 || left < 3600 - el - 2) {
			failf("nanosleep remaining %.3fs after %.3fs of a 3600s sleep", left, el);
			return;
		}
		if (got_term)
			break;
		if (++spurious > 3) {
			failf("nanosleep interrupted %d times without a signal", spurious);
			return;
		}
		/* Allowed once after restore (-ERESTART_RESTARTBLOCK may become
		 * -EINTR); no output here: the driver compares fd offsets. */
		req = rem;
	}
	if (spurious)
		logf_("nanosleep returned EINTR without a signal %d time(s) (allowed after restore)", spurious);
}

static void task_c3(void)
{
	sigset_t term, inside, cur;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	sigemptyset(&inside);
	sigaddset(&inside, SIGUSR2);
	alarm(1200);
	mark_ready();
	int r = sigsuspend(&inside);
	if (!got_term)
		failf("sigsuspend returned %d (%s) without SIGTERM", r, strerror(errno));
	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (!sigismember(&cur, SIGTERM) || sigismember(&cur, SIGUSR2))
		failf("mask after sigsuspend: SIGTERM %s, SIGUSR2 %s; want blocked, unblocked",
		      sigismember(&cur, SIGTERM) ? "blocked" : "unblocked",
		      sigismember(&cur, SIGUSR2) ? "blocked" : "unblocked");
}

int main(void)
{
	install_term();
	alarm(1200);
	pid_t kids[3];
	const char *names[3] = {"C1", "C2", "C3"};
	kids[0] = spawn("C1", task_c1);
	kids[1] = spawn("C2", task_c2);
	kids[2] = spawn("C3", task_c3);
	write_pidfile();
	int st;
	pid_t r = waitpid(kids[0], &st, 0);
	if (r != -1 || errno != EINTR)
		failf("waitpid(C1) returned %d (%s) before SIGTERM was forwarded", (int)r, r < 0 ? strerror(errno) : "a status");
	else if (!got_term)
		failf("waitpid(C1) returned EINTR without SIGTERM");
	forward_term(kids, 3);
	reap_kids(kids, names, 3);
	finish();
}
