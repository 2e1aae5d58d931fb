/* sealed: mappings sealed with mseal (Linux 6.10+) across a dump and
 * restore. The parent fills and seals 8 private anonymous pages, forks a
 * child (which inherits the sealed mapping) and seals a second, read-only
 * mapping after the fork, which the child therefore has unsealed. Both
 * print their readiness (or SKIP without mseal), sleep until SIGTERM, then
 * check their data, that smaps marks exactly the sealed mappings "sl", and
 * that munmap of a sealed one fails with EPERM. The parent prints PASS or
 * the first FAIL (the child's comes back in its status). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define SYS_mseal_ 462

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

/* sealed_flag says whether smaps marks the VMA at addr "sl" (-1: absent). */
static int sealed_flag(void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in = 0, found = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = start == (unsigned long)addr;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0)
			found = strstr(line, " sl") != NULL;
	}
	fclose(f);
	return found;
}

static int check(const char *who, unsigned char *a, int a_sealed, unsigned char *b, int b_sealed)
{
	for (int i = 0; i < 8 * PG; i += PG)
		if (a[i] != (unsigned char)(i / PG + 1)) {
			printf("FAIL %s: sealed page %d holds %u\n", who, i / PG, a[i]);
			return 1;
		}
	if (b[0] != 77) {
		printf("FAIL %s: read-only page holds %u\n", who, b[0]);
		return 1;
	}
	if (sealed_flag(a) != a_sealed || sealed_flag(b) != b_sealed) {
		printf("FAIL %s: sealed flags %d %d, want %d %d\n", who, sealed_flag(a), sealed_flag(b), a_sealed, b_sealed);
		return 1;
	}
	if (munmap(a, 8 * PG) == 0 || errno != EPERM) {
		printf("FAIL %s: munmap of the sealed mapping: %s\n", who, strerror(errno));
		return 1;
	}
	return 0;
}

int main(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	unsigned char *a = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *b = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED) {
		printf("FAIL mmap\n");
		return 1;
	}
	for (int i = 0; i < 8; i++)
		memset(a + i * PG, i + 1, PG);
	b[0] = 77;
	mprotect(b, PG, PROT_READ);
	if (syscall(SYS_mseal_, a, 8 * PG, 0)) {
		printf(errno == ENOSYS ? "SKIP no mseal\n" : "FAIL mseal: %m\n");
		return errno == ENOSYS ? 0 : 1;
	}
	int ready[2];
	if (pipe(ready)) {
		printf("FAIL pipe\n");
		return 1;
	}
	pid_t kid = fork();
	if (kid == 0) {
		close(ready[0]);
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		close(ready[1]);
		while (!term)
			pause();
		_exit(check("child", a, 1, b, 0));
	}
	close(ready[1]);
	char c;
	if (kid < 0 || read(ready[0], &c, 1) != 1) {
		printf("FAIL child setup\n");
		return 1;
	}
	close(ready[0]);
	if (syscall(SYS_mseal_, b, PG, 0)) {
		printf("FAIL mseal read-only: %m\n");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	while (!term)
		pause();
	int bad = check("parent", a, 1, b, 1);
	kill(kid, SIGTERM);
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL child: status %#x\n", st);
		bad = 1;
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
