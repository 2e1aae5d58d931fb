/*
 * procstate: process state beyond memory, through the CLI. The root runs
 * under a seccomp filter (getpriority fails with errno 42; its child
 * inherits it), has a POSIX timer sending it SIGUSR1 every 20 ms, holds an
 * exclusive flock on ./state.lock, has a child that exited with 5
 * that it has not reaped (a zombie), a timerfd every 20 ms, a signalfd
 * of SIGUSR2 (blocked) with one SIGUSR2 pending and an inotify watch of
 * ./watched.d for creations. On SIGTERM: the filter
 * still acts in both tasks, the timer still ticks, a process sharing
 * nothing with the tree cannot take the lock, the zombie is still one,
 * with status 5, the timerfd ticks, the signalfd reads the SIGUSR2 and
 * the inotify fd tells of a file made then.
 */
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>

static volatile sig_atomic_t ticks;
static void on_tick(int sig) { (void)sig; ticks++; }

static void filtered(const char *what)
{
	errno = 0;
	if (getpriority(PRIO_PROCESS, 0) != -1 || errno != 42)
		failf("%s: getpriority not refused by the seccomp filter (errno %d)", what, errno);
}

static void child(void)
{
	mark_ready();
	wait_term();
	filtered("child");
}

int main(void)
{
	install_term();
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpriority, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 42),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		die("seccomp: %s", strerror(errno));

	struct sigaction sa = {0};
	sa.sa_handler = on_tick;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	timer_t tm;
	struct itimerspec its = {{0, 20000000}, {0, 20000000}};
	if (timer_create(CLOCK_MONOTONIC, &ev, &tm) || timer_settime(tm, 0, &its, NULL))
		die("timer: %s", strerror(errno));

	int lock = open("state.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX))
		die("flock state.lock: %s", strerror(errno));

	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
	int sfd = signalfd(-1, &usr2, SFD_CLOEXEC | SFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (sfd < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) || kill(getpid(), SIGUSR2))
		die("signalfd/timerfd: %s", strerror(errno));
	int ify = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ify < 0 || (mkdir("watched.d", 0700) && errno != EEXIST) || inotify_add_watch(ify, "watched.d", IN_CREATE) != 1)
		die("inotify: %s", strerror(errno));

	pid_t zombie = fork();
	if (zombie < 0)
		die("fork: %s", strerror(errno));
	if (zombie == 0)
		_exit(5);
	int st;
	if (waitid(P_PID, zombie, NULL, WEXITED | WNOWAIT) != 0) /* exited, left unreaped */
		die("waitid: %s", strerror(errno));

	pid_t kid = serve_one_child(child);
	filtered("root");
	sig_atomic_t seen = ticks;
	for (int i = 0; i < 50 && ticks < seen + 3; i++)
		usleep(10000);
	if (ticks < seen + 3)
		failf("the POSIX timer does not tick (%d in 0.5 s)", (int)(ticks - seen));
	pid_t probe = fork();
	if (probe == 0) {
		int fd = open("state.lock", O_RDWR | O_CLOEXEC);
		_exit(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK ? 0 : 1);
	}
	if (probe < 0 || waitpid(probe, &st, 0) != probe || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		failf("another process could take the flock on state.lock");
	if (waitpid(zombie, &st, WNOHANG) != zombie || !WIFEXITED(st) || WEXITSTATUS(st) != 5)
		failf("the zombie %d: wait status %#x, want exited with 5", (int)zombie, st);
	uint64_t expirations = 0;
	if (read(tfd, &expirations, sizeof(expirations)) != sizeof(expirations) || expirations < 1)
		failf("timerfd: read %llu expirations (%s)", (unsigned long long)expirations, strerror(errno));
	struct signalfd_siginfo si = {0};
	if (read(sfd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR2)
		failf("signalfd: read signal %u, want SIGUSR2 (%s)", si.ssi_signo, strerror(errno));
	int probe_fd = open("watched.d/probe", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	union {
		struct inotify_event ev;
		char buf[sizeof(struct inotify_event) + 256];
	} u;
	if (probe_fd < 0 || read(ify, &u, sizeof(u)) <= 0 || u.ev.wd != 1 || !(u.ev.mask & IN_CREATE) ||
	    strcmp(u.ev.name, "probe"))
		failf("inotify: no creation of watched.d/probe read (fd %d, wd %d, mask %#x, name %s: %s)", probe_fd, u.ev.wd, u.ev.mask, u.ev.len ? u.ev.name : "", strerror(errno));
	if (probe_fd >= 0)
		close(probe_fd);
	reap_one_child(kid);
	finish();
}
