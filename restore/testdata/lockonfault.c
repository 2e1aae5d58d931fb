/* lockonfault: a mapping locked with mlock2(MLOCK_ONFAULT) across a dump
 * and restore: 64 pages, 2 of them touched. On SIGTERM the task checks its
 * data and its own smaps: the mapping must still be locked on fault
 * ("lo" and "lf") with only its touched pages locked, not all 64 brought
 * in. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/mman.h>

#define PAGES 64
#define PG 4096

int main(void)
{
	install_term();
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
	wait_term();
	if (m[0] != 11 || m[PG] != 22) {
		printf("FAIL data %u %u\n", m[0], m[PG]);
		return 1;
	}
	struct vma_info vi = vma_smaps(m);
	if (!has_flag(&vi, "lo") || !has_flag(&vi, "lf")) {
		printf("FAIL the mapping is not locked on fault (lo lf) any more:%s", vi.flags);
		return 1;
	}
	if (vi.locked_kb > 4 * PG / 1024) {
		printf("FAIL %ld kB locked, want the 8 kB touched\n", vi.locked_kb);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
