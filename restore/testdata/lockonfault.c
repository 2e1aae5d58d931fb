/* lockonfault: a mapping locked with mlock2(MLOCK_ONFAULT) across a dump
 * and restore: 64 pages, 2 of them touched. On SIGTERM the task checks its
 * data and its own smaps: the mapping must still be locked on fault
 * ("lo" and "lf") with only its touched pages locked, not all 64 brought
 * in. Prints PASS or the first FAIL. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGES 64
#define PG 4096

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

int main(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	unsigned char *m = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		printf("FAIL mmap\n");
		return 1;
	}
	m[0] = 11;
	m[PG] = 22;
	if (mlock2(m, PAGES * PG, MLOCK_ONFAULT)) {
		printf("FAIL mlock2: %m\n");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	while (!term)
		pause();
	if (m[0] != 11 || m[PG] != 22) {
		printf("FAIL data %u %u\n", m[0], m[PG]);
		return 1;
	}
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, flags = 0;
	long locked = -1;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = start == (unsigned long)m;
			continue;
		}
		if (in && sscanf(line, "Locked: %ld kB", &locked) == 1)
			continue;
		if (in && strncmp(line, "VmFlags:", 8) == 0)
			flags = strstr(line, " lo") && strstr(line, " lf");
	}
	if (!flags) {
		printf("FAIL the mapping is not locked on fault (lo lf) any more\n");
		return 1;
	}
	if (locked < 0 || locked > 4 * PG / 1024) {
		printf("FAIL %ld kB locked, want the 8 kB touched\n", locked);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
