/*
 * anon: private anonymous memory with a full pattern and holes.
 * Usage: anon SIZE_MIB
 * Page classes (by page index i):
 *   i%7 == 3   never touched: must read as zero
 *   i%11 == 5  written, then MADV_DONTNEED: must read as zero
 *   i%13 == 6  only read before dump (zero page mapped): must read as zero
 *   i%17 == 2  only the first half written: second half zero
 *   otherwise  full pattern
 * A second small region is PROT_READ after being filled.
 * The big region's Rss must not grow across checkpoint/restore: holes stay
 * unpopulated (restore must not write zeros into them).
 */
#include "common.h"

static uint8_t *big, *ro;
static size_t size;
#define RO_LEN (64 * PAGE)

static int page_class(size_t i)
{
	if (i % 7 == 3)
		return 1;
	if (i % 11 == 5)
		return 2;
	if (i % 13 == 6)
		return 3;
	if (i % 17 == 2)
		return 4;
	return 0;
}

/* rss_kib returns the Rss of the VMA holding p, from /proc/self/smaps. */
static long rss_kib(const void *p)
{
	char line[512];
	long rss = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (line[0] >= 'A' && line[0] <= 'Z') {
			if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
				break;
		} else if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo <= (unsigned long)p && (unsigned long)p < hi;
	}
	fclose(f);
	return rss;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		die("usage: anon SIZE_MIB");
	size = strtoul(argv[1], NULL, 0) << 20;
	install_term();

	big = xmmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "big");
	volatile uint64_t sink = 0;
	for (size_t i = 0; i < size / PAGE; i++) {
		uint8_t *pg = big + i * PAGE;
		switch (page_class(i)) {
		case 0:
		case 2:
			fill(pg, PAGE, 1, i * PAGE / 8);
			break;
		case 3:
			sink += *(volatile uint64_t *)pg;
			break;
		case 4:
			fill(pg, PAGE / 2, 1, i * PAGE / 8);
			break;
		}
	}
	(void)sink;
	for (size_t i = 0; i < size / PAGE; i++)
		if (page_class(i) == 2 && madvise(big + i * PAGE, PAGE, MADV_DONTNEED))
			die("madvise: %s", strerror(errno));

	ro = xmmap(NULL, RO_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "ro");
	fill(ro, RO_LEN, 2, 0);
	if (mprotect(ro, RO_LEN, PROT_READ))
		die("mprotect: %s", strerror(errno));

	long rss_before = rss_kib(big);
	if (rss_before <= 0)
		die("no Rss for the big region");
	write_pidfile();
	wait_term();

	long rss_after = rss_kib(big);
	if (rss_after > rss_before + rss_before / 100 + 64)
		failf("big region Rss grew from %ld kB to %ld kB (holes populated?)", rss_before, rss_after);

	char what[64];
	for (size_t i = 0; i < size / PAGE && nfail < 20; i++) {
		uint8_t *pg = big + i * PAGE;
		snprintf(what, sizeof(what), "big page %zu (class %d)", i, page_class(i));
		switch (page_class(i)) {
		case 0:
			check(pg, PAGE, 1, i * PAGE / 8, what);
			break;
		case 1:
		case 2:
		case 3:
			check_zero(pg, PAGE, what);
			break;
		case 4:
			check(pg, PAGE / 2, 1, i * PAGE / 8, what);
			check_zero(pg + PAGE / 2, PAGE / 2, what);
			break;
		}
	}
	check(ro, RO_LEN, 2, 0, "read-only region");
	/* The region must still be writable and private after restore. */
	big[0] ^= 0xff;
	big[size - 1] = 0x5a;
	finish();
}
