// Workload for the refusal of userfaultfd registrations: a monitor (this
// process, not dumped) and a child that registered a region of its own
// with a userfaultfd, handed the fd to the monitor and closed its copy.
// Prints "ready CHILD START" (START in hex); on SIGTERM kills the child
// and exits 0.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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
	long page = sysconf(_SC_PAGESIZE);
	// Mapped before the fork so that the monitor knows the address.
	char *region = mmap(NULL, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return 2;
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		region[0] = 1; // one page present, the rest for the monitor
		int uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
		if (uffd < 0)
			_exit(3);
		struct uffdio_api api = {.api = UFFD_API};
		struct uffdio_register reg = {.range = {(unsigned long)region, 16 * page}, .mode = UFFDIO_REGISTER_MODE_MISSING};
		if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg) || sendfd(sv[1], uffd))
			_exit(3);
		close(uffd);
		close(sv[1]);
		for (;;)
			pause();
	}
	close(sv[1]);
	int uffd = recvfd(sv[0]);
	// EOF once the child has closed its end, after its copy of the fd:
	// a dump must meet neither in the child.
	char eof;
	if (uffd < 0 || read(sv[0], &eof, 1) != 0)
		return 2;
	printf("ready %d %lx\n", child, (unsigned long)region);
	fflush(stdout);
	while (!term)
		pause();
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return 0;
}
