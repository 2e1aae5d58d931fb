/* mremapped: private anonymous memory moved next to its like by mremap,
 * as glibc's realloc of a large block does: the kernel keeps the two
 * apart (the moved one keeps the page offset of where it was made), and
 * so must restore, or the maps differ. Three such pairs, read-write,
 * read-only and inaccessible (PROT_NONE, holding data). On SIGTERM it
 * checks their data (the last made readable again first). Prints PASS or the first
 * FAIL. */
#include "vmatest.h"
#include <sys/mman.h>

static long page;

/* pair maps a of 7 pages at a free place, fills both, and moves b (16
 * pages, made elsewhere) right after a; prot is given to both after. */
static char *pair(int prot, char fa, char fb)
{
	char *hole = mmap(NULL, 64 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hole == MAP_FAILED || munmap(hole, 64 * page))
		return NULL;
	char *a = mmap(hole, 7 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	char *b = mmap(NULL, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		return NULL;
	memset(a, fa, 7 * page);
	memset(b, fb, 16 * page);
	if (mremap(b, 16 * page, 16 * page, MREMAP_MAYMOVE | MREMAP_FIXED, a + 7 * page) != a + 7 * page)
		return NULL;
	if (prot != (PROT_READ | PROT_WRITE) && (mprotect(a, 7 * page, prot) || mprotect(a + 7 * page, 16 * page, prot)))
		return NULL;
	return a;
}

static int check(const char *what, const char *a, char fa, char fb)
{
	for (long i = 0; i < 23 * page; i += page / 2)
		if (a[i] != (i < 7 * page ? fa : fb)) {
			printf("FAIL %s: byte %ld is %d\n", what, i, a[i]);
			return 1;
		}
	return 0;
}

int main(void)
{
	page = sysconf(_SC_PAGESIZE);
	char *rw = pair(PROT_READ | PROT_WRITE, 1, 2);
	char *ro = pair(PROT_READ, 3, 4);
	char *none = pair(PROT_NONE, 5, 6);
	if (!rw || !ro || !none)
		return printf("FAIL setup: %m\n"), 1;
	install_term();
	printf("READY\n");
	fflush(stdout);
	wait_term();
	if (check("read-write pair", rw, 1, 2) || check("read-only pair", ro, 3, 4))
		return 1;
	if (mprotect(none, 23 * page, PROT_READ) || check("inaccessible pair", none, 5, 6))
		return 1;
	printf("PASS\n");
	return 0;
}
