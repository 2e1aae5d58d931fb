/*
 * signals: handlers, blocked mask, sigaltstack and pending signals.
 * Before dump: handlers for SIGUSR1 (SA_SIGINFO|SA_ONSTACK, sa_mask
 * SIGUSR2), SIGUSR2, SIGRTMIN+3 (SA_SIGINFO|SA_RESTART); SIGHUP ignored; an
 * alternate signal stack; SIGUSR1, SIGRTMIN+3 and SIGWINCH blocked; SIGUSR1
 * raised (thread-pending) and SIGRTMIN+3 queued twice with values
 * (process-pending).
 * After SIGTERM: every disposition, the mask, the altstack and the pending
 * set equal what they were; unblocking runs SIGUSR1's handler once on the
 * altstack with the right siginfo and SIGRTMIN+3's twice, values in order.
 */
#include "common.h"

#define ALT_LEN (64 * 1024)
static uint8_t altstack[ALT_LEN] __attribute__((aligned(16)));
static struct sigaction before[65];
static sigset_t blocked_before;
static stack_t ss_before;

static volatile int usr1_count, usr1_code, usr1_pid, usr1_onstack, usr1_mask_ok, usr1_sig;
static volatile int rt_count, rt_vals[4], rt_codes[4];

static void usr1_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	int local;
	usr1_sig = sig;
	usr1_count++;
	usr1_code = si->si_code;
	usr1_pid = si->si_pid;
	usr1_onstack = (uint8_t *)&local >= altstack && (uint8_t *)&local < altstack + ALT_LEN;
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	usr1_mask_ok = sigismember(&cur, SIGUSR2) && sigismember(&cur, SIGUSR1);
}

static void usr2_handler(int sig) { (void)sig; }

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (rt_count < 4) {
		rt_vals[rt_count] = si->si_value.sival_int;
		rt_codes[rt_count] = si->si_code;
	}
	rt_count++;
}

static void set(int sig, void *fn, int flags, int masked)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = fn;
	else
		sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (masked)
		sigaddset(&sa.sa_mask, masked);
	if (sigaction(sig, &sa, NULL))
		die("sigaction %d: %s", sig, strerror(errno));
}

static int same_set(const sigset_t *a, const sigset_t *b, int *diff)
{
	for (int s = 1; s <= 64; s++)
		if (sigismember(a, s) != sigismember(b, s)) {
			*diff = s;
			return 0;
		}
	return 1;
}

