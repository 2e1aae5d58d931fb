/*
 * heap: brk heap, malloc of many sizes, stack growth and vdso clocks.
 * Before dump: malloc blocks of sizes 1 B..4 MiB (small ones on the brk
 * heap, large ones mmap'ed by glibc), grow brk with sbrk, keep a 512 KiB
 * patterned array on a deeper stack, read the vdso clocks.
 * After restore: the kernel's brk is unchanged; every block and the stack
 * array still hold their patterns; brk grows further; the stack grows by
 * 4 MiB more; malloc/free still work; vdso clocks agree with the syscall
 * and have not gone backwards.
 */
#include "common.h"
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>

#define NB 200
static uint8_t *blk[NB];
static size_t blen[NB];
static uint8_t *brk_area;
static unsigned long brk_before;
static struct timespec mono_before, real_before;

static unsigned long kbrk(void) { return (unsigned long)syscall(SYS_brk, 0); }

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (a->tv_sec - b->tv_sec) + (a->tv_nsec - b->tv_nsec) / 1e9;
}

static void check_clocks(const char *when)
{
	static const clockid_t ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct timespec v, s, v2;
		if (clock_gettime(ids[i], &v) || syscall(SYS_clock_gettime, ids[i], &s) || clock_gettime(ids[i], &v2)) {
			failf("%s: clock_gettime(%d): %s", when, (int)ids[i], strerror(errno));
			continue;
		}
		if (ts_cmp(&v, &s) > 0 || ts_cmp(&s, &v2) > 0)
			failf("%s: clock %d: vdso %ld.%09ld, syscall %ld.%09ld, vdso %ld.%09ld not monotonic", when,
			      (int)ids[i], (long)v.tv_sec, v.tv_nsec, (long)s.tv_sec, s.tv_nsec, (long)v2.tv_sec, v2.tv_nsec);
		if (ts_diff(&v2, &v) > 1.0)
			failf("%s: clock %d: two vdso reads %.3fs apart", when, (int)ids[i], ts_diff(&v2, &v));
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	time_t t = time(NULL);
	if (labs((long)(t - tv.tv_sec)) > 1)
		failf("%s: time() %ld vs gettimeofday %ld", when, (long)t, (long)tv.tv_sec);
}

/* deep keeps a patterned 512 KiB array on the stack while waiting. */
static void deep(int level)
{
	uint8_t arr[64 * 1024];
	fill(arr, sizeof(arr), 600 + level, 0);
	if (level < 7)
		deep(level + 1);
	else {
		write_pidfile();
		wait_term();
	}
	char what[48];
	snprintf(what, sizeof(what), "stack array at level %d", level);
	check(arr, sizeof(arr), 600 + level, 0, what);
	__asm__ volatile("" ::"r"(arr) : "memory");
}

/* grow uses 64 KiB of stack per level, depth levels deep, and checks it on return. */
static int grow(int level, int depth)
{
	uint8_t arr[64 * 1024];
	fill(arr, sizeof(arr), 700 + level, 0);
	int ok = 1;
	if (level < depth)
		ok = grow(level + 1, depth);
	ok &= check(arr, sizeof(arr), 700 + level, 0, "grown stack frame");
	__asm__ volatile("" ::"r"(arr) : "memory");
	return ok;
}

int main(void)
{
	install_term();
	size_t sz = 1;
	for (int i = 0; i < NB; i++) {
		blen[i] = sz;
		blk[i] = malloc(sz);
		if (!blk[i])
			die("malloc %zu", sz);
		for (size_t j = 0; j < sz; j++)
			blk[i][j] = (uint8_t)(pat(800 + i, j / 8) >> (8 * (j % 8)));
		sz = sz * 11 / 10 + 1;
		if (sz > (4u << 20))
			sz = 3 + i;
	}
	brk_area = sbrk(1 << 20);
	if (brk_area == (void *)-1)
		die("sbrk: %s", strerror(errno));
	fill(brk_area, 1 << 20, 801, 0);
	brk_before = kbrk();
	if (brk_before != (unsigned long)brk_area + (1 << 20))
		die("brk %lx, expected %lx", brk_before, (unsigned long)brk_area + (1 << 20));
	check_clocks("before dump");
	clock_gettime(CLOCK_MONOTONIC, &mono_before);
	clock_gettime(CLOCK_REALTIME, &real_before);

	deep(0);

	unsigned long b = kbrk();
	if (b != brk_before)
		failf("kernel brk is 0x%lx after restore, was 0x%lx", b, brk_before);
	check(brk_area, 1 << 20, 801, 0, "sbrk area");
	for (int i = 0; i < NB; i++) {
		size_t bad = 0;
		for (size_t j = 0; j < blen[i]; j++)
			bad += blk[i][j] != (uint8_t)(pat(800 + i, j / 8) >> (8 * (j % 8)));
		if (bad)
			failf("malloc block %d (%zu bytes at %p): %zu bytes differ", i, blen[i], (void *)blk[i], bad);
	}
	/* brk must grow from where it was. */
	uint8_t *more = sbrk(2 << 20);
	if (more == (void *)-1)
		failf("sbrk after restore: %s", strerror(errno));
	else {
		fill(more, 2 << 20, 802, 0);
		check(more, 2 << 20, 802, 0, "brk growth after restore");
		if (kbrk() != brk_before + (2 << 20))
			failf("brk 0x%lx after growing, want 0x%lx", kbrk(), brk_before + (2 << 20));
	}
	/* Free half, allocate again. */
	for (int i = 0; i < NB; i += 2)
		free(blk[i]);
	for (int i = 0; i < NB; i += 2) {
		blk[i] = malloc(blen[i] + 7);
		if (!blk[i]) {
			failf("malloc %zu after restore failed", blen[i] + 7);
			continue;
		}
		memset(blk[i], 0x77, blen[i] + 7);
	}
	/* Stack growth: 6 MiB deep (8 MiB limit; the dump happened 512 KiB deep). */
	grow(0, 96);
	check_clocks("after restore");
	struct timespec m, r;
	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	if (ts_cmp(&m, &mono_before) < 0)
		failf("CLOCK_MONOTONIC went backwards: %ld.%09ld before dump, %ld.%09ld after restore",
		      (long)mono_before.tv_sec, mono_before.tv_nsec, (long)m.tv_sec, m.tv_nsec);
	if (ts_diff(&r, &real_before) < 0 || ts_diff(&r, &real_before) > 3600)
		failf("CLOCK_REALTIME moved by %.3fs across restore", ts_diff(&r, &real_before));
	unsigned long vdso = getauxval(AT_SYSINFO_EHDR);
	if (!vdso || memcmp((void *)vdso, "\177ELF", 4))
		failf("AT_SYSINFO_EHDR 0x%lx does not point at the vdso ELF header", vdso);
	finish();
}
