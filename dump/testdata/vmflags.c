// Workload for TestDumpVmFlags: anonymous mappings whose smaps VmFlags
// differ (madvise advice, mlock, MAP_NORESERVE, MAP_GROWSDOWN), each with
// a few pages of data.
//
// Prints "ready PID DONTFORK DONTDUMP LOCKED NORESERVE GROWSDOWN" (addresses
// in hex), then waits for SIGTERM and exits 0 if every data page still holds
// its pattern.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../internal/testproc/testdata/waitterm.h"

#define PG 4096
#define PAGES 8
#define NMAP 5

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static void die(const char *what) {
	fprintf(stderr, "vmflags: %s: %s\n", what, strerror(errno));
	exit(2);
}

static unsigned char pat(int m, int i) { return (unsigned char)(m * 37 + i * 11 + 5); }

int main(void) {
	close_range(3, ~0U, 0); // only stdio: inherited descriptors are not the test's
	int extra[NMAP] = {0, 0, 0, MAP_NORESERVE, MAP_GROWSDOWN};
	unsigned char *maps[NMAP];
	for (int m = 0; m < NMAP; m++) {
		maps[m] = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra[m], -1, 0);
		if (maps[m] == MAP_FAILED) die("mmap");
		for (int i = 0; i < PAGES * PG; i++) maps[m][i] = pat(m, i);
	}
	if (madvise(maps[0], PAGES * PG, MADV_DONTFORK)) die("madvise DONTFORK");
	if (madvise(maps[1], PAGES * PG, MADV_DONTDUMP)) die("madvise DONTDUMP");
	if (mlock(maps[2], PAGES * PG)) die("mlock");
	signal(SIGTERM, on_term);
	printf("ready %d", getpid());
	for (int m = 0; m < NMAP; m++) printf(" %lx", (unsigned long)maps[m]);
	printf("\n");
	fflush(stdout);
	wait_for_term(&term);
	for (int m = 0; m < NMAP; m++)
		for (int i = 0; i < PAGES * PG; i++)
			if (maps[m][i] != pat(m, i)) {
				fprintf(stderr, "vmflags: mapping %d byte %d changed\n", m, i);
				return 1;
			}
	return 0;
}
