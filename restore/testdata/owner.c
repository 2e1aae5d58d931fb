/* owner.c: open file descriptions with an owner and a signal
 * (F_SETOWN_EX, F_SETSIG) and O_ASYNC. The parent owns a pipe's read end
 * with O_ASYNC and signal SIGUSR1; a child owns one end of a socket pair
 * (F_SETOWN to its pid, O_ASYNC, SIGIO) that the parent also holds; a
 * second pipe's read end has an owner but no O_ASYNC. After restore each
 * description says the same through fcntl, and data coming in signals
 * the owner: the parent gets SIGUSR1 with si_fd, the child SIGIO.
 * Prints PASS or the first FAIL. */
#include "vmatest.h"

static volatile sig_atomic_t usr1_fd = -1, sigio;
static void on_usr1(int s, siginfo_t *si, void *uc)
{
	(void)s, (void)uc;
	usr1_fd = si->si_fd;
}
static void on_io(int s) { (void)s; sigio = 1; }

static int pa[2], pb[2], sp[2];

struct f_owner_ex_ {
	int type;
	pid_t pid;
};

/* check says (0) whether fd's owner, signal and O_ASYNC are as given. */
static int check(const char *who, const char *what, int fd, int type, pid_t pid, int sig, int async)
{
	struct f_owner_ex_ ex = {0};
	int gsig = fcntl(fd, F_GETSIG), fl = fcntl(fd, F_GETFL);
	if (fcntl(fd, F_GETOWN_EX, &ex) != 0 || ex.type != type || ex.pid != pid || gsig != sig ||
	    !!(fl & O_ASYNC) != async) {
		printf("FAIL %s: %s: owner type %d pid %d signal %d async %d, want %d %d %d %d\n", who, what, ex.type,
		       ex.pid, gsig, !!(fl & O_ASYNC), type, pid, sig, async);
		return 1;
	}
	return 0;
}

static void child_setup(void)
{
	signal(SIGIO, on_io);
	fcntl(sp[0], F_SETOWN, getpid());
	fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_ASYNC);
}

int main(void)
{
	install_term();
	struct sigaction sa = {0};
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(pa) || pipe(pb) || socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		return printf("FAIL pipe/socketpair: %m\n"), 1;
	struct f_owner_ex_ me = {1 /* F_OWNER_PID */, getpid()};
	if (fcntl(pa[0], F_SETOWN_EX, &me) || fcntl(pa[0], F_SETSIG, SIGUSR1) ||
	    fcntl(pa[0], F_SETFL, fcntl(pa[0], F_GETFL) | O_ASYNC) || fcntl(pb[0], F_SETOWN, getpid()))
		return printf("FAIL fcntl: %m\n"), 1;
	pid_t kid = fork_ready(child_setup);
	if (kid < 0)
		return printf("FAIL fork: %m\n"), 1;
	if (kid == 0) {
		wait_term();
		int bad = check("child", "socket", sp[0], 1, getpid(), 0, 1);
		/* The parent writes into the other end once it has checked. */
		for (int i = 0; i < 200 && !sigio; i++)
			usleep(10000);
		if (!sigio) {
			printf("FAIL child: no SIGIO from its socket\n");
			bad = 1;
		}
		fflush(stdout);
		_exit(bad);
	}
	printf("READY\n");
	fflush(stdout);
	wait_term();
	int bad = check("parent", "pipe a", pa[0], 1, getpid(), SIGUSR1, 1);
	bad |= check("parent", "pipe b", pb[0], 1, getpid(), 0, 0);
	bad |= check("parent", "socket", sp[0], 1, kid, 0, 1);
	if (write(pa[1], "x", 1) != 1)
		bad = 1;
	for (int i = 0; i < 200 && usr1_fd < 0; i++)
		usleep(10000);
	if (usr1_fd != pa[0]) {
		printf("FAIL parent: SIGUSR1 for fd %d, want %d\n", (int)usr1_fd, pa[0]);
		bad = 1;
	}
	kill(kid, SIGTERM);
	usleep(50000);
	if (write(sp[1], "y", 1) != 1)
		bad = 1;
	return finish_parent(bad, kid);
}
