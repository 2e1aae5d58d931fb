/* zombies: a parent whose children have ended and are not reaped yet:
 * "zexit7" exited with 7, "zusr1" died of SIGUSR1 (its default action),
 * "zkilled" was SIGKILLed, "zleader" led its own process group and exited
 * with 3 while "member", a live child, stays in that group. The parent
 * counts the SIGCHLDs its handler gets; once the four are zombies it says
 * READY. On SIGTERM it checks that no SIGCHLD came since (their ends at
 * restore are not news), that each is still a zombie with its name, that
 * the group led by the zombie is still there, and that wait returns each
 * one's status and no child more; prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/prctl.h>

static volatile sig_atomic_t chld;
static void on_chld(int s) { (void)s; chld++; }

struct zombie {
	const char *name;
	pid_t pid;
	int status; /* as wait reports it */
};

static struct zombie zs[4] = {
	{"zexit7", 0, 7 << 8}, {"zusr1", 0, SIGUSR1}, {"zkilled", 0, SIGKILL}, {"zleader", 0, 3 << 8}};

/* stat_of reads the state and name of pid from /proc/PID/stat. */
static int stat_of(pid_t pid, char *state, char *comm)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = fscanf(f, "%*d (%63[^)]) %c", comm, state);
	fclose(f);
	return n == 2 ? 0 : -1;
}

int main(void)
{
	install_term();
	struct sigaction sa = {0};
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);

	int go[2];
	if (pipe(go))
		return 1;
	for (int i = 0; i < 4; i++) {
		pid_t kid = fork();
		if (kid < 0)
			return 1;
		if (kid == 0) {
			prctl(PR_SET_NAME, zs[i].name);
			signal(SIGCHLD, SIG_DFL);
			switch (i) {
			case 0:
				_exit(7);
			case 1:
				raise(SIGUSR1);
				_exit(1);
			case 2:
				for (;;)
					pause();
			case 3: {
				char c;
				setpgid(0, 0);
				close(go[1]);
				if (read(go[0], &c, 1) != 1)
					_exit(1);
				_exit(3);
			}
			}
		}
		zs[i].pid = kid;
	}
	close(go[0]);
	setpgid(zs[3].pid, zs[3].pid);
	pid_t member = fork_ready(NULL);
	if (member == 0) {
		close(go[1]);
		wait_term();
		_exit(getpgid(0) == zs[3].pid ? 0 : 1);
	}
	if (member < 0 || setpgid(member, zs[3].pid)) {
		printf("FAIL parent: member %d in group %d: %m\n", (int)member, (int)zs[3].pid);
		return 1;
	}
	/* zkilled must have its name before it dies (under load, the kill
	 * could come first). */
	for (int tries = 0; tries < 5000; tries++) {
		char state, comm[64];
		if (stat_of(zs[2].pid, &state, comm) == 0 && strcmp(comm, zs[2].name) == 0)
			break;
		usleep(1000);
	}
	kill(zs[2].pid, SIGKILL);
	if (write(go[1], "x", 1) != 1) /* zleader may exit now */
		return 1;
	close(go[1]);

	for (int i = 0; i < 4; i++) {
		char state = 0, comm[64];
		for (int tries = 0; tries < 5000; tries++) {
			if (stat_of(zs[i].pid, &state, comm) == 0 && state == 'Z')
				break;
			usleep(1000);
		}
		if (state != 'Z') {
			printf("FAIL parent: %s (%d) did not become a zombie\n", zs[i].name, (int)zs[i].pid);
			return 1;
		}
	}
	usleep(10000); /* the last SIGCHLD's handler */
	sig_atomic_t seen = chld;
	printf("READY\n");
	fflush(stdout);
	wait_term();

	int bad = 0;
	if (chld != seen) {
		printf("FAIL parent: %d SIGCHLDs came after the dump\n", (int)(chld - seen));
		bad = 1;
	}
	for (int i = 0; i < 4; i++) {
		char state = 0, comm[64] = "";
		if (stat_of(zs[i].pid, &state, comm) || state != 'Z' || strcmp(comm, zs[i].name) != 0) {
			printf("FAIL parent: %d is %c %s, want zombie %s\n", (int)zs[i].pid, state, comm, zs[i].name);
			bad = 1;
		}
	}
	if (getpgid(zs[3].pid) != zs[3].pid || getpgid(member) != zs[3].pid) {
		printf("FAIL parent: group of zleader %d: %d, of member: %d\n", (int)zs[3].pid, (int)getpgid(zs[3].pid),
		       (int)getpgid(member));
		bad = 1;
	}
	for (int i = 0; i < 4; i++) {
		int st = -1;
		pid_t got = waitpid(zs[i].pid, &st, WNOHANG);
		if (got != zs[i].pid || (st & 0xffff & ~0x80) != zs[i].status) {
			printf("FAIL parent: wait for %s: pid %d status %#x, want %d %#x\n", zs[i].name, (int)got, st,
			       (int)zs[i].pid, zs[i].status);
			bad = 1;
		}
	}
	kill(member, SIGTERM);
	int st;
	if (waitpid(member, &st, 0) != member || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL member: status %#x (0x100: not in zleader's group)\n", st);
		bad = 1;
	}
	if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD) {
		printf("FAIL parent: a child more to wait for\n");
		bad = 1;
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
