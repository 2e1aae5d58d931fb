/* mlockall: a task that locks its future mappings (mlockall MCL_FUTURE,
 * with MCL_ONFAULT when run as "mlockall onfault") across a dump and
 * restore. The parent maps 16 pages, then locks its future and forks a
 * child, which does not inherit the lock. On SIGTERM each maps 16 new
 * pages and reads its own smaps: the new mapping must be locked in the
 * parent ("lo", plus "lf" and none of its pages in with MCL_ONFAULT, all
 * of them in without) and not in the child; the early mapping must be
 * locked in neither (restore's own mappings must not be). The mappings are
 * shared anonymous ones: those never merge with a neighbour, so each is a
 * VMA of its own. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/mman.h>

#define PAGES 16
#define PG 4096

static unsigned char *early;
static int onfault;

static unsigned char *map_pages(void)
{
	unsigned char *m = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

static int check(const char *who, int locked)
{
	if (early[0] != 7 || early[PAGES * PG - 1] != 9) {
		printf("FAIL %s: early mapping's data %u %u\n", who, early[0], early[PAGES * PG - 1]);
		return 1;
	}
	struct vma_info e = vma_smaps(early);
	if (!e.found || has_flag(&e, "lo")) {
		printf("FAIL %s: early mapping found %d, locked:%s", who, e.found, e.flags);
		return 1;
	}
	unsigned char *m = map_pages();
	if (!m) {
		printf("FAIL %s: mmap: %m\n", who);
		return 1;
	}
	struct vma_info vi = vma_smaps(m);
	long want_kb = locked && !onfault ? PAGES * PG / 1024 : 0;
	if (!vi.found || has_flag(&vi, "lo") != locked || has_flag(&vi, "lf") != (locked && onfault) ||
	    vi.locked_kb != want_kb) {
		printf("FAIL %s: new mapping (found %d) has %ld kB locked, want %ld, flags:%s", who, vi.found,
		       vi.locked_kb, want_kb, vi.flags);
		return 1;
	}
	return 0;
}

static int check_child(void) { return check("child", 0); }
static int check_parent(void) { return check("parent", 1); }

int main(int argc, char **argv)
{
	onfault = argc > 1 && strcmp(argv[1], "onfault") == 0;
	install_term();
	early = map_pages();
	if (!early) {
		printf("FAIL mmap: %m\n");
		return 1;
	}
	early[0] = 7;
	early[PAGES * PG - 1] = 9;
	if (mlockall(MCL_FUTURE | (onfault ? MCL_ONFAULT : 0))) {
		printf("FAIL mlockall: %m\n");
		return 1;
	}
	return run_pair(NULL, check_child, check_parent);
}
