/* pidfd: pidfds of the tree's tasks across a dump and restore. The parent
 * holds a non-blocking pidfd of a live child (and a dup of it) and one of
 * a child that exited with 7, unreaped (a zombie). On SIGTERM it checks
 * the zombie's pidfd polls readable and waitid(P_PIDFD) collects its
 * status, and that it can end the live child through its pidfd
 * (pidfd_send_signal) and wait for it through the dup. Prints PASS or
 * the first FAIL. */
#include "vmatest.h"
#include <poll.h>
#include <sys/syscall.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int pidfd_open(pid_t pid, unsigned flags) { return syscall(SYS_pidfd_open, pid, flags); }

int main(void)
{
	install_term();
	pid_t live = fork();
	if (live == 0) {
		signal(SIGTERM, SIG_DFL);
		for (;;)
			pause();
	}
	pid_t dead = fork();
	if (dead == 0)
		_exit(7);
	int plive = pidfd_open(live, O_NONBLOCK);
	int pdead = pidfd_open(dead, 0);
	if (live < 0 || dead < 0 || plive < 0 || pdead < 0)
		return printf("FAIL fork/pidfd_open: %m\n"), 1;
	siginfo_t si;
	if (waitid(P_PID, dead, &si, WEXITED | WNOWAIT)) /* exited, left unreaped */
		return printf("FAIL waitid: %m\n"), 1;
	int plive2 = dup(plive);
	printf("READY\n");
	fflush(stdout);
	wait_term();

	struct pollfd p = {.fd = pdead, .events = POLLIN};
	if (poll(&p, 1, 1000) != 1 || !(p.revents & POLLIN))
		return printf("FAIL the dead child's pidfd does not poll readable\n"), 1;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, pdead, &si, WEXITED) || si.si_pid != dead || si.si_status != 7)
		return printf("FAIL waitid(P_PIDFD) of the dead child: pid %d status %d (%m)\n", si.si_pid, si.si_status), 1;
	if (!(fcntl(plive, F_GETFL) & O_NONBLOCK))
		return printf("FAIL the live child's pidfd lost O_NONBLOCK\n"), 1;
	if (syscall(SYS_pidfd_send_signal, plive, SIGTERM, NULL, 0))
		return printf("FAIL pidfd_send_signal: %m\n"), 1;
	p.fd = plive2;
	if (poll(&p, 1, 5000) != 1)
		return printf("FAIL the live child did not end\n"), 1;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, plive2, &si, WEXITED) || si.si_pid != live || si.si_code != CLD_KILLED || si.si_status != SIGTERM)
		return printf("FAIL waitid(P_PIDFD) of the live child: pid %d code %d status %d (%m)\n", si.si_pid, si.si_code,
			      si.si_status),
		       1;
	printf("PASS\n");
	return 0;
}
