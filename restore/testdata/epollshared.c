/* epollshared: one epoll held by a parent (fd and a dup) and its child,
 * which inherited it across fork. Before the fork the parent registered
 * an eventfd (EPOLLIN, data 0xabc) and a pipe's read end (data 0x777),
 * which the child closed (its epoll lists a target it no longer has; the
 * parent, which registers the targets again, has it). On SIGTERM the parent tells the child
 * to go on; the child writes the eventfd, registers an eventfd of its own
 * in the epoll (data 0xdef) and writes that too, and waits, holding it
 * (closing it would end its registration), until the parent has looked.
 * The parent, through its dup, must see both events: there is one epoll,
 * as before the dump, not one per task. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>

static int full_read(int fd, char *c)
{
	for (;;) {
		ssize_t n = read(fd, c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		return n == 1 ? 0 : -1;
	}
}

int main(void)
{
	install_term();
	int efd = eventfd(0, EFD_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xabc};
	int go[2], ready[2], bye[2], quiet[2];
	struct epoll_event evq = {.events = EPOLLIN, .data.u64 = 0x777};
	if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) || pipe(go) || pipe(ready) || pipe(bye) ||
	    pipe(quiet) || epoll_ctl(ep, EPOLL_CTL_ADD, quiet[0], &evq))
		return printf("FAIL setup: %m\n"), 1;
	int ep2 = dup(ep);
	pid_t child = fork();
	if (child == 0) {
		close(quiet[0]);
		signal(SIGTERM, SIG_IGN);
		char c;
		if (write(ready[1], "r", 1) != 1 || full_read(go[0], &c))
			_exit(2);
		uint64_t one = 1;
		int own = eventfd(0, EFD_NONBLOCK);
		struct epoll_event ev2 = {.events = EPOLLIN, .data.u64 = 0xdef};
		if (write(efd, &one, 8) != 8 || own < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, own, &ev2) ||
		    write(own, &one, 8) != 8)
			_exit(3);
		if (write(ready[1], "d", 1) != 1 || full_read(bye[0], &c))
			_exit(4);
		_exit(0);
	}
	char c;
	if (child < 0 || ep2 < 0 || full_read(ready[0], &c))
		return printf("FAIL fork: %m\n"), 1;
	printf("READY\n");
	fflush(stdout);
	wait_term();

	if (write(go[1], "g", 1) != 1 || full_read(ready[0], &c))
		return printf("FAIL the child did not register: %m\n"), 1;
	struct epoll_event evs[4];
	int n = epoll_wait(ep2, evs, 4, 1000);
	int status;
	if (write(bye[1], "b", 1) != 1 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return printf("FAIL child: status %#x\n", status), 1;
	int abc = 0, def = 0;
	for (int i = 0; i < n; i++) {
		abc += evs[i].data.u64 == 0xabc;
		def += evs[i].data.u64 == 0xdef;
	}
	if (n != 2 || abc != 1 || def != 1)
		return printf("FAIL epoll_wait through the dup: %d events (0xabc %d, 0xdef %d): one epoll no longer\n", n, abc, def), 1;
	if (!(fcntl(ep, F_GETFD) & FD_CLOEXEC) || (fcntl(ep2, F_GETFD) & FD_CLOEXEC))
		return printf("FAIL close-on-exec: the epoll's %d, the dup's %d\n", fcntl(ep, F_GETFD), fcntl(ep2, F_GETFD)), 1;
	printf("PASS\n");
	return 0;
}
