/* sigtimerfd: signalfds and timerfds across a dump and restore. A
 * signalfd of SIGUSR1 and SIGUSR2 (blocked), non-blocking, with a dup of
 * it, and SIGUSR1 pending for it; timerfds: "tick" (every 400 ms after
 * 20 ms), expired and not read at dump; "hour" once in an hour; "abs" at
 * an absolute CLOCK_REALTIME time an hour on, cancelled on a clock
 * change; "off" disarmed, with a period of 2 s. On SIGTERM it checks the
 * signalfd reads the pending SIGUSR1 through either fd (one description:
 * then neither has more), each timer's time left and period, that "tick"
 * has its expirations at once and goes on ticking, and the settime flags
 * fdinfo shows. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>

static int sfd, sfd2, tick, hour, absfd, off;

static int fail(const char *what, long a, long b)
{
	printf("FAIL %s: %ld, want %ld\n", what, a, b);
	return 1;
}

static long long left_ns(int fd, long long *interval)
{
	struct itimerspec its;
	if (timerfd_gettime(fd, &its))
		return -1;
	*interval = its.it_interval.tv_sec * 1000000000LL + its.it_interval.tv_nsec;
	return its.it_value.tv_sec * 1000000000LL + its.it_value.tv_nsec;
}

/* settime_flags reads "settime flags" of fd's fdinfo (octal). */
static int settime_flags(int fd)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	int flags = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "settime flags: %o", &flags) == 1)
			break;
	if (f)
		fclose(f);
	return flags;
}

static int check(void)
{
	struct signalfd_siginfo si;
	if (read(sfd2, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR1)
		return fail("signalfd read: signal", si.ssi_signo, SIGUSR1);
	if (read(sfd, &si, sizeof(si)) != -1 || errno != EAGAIN)
		return fail("signalfd: a second signal, or blocking (errno)", errno, EAGAIN);
	if (!(fcntl(sfd, F_GETFL) & O_NONBLOCK) || !(fcntl(sfd2, F_GETFL) & O_NONBLOCK))
		return fail("signalfd: O_NONBLOCK", 0, 1);
	/* Its expirations at dump are there at once: a read that would block
	 * fails. */
	uint64_t n = 0;
	fcntl(tick, F_SETFL, O_NONBLOCK);
	if (read(tick, &n, sizeof(n)) != sizeof(n) || n < 1)
		return fail("tick: expirations read at once", (long)n, 1);
	fcntl(tick, F_SETFL, 0);
	if (read(tick, &n, sizeof(n)) != sizeof(n) || n < 1) /* blocks up to 400 ms: it ticks on */
		return fail("tick: next expirations", (long)n, 1);
	long long iv;
	long long left = left_ns(hour, &iv);
	if (left < 3500e9 || left > 3600e9 || iv != 0)
		return fail("hour: seconds left", (long)(left / 1000000000), 3600);
	left = left_ns(absfd, &iv);
	if (left < 3500e9 || left > 3600e9 || settime_flags(absfd) != (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET))
		return fail("abs: seconds left", (long)(left / 1000000000), 3600);
	left = left_ns(off, &iv);
	if (left != 0 || iv != 2000000000LL)
		return fail("off: ms left", (long)(left / 1000000), 0);
	return 0;
}

int main(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	sfd2 = dup(sfd);
	tick = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	hour = timerfd_create(CLOCK_BOOTTIME, 0);
	absfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	off = timerfd_create(CLOCK_MONOTONIC, 0);
	if (sfd < 0 || sfd2 < 0 || tick < 0 || hour < 0 || absfd < 0 || off < 0)
		return printf("FAIL signalfd/timerfd_create: %m\n"), 1;
	/* First expiry in 20 ms, then every 400 ms: restore re-arms it for a
	 * period, so a read soon after restore finds only the dumped ticks. */
	struct itimerspec t = {{0, 400000000}, {0, 20000000}};
	struct itimerspec h = {{0, 0}, {3600, 0}};
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct itimerspec a = {{0, 0}, {now.tv_sec + 3600, 0}};
	struct itimerspec o = {{2, 0}, {0, 0}};
	if (timerfd_settime(tick, 0, &t, NULL) || timerfd_settime(hour, 0, &h, NULL) ||
	    timerfd_settime(absfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &a, NULL) ||
	    timerfd_settime(off, 0, &o, NULL))
		return printf("FAIL timerfd_settime: %m\n"), 1;
	kill(getpid(), SIGUSR1);
	usleep(100000); /* tick expires, unread */
	install_term();
	printf("READY\n");
	fflush(stdout);
	wait_term();
	if (check())
		return 1;
	printf("PASS\n");
	return 0;
}
