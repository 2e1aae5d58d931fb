/*
 * anon MAP_MIB TOUCH_KIB: one task with one private anonymous mapping of
 * MAP_MIB MiB of which TOUCH_KIB KiB are filled with the pattern, spread
 * evenly over the mapping (every stride-th page), the rest never touched.
 * On SIGTERM: every filled page holds its pattern, and the page after each
 * filled one (when not filled itself) is still zero.
 */
#include "bench.h"

int main(int argc, char **argv)
{
	unsigned long map_mib = arg_ul(argc, argv, 1, "mapping MiB");
	unsigned long touch_kib = arg_ul(argc, argv, 2, "touched KiB");
	size_t npages = map_mib * MiB / PAGE, ntouch = touch_kib * 1024 / PAGE;
	if (ntouch == 0 || ntouch > npages)
		die("touched %lu KiB must be between 4 KiB and the mapping", touch_kib);
	size_t stride = npages / ntouch;
	install_term();
	uint8_t *m = xmmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
	for (size_t k = 0; k < ntouch; k++)
		fill_page(m + k * stride * PAGE, 1, k * stride);
	write_pidfile();
	wait_term();
	size_t bad = 0, badzero = 0;
	for (size_t k = 0; k < ntouch; k++) {
		size_t pg = k * stride;
		bad += !check_page(m + pg * PAGE, 1, pg);
		if (stride > 1 && pg + 1 < npages)
			badzero += !is_zero_page(m + (pg + 1) * PAGE);
	}
	if (bad)
		failf("%zu of %zu filled pages differ from their pattern", bad, ntouch);
	if (badzero)
		failf("%zu untouched pages are not zero", badzero);
	finish();
}
