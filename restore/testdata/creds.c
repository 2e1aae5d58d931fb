/* creds: groups {100, 200}, no_new_privs, securebits NOROOT|NOROOT_LOCKED,
 * RLIMIT_NOFILE 64 with fd 100 open, and either ("uid") uids 2001/2002/2003 and gids 1001/1002/1003, or
 * ("caps") uid 0 without CAP_NET_RAW, CAP_SYS_BOOT out of the bounding set
 * and CAP_KILL inheritable and ambient. Prints READY, then after SIGTERM
 * checks it is all still so: PASS or FAIL. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

static int caps(struct __user_cap_data_struct d[2], int set) {
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	return syscall(set ? SYS_capset : SYS_capget, &h, d);
}

int main(int argc, char **argv) {
	int uidmode = argc > 1 && strcmp(argv[1], "uid") == 0;
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	gid_t groups[] = {100, 200};
	int fd = open("/dev/null", O_RDONLY);
	const int secbits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
	if (setgroups(2, groups) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || dup2(fd, 100) != 100 ||
	    prctl(PR_SET_SECUREBITS, secbits, 0, 0, 0)) {
		printf("FAIL setup\n");
		return 1;
	}
	if (uidmode && (setresgid(1001, 1002, 1003) || setresuid(2001, 2002, 2003))) {
		printf("FAIL setup ids\n");
		return 1;
	}
	struct __user_cap_data_struct d[2];
	if (!uidmode) {
		caps(d, 0);
		d[0].effective &= ~(1u << CAP_NET_RAW);
		d[0].permitted &= ~(1u << CAP_NET_RAW);
		d[0].inheritable |= 1u << CAP_KILL;
		if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0) || caps(d, 1) ||
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0)) {
			printf("FAIL setup caps\n");
			return 1;
		}
	}
	struct rlimit rl = {64, 4096};
	setrlimit(RLIMIT_NOFILE, &rl);
	printf("READY\n");
	fflush(stdout);
	while (!term)
		usleep(1000);
	uid_t r, e, s;
	gid_t gr, ge, gs;
	int bad = 0;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	if (uidmode && (r != 2001 || e != 2002 || s != 2003 || gr != 1001 || ge != 1002 || gs != 1003)) {
		printf("FAIL ids %d %d %d %d %d %d\n", r, e, s, gr, ge, gs);
		bad = 1;
	}
	gid_t got[8];
	int n = getgroups(8, got);
	if (n != 2 || got[0] != 100 || got[1] != 200) {
		printf("FAIL groups (%d)\n", n);
		bad = 1;
	}
	if (prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != secbits) {
		printf("FAIL securebits %#x want %#x\n", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), secbits);
		bad = 1;
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		printf("FAIL no_new_privs\n");
		bad = 1;
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != 64 || fcntl(100, F_GETFD) < 0) {
		printf("FAIL nofile %lu or fd 100 lost\n", (unsigned long)rl.rlim_cur);
		bad = 1;
	}
	if (!uidmode) {
		struct __user_cap_data_struct now[2];
		caps(now, 0);
		if (now[0].effective != d[0].effective || now[0].permitted != d[0].permitted ||
		    now[0].inheritable != d[0].inheritable || now[1].effective != d[1].effective) {
			printf("FAIL caps %x/%x/%x want %x/%x/%x\n", now[0].effective, now[0].permitted,
			       now[0].inheritable, d[0].effective, d[0].permitted, d[0].inheritable);
			bad = 1;
		}
		if (prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0) != 0 || prctl(PR_CAPBSET_READ, CAP_KILL, 0, 0, 0) != 1) {
			printf("FAIL bounding set\n");
			bad = 1;
		}
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0) != 1) {
			printf("FAIL ambient CAP_KILL\n");
			bad = 1;
		}
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
