/* droppable: a MAP_DROPPABLE mapping (Linux 6.11+; glibc 2.41+ keeps each
 * thread's getrandom state in one) across a dump and restore. The task
 * fills 16 pages, prints READY (or SKIP when the kernel has no
 * MAP_DROPPABLE) and sleeps until SIGTERM; then each page must hold its
 * pattern (or zeros: the kernel may drop such pages under memory pressure)
 * and its own smaps must still mark the mapping droppable ("dp"). Prints
 * PASS or the first FAIL. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAP_DROPPABLE_ 0x08
#define PAGES 16
#define PG 4096

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

/* droppable_flag says whether smaps marks the VMA at addr "dp". */
static int droppable_flag(unsigned long addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in = 0, found = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = start == addr;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0)
			found = strstr(line, " dp") != NULL;
	}
	fclose(f);
	return found;
}

int main(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	unsigned char *m = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_DROPPABLE_ | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		printf(errno == EINVAL ? "SKIP no MAP_DROPPABLE\n" : "FAIL mmap: %m\n");
		return errno == EINVAL ? 0 : 1;
	}
	for (int pg = 0; pg < PAGES; pg++)
		memset(m + pg * PG, pg + 1, PG);
	printf("READY\n");
	fflush(stdout);
	while (!term)
		pause();
	for (int pg = 0; pg < PAGES; pg++) {
		unsigned char c = m[pg * PG];
		if ((c != pg + 1 && c != 0) || m[pg * PG + PG - 1] != c) {
			printf("FAIL page %d holds %u, want %u (or zeros, dropped)\n", pg, c, pg + 1);
			return 1;
		}
	}
	if (droppable_flag((unsigned long)m) != 1) {
		printf("FAIL the mapping at %p is not droppable (dp) any more\n", (void *)m);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
