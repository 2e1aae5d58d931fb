/* droppable: a MAP_DROPPABLE mapping (Linux 6.11+; glibc 2.41+ keeps each
 * thread's getrandom state in one) across a dump and restore. The task
 * fills 16 pages, prints READY (or SKIP when the kernel has no
 * MAP_DROPPABLE) and sleeps until SIGTERM; then each page must hold its
 * pattern (or zeros: the kernel may drop such pages under memory pressure)
 * and its own smaps must still mark the mapping droppable ("dp"). Prints
 * PASS or the first FAIL. */
#include "vmatest.h"
#include <errno.h>
#include <sys/mman.h>

#define MAP_DROPPABLE_ 0x08
#define PAGES 16
#define PG 4096

int main(void)
{
	install_term();
	unsigned char *m = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_DROPPABLE_ | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		printf(errno == EINVAL ? "SKIP no MAP_DROPPABLE\n" : "FAIL mmap: %m\n");
		return errno == EINVAL ? 0 : 1;
	}
	for (int pg = 0; pg < PAGES; pg++)
		memset(m + pg * PG, pg + 1, PG);
	printf("READY\n");
	fflush(stdout);
	wait_term();
	for (int pg = 0; pg < PAGES; pg++) {
		unsigned char c = m[pg * PG];
		if ((c != pg + 1 && c != 0) || m[pg * PG + PG - 1] != c) {
			printf("FAIL page %d holds %u, want %u (or zeros, dropped)\n", pg, c, pg + 1);
			return 1;
		}
	}
	struct vma_info vi = vma_smaps(m);
	if (!has_flag(&vi, "dp")) {
		printf("FAIL the mapping at %p is not droppable (dp) any more:%s", (void *)m, vi.flags);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
