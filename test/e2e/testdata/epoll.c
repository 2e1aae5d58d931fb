/*
 * epoll: eventfds and epoll instances, and a thread blocked in epoll_wait.
 *
 *   efd1  eventfd(7, EFD_SEMAPHORE|EFD_NONBLOCK)
 *   efd2  eventfd with a count above 32 bits (0x100000005), EFD_CLOEXEC
 *   efd3  eventfd(0): the waiter's wake-up
 *   ep    epoll_create1(EPOLL_CLOEXEC) watching efd1 (EPOLLIN, data 0x1111)
 *         and efd2 (EPOLLIN|EPOLLET, data 0xdeadbeefcafe)
 *   ep2   watching ep itself (EPOLLIN, data 42)
 *   ep3   watching efd3 (EPOLLIN, data 0x3333), O_NONBLOCK set with fcntl
 *
 * The waiter thread sits in epoll_wait(ep3, -1). On SIGTERM main writes
 * efd3 and the waiter must wake with data 0x3333; then main checks that ep
 * reports both eventfds with their data, ep2 reports ep, efd1 counts down
 * one at a time from 7 (semaphore), efd2 reads 0x100000005, and every fd
 * kept its flags.
 */
#include "common.h"
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

static int efd1, efd2, efd3, ep, ep2, ep3;
static volatile uint64_t woke_data;
static volatile int waiter_err;

static void *waiter(void *arg)
{
	(void)arg;
	struct epoll_event ev;
	for (;;) {
		int n = epoll_wait(ep3, &ev, 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != 1)
			waiter_err = n < 0 ? errno : 1000 + n;
		else
			woke_data = ev.data.u64;
		return NULL;
	}
}

static void add(int epfd, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
		die("epoll_ctl add %d to %d: %s", fd, epfd, strerror(errno));
}

static void check_flags(int fd, int want, const char *what)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	if ((fl & (O_NONBLOCK | O_ACCMODE)) != (want & (O_NONBLOCK | O_ACCMODE)))
		failf("%s: file flags %#o, want %#o", what, fl, want);
	if (!!(fdfl & FD_CLOEXEC) != !!(want & O_CLOEXEC))
		failf("%s: close-on-exec is %d", what, fdfl & FD_CLOEXEC);
}

int main(void)
{
	install_term();
	efd1 = eventfd(7, EFD_SEMAPHORE | EFD_NONBLOCK);
	efd2 = eventfd(0, EFD_CLOEXEC);
	efd3 = eventfd(0, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ep2 = epoll_create1(0);
	ep3 = epoll_create1(0);
	if (efd1 < 0 || efd2 < 0 || efd3 < 0 || ep < 0 || ep2 < 0 || ep3 < 0)
		die("eventfd/epoll_create1: %s", strerror(errno));
	uint64_t big = 0x100000005ULL;
	if (write(efd2, &big, 8) != 8)
		die("write efd2: %s", strerror(errno));
	if (fcntl(ep3, F_SETFL, O_NONBLOCK))
		die("fcntl ep3: %s", strerror(errno));
	add(ep, efd1, EPOLLIN, 0x1111);
	add(ep, efd2, EPOLLIN | EPOLLET, 0xdeadbeefcafeULL);
	add(ep2, ep, EPOLLIN, 42);
	add(ep3, efd3, EPOLLIN, 0x3333);

	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	pthread_t th;
	if (pthread_create(&th, NULL, waiter, NULL))
		die("pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	usleep(50 * 1000); /* the waiter is in epoll_wait */
	write_pidfile();
	wait_term();

	if (woke_data || waiter_err)
		failf("waiter woke before SIGTERM (data %#llx, err %d)", (unsigned long long)woke_data, waiter_err);
	uint64_t one = 1;
	if (write(efd3, &one, 8) != 8)
		failf("write efd3: %s", strerror(errno));
	signal(SIGALRM, SIG_DFL);
	alarm(20);
	pthread_join(th, NULL);
	alarm(0);
	if (waiter_err)
		failf("waiter: epoll_wait failed (%d)", waiter_err);
	else if (woke_data != 0x3333)
		failf("waiter woke with data %#llx, want 0x3333", (unsigned long long)woke_data);

	struct epoll_event evs[4];
	int n = epoll_wait(ep2, evs, 4, 0);
	if (n != 1 || evs[0].data.u64 != 42)
		failf("ep2: %d events (first data %#llx), want ep with data 42", n,
		      n > 0 ? (unsigned long long)evs[0].data.u64 : 0ULL);
	n = epoll_wait(ep, evs, 4, 0);
	int seen1 = 0, seen2 = 0;
	for (int i = 0; i < n; i++) {
		seen1 |= evs[i].data.u64 == 0x1111 && evs[i].events == EPOLLIN;
		seen2 |= evs[i].data.u64 == 0xdeadbeefcafeULL && evs[i].events == EPOLLIN;
	}
	if (n != 2 || !seen1 || !seen2)
		failf("ep: %d events, efd1 seen %d, efd2 seen %d", n, seen1, seen2);
	for (int i = 7; i > 0; i--) {
		uint64_t v = 0;
		if (read(efd1, &v, 8) != 8 || v != 1) {
			failf("efd1: read %d of 7 gave %llu (%s)", 8 - i, (unsigned long long)v, strerror(errno));
			break;
		}
	}
	uint64_t v;
	if (read(efd1, &v, 8) != -1 || errno != EAGAIN)
		failf("efd1: not empty (or not non-blocking) after 7 reads");
	v = 0;
	if (read(efd2, &v, 8) != 8 || v != big)
		failf("efd2: read %#llx, want %#llx", (unsigned long long)v, (unsigned long long)big);
	check_flags(efd1, O_RDWR | O_NONBLOCK, "efd1");
	check_flags(efd2, O_RDWR | O_CLOEXEC, "efd2");
	check_flags(ep, O_RDWR | O_CLOEXEC, "ep");
	check_flags(ep2, O_RDWR, "ep2");
	check_flags(ep3, O_RDWR | O_NONBLOCK, "ep3");
	finish();
}
