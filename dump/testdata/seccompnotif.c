// Workload for the refusal of seccomp user notification: a supervisor
// (this process, not dumped) and a child whose filter sends mkdir to the
// supervisor's listener, which the child handed over and closed. Prints
// "ready CHILD"; on SIGTERM kills the child and exits 0.
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "passfd.h"

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

int main(void)
{
	close_range(3, ~0U, 0);
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 2;
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mkdir, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
			_exit(2);
		int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (listener < 0 || sendfd(sv[1], listener))
			_exit(2);
		close(listener);
		close(sv[1]);
		for (;;)
			pause();
	}
	close(sv[1]);
	int listener = recvfd(sv[0]);
	// EOF once the child has closed its end, after its copy of the fd:
	// a dump must meet neither in the child.
	char eof;
	if (listener < 0 || read(sv[0], &eof, 1) != 0)
		return 2;
	printf("ready %d\n", child);
	fflush(stdout);
	while (!term)
		pause();
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return 0;
}
