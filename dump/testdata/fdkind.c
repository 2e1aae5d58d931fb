// Workload for fd refusals: holds one descriptor of the kind named by
// argv[1] on fd 3 ("memfd" an unmapped hugetlb memfd, "socket" a bound datagram socket connected to another, "fifo" on a named FIFO
// given as argv[2], "epoll-forked": an epoll shared with a child, which registered an eventfd
// of its own (its fd 4, which the parent lacks), "epoll-stale":
// an epoll watching fd 4, whose eventfd now lives on fd 5 only; "tcp": a TCP socket not listening;
// "tcp-queued": a TCP listener with a connection waiting to be accepted; "udp-queued": a UDP
// socket with a datagram it sent itself not read; "inotify-deleted": an inotify
// watching a file deleted since, kept open on fd 4; "pidfd-outside": a pidfd of its parent, outside
// the tree). Prints "ready PID"; exits 0 on
// SIGTERM.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

int main(int argc, char **argv) {
	close_range(3, ~0U, 0);
	if (argc < 2) return 2;
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	int fd = -1;
	if (!strcmp(argv[1], "memfd")) fd = memfd_create("lonely", MFD_HUGETLB);
	else if (!strcmp(argv[1], "epoll-forked") && (fd = epoll_create1(0)) == 3) {
		int done[2];
		if (pipe2(done, O_CLOEXEC)) return 2;
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* ends with the parent */
			struct epoll_event ev = {.events = EPOLLIN};
			int efd = dup3(eventfd(0, 0), 4, 0);
			if (efd != 4 || epoll_ctl(fd, EPOLL_CTL_ADD, efd, &ev) || write(done[1], "d", 1) != 1) _exit(2);
			for (;;) pause();
		}
		char c;
		if (read(done[0], &c, 1) != 1) return 2;
		close(done[0]);
		close(done[1]);
	}
	else if (!strcmp(argv[1], "pidfd-outside")) fd = syscall(SYS_pidfd_open, getppid(), 0);
	else if (!strcmp(argv[1], "inotify-deleted") && (fd = inotify_init1(0)) == 3) {
		char path[64];
		snprintf(path, sizeof(path), "/tmp/mmcr-fdkind-inotify-%d", getpid());
		int f = open(path, O_CREAT | O_RDWR, 0600);
		if (f != 4 || inotify_add_watch(fd, path, IN_MODIFY) != 1 || unlink(path)) return 2;
	}
	else if (!strcmp(argv[1], "epoll-stale") && (fd = epoll_create1(0)) == 3) {
		struct epoll_event ev = {.events = EPOLLIN};
		int efd = eventfd(0, 0);
		epoll_ctl(fd, EPOLL_CTL_ADD, efd, &ev);
		dup(efd);
		close(efd);
	}
	else if (!strcmp(argv[1], "socket") && (fd = socket(AF_UNIX, SOCK_DGRAM, 0)) == 3) {
		/* A datagram socket bound to a name and connected to another
		 * bound one (on fd 4): restore would lose whom it sends as. */
		struct sockaddr_un a = {.sun_family = AF_UNIX}, b = a;
		int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "mmcr-fdkind-%d", getpid());
		int m = snprintf(b.sun_path + 1, sizeof(b.sun_path) - 1, "mmcr-fdkind-rx-%d", getpid());
		socklen_t la = offsetof(struct sockaddr_un, sun_path) + 1 + n, lb = offsetof(struct sockaddr_un, sun_path) + 1 + m;
		int rx = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (bind(rx, (struct sockaddr *)&b, lb) || bind(fd, (struct sockaddr *)&a, la) || connect(fd, (struct sockaddr *)&b, lb))
			return 2;
	}
	else if (!strcmp(argv[1], "tcp")) fd = socket(AF_INET, SOCK_STREAM, 0);
	else if (!strcmp(argv[1], "udp-queued") && (fd = socket(AF_INET, SOCK_DGRAM, 0)) == 3) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t n = sizeof(a);
		if (bind(fd, (struct sockaddr *)&a, n) || getsockname(fd, (struct sockaddr *)&a, &n) ||
		    sendto(fd, "x", 1, 0, (struct sockaddr *)&a, n) != 1)
			return 2;
	}
	else if (!strcmp(argv[1], "tcp-queued") && (fd = socket(AF_INET, SOCK_STREAM, 0)) == 3) {
		/* A listener with a connection (from fd 4) not accepted yet. */
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t n = sizeof(a);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(fd, (struct sockaddr *)&a, n) || listen(fd, 4) || getsockname(fd, (struct sockaddr *)&a, &n) ||
		    c != 4 || connect(c, (struct sockaddr *)&a, n))
			return 2;
	}
	else if (!strcmp(argv[1], "fifo") && argc > 2) fd = open(argv[2], O_RDWR);
	if (fd != 3) {
		fprintf(stderr, "fdkind: %s landed on fd %d\n", argv[1], fd);
		return 2;
	}
	printf("ready %d\n", getpid());
	fflush(stdout);
	struct timespec ts = {0, 2000000};
	while (!term) nanosleep(&ts, NULL);
	return 0;
}