int main(void)
{
	install_term();
	set(SIGUSR1, usr1_handler, SA_SIGINFO | SA_ONSTACK, SIGUSR2);
	set(SIGUSR2, usr2_handler, 0, 0);
	set(SIGRTMIN + 3, rt_handler, SA_SIGINFO | SA_RESTART, 0);
	signal(SIGHUP, SIG_IGN);
	stack_t ss = {.ss_sp = altstack, .ss_size = ALT_LEN, .ss_flags = 0};
	if (sigaltstack(&ss, NULL))
		die("sigaltstack: %s", strerror(errno));
	sigset_t blk;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR1);
	sigaddset(&blk, SIGRTMIN + 3);
	sigaddset(&blk, SIGWINCH);
	sigprocmask(SIG_BLOCK, &blk, NULL);
	raise(SIGUSR1);
	union sigval v1 = {.sival_int = 0x1234}, v2 = {.sival_int = 0x5678};
	if (sigqueue(getpid(), SIGRTMIN + 3, v1) || sigqueue(getpid(), SIGRTMIN + 3, v2))
		die("sigqueue: %s", strerror(errno));

	for (int s = 1; s <= 64; s++)
		if (s != SIGKILL && s != SIGSTOP && !(s > 31 && s < SIGRTMIN))
			sigaction(s, NULL, &before[s]);
	sigprocmask(SIG_BLOCK, NULL, &blocked_before);
	sigaltstack(NULL, &ss_before);

	write_pidfile();
	wait_term();

	for (int s = 1; s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP || (s > 31 && s < SIGRTMIN))
			continue;
		struct sigaction now;
		sigaction(s, NULL, &now);
		int d;
		if ((void *)now.sa_handler != (void *)before[s].sa_handler)
			failf("signal %d: handler %p, was %p", s, (void *)now.sa_handler, (void *)before[s].sa_handler);
		if (now.sa_flags != before[s].sa_flags)
			failf("signal %d: sa_flags 0x%x, was 0x%x", s, now.sa_flags, before[s].sa_flags);
		if ((void *)now.sa_restorer != (void *)before[s].sa_restorer)
			failf("signal %d: sa_restorer %p, was %p", s, (void *)now.sa_restorer, (void *)before[s].sa_restorer);
		if (!same_set(&now.sa_mask, &before[s].sa_mask, &d))
			failf("signal %d: sa_mask differs at signal %d", s, d);
	}
	sigset_t cur, pend, want_pend;
	int d;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (!same_set(&cur, &blocked_before, &d))
		failf("blocked mask differs at signal %d (now %s)", d, sigismember(&cur, d) ? "blocked" : "unblocked");
	stack_t ss_now;
	sigaltstack(NULL, &ss_now);
	if (ss_now.ss_sp != ss_before.ss_sp || ss_now.ss_size != ss_before.ss_size || ss_now.ss_flags != ss_before.ss_flags)
		failf("sigaltstack %p/%zu/%d, was %p/%zu/%d", ss_now.ss_sp, ss_now.ss_size, ss_now.ss_flags,
		      ss_before.ss_sp, ss_before.ss_size, ss_before.ss_flags);
	sigpending(&pend);
	sigemptyset(&want_pend);
	sigaddset(&want_pend, SIGUSR1);
	sigaddset(&want_pend, SIGRTMIN + 3);
	if (!same_set(&pend, &want_pend, &d))
		failf("pending set differs at signal %d (now %s)", d, sigismember(&pend, d) ? "pending" : "not pending");
	if (usr1_count || rt_count)
		failf("handlers ran while blocked: SIGUSR1 %d times, SIGRTMIN+3 %d times", usr1_count, rt_count);

	sigprocmask(SIG_UNBLOCK, &blk, NULL);
	if (usr1_count != 1)
		failf("SIGUSR1 handler ran %d times after unblocking, want 1", usr1_count);
	else {
		if (usr1_sig != SIGUSR1)
			failf("SIGUSR1 handler got signal %d", usr1_sig);
		if (usr1_code != SI_TKILL)
			failf("SIGUSR1 si_code %d, want SI_TKILL (%d)", usr1_code, SI_TKILL);
		if (usr1_pid != getpid())
			failf("SIGUSR1 si_pid %d, want %d", usr1_pid, (int)getpid());
		if (!usr1_onstack)
			failf("SIGUSR1 handler did not run on the alternate stack");
		if (!usr1_mask_ok)
			failf("SIGUSR1 handler ran without SIGUSR1+SIGUSR2 blocked (sa_mask lost)");
	}
	if (rt_count != 2)
		failf("SIGRTMIN+3 handler ran %d times, want 2 (queued signals lost?)", rt_count);
	else if (rt_vals[0] != 0x1234 || rt_vals[1] != 0x5678 || rt_codes[0] != SI_QUEUE || rt_codes[1] != SI_QUEUE)
		failf("SIGRTMIN+3 values 0x%x,0x%x codes %d,%d; want 0x1234,0x5678 SI_QUEUE", rt_vals[0], rt_vals[1],
		      rt_codes[0], rt_codes[1]);
	kill(getpid(), SIGHUP); /* ignored: must not kill us */
	sigpending(&pend);
	if (sigismember(&pend, SIGWINCH))
		failf("SIGWINCH pending but never sent");
	finish();
}
