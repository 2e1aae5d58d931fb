/*
 * vmas COUNT: one task with COUNT single-page private anonymous VMAs, made
 * from one mapping whose pages alternate between read-write and read-only
 * protection (adjacent pages differ, so none merge), fenced by PROT_NONE
 * pages. Every fourth page holds the pattern, the others were never
 * touched: the data stays small, the VMA count is what grows.
 * On SIGTERM: /proc/self/maps still has at least COUNT lines, filled pages
 * hold their pattern, the others are zero.
 */
#include "bench.h"

int main(int argc, char **argv)
{
	unsigned long n = arg_ul(argc, argv, 1, "VMA count");
	install_term();
	uint8_t *res = xmmap(NULL, (n + 2) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
	uint8_t *m = res + PAGE;
	if (mprotect(m, n * PAGE, PROT_READ | PROT_WRITE))
		die("mprotect: %s", strerror(errno));
	for (unsigned long i = 0; i < n; i += 4)
		fill_page(m + i * PAGE, 3, i);
	for (unsigned long i = 1; i < n; i += 2)
		if (mprotect(m + i * PAGE, PAGE, PROT_READ))
			die("mprotect page %lu: %s (vm.max_map_count too low?)", i, strerror(errno));
	write_pidfile();
	wait_term();

	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long lines = 0;
	int c;
	if (f) {
		while ((c = fgetc(f)) != EOF)
			lines += c == '\n';
		fclose(f);
	}
	if (lines < n)
		failf("/proc/self/maps has %lu lines, want at least %lu", lines, n);
	size_t bad = 0;
	for (unsigned long i = 0; i < n; i++)
		bad += (i % 4 == 0) ? !check_page(m + i * PAGE, 3, i) : !is_zero_page(m + i * PAGE);
	if (bad)
		failf("%zu of %lu pages differ", bad, n);
	finish();
}
