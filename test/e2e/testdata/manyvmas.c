/*
 * manyvmas: thousands of VMAs.
 *   - one region of NP pages whose page i gets protection prots[i%4]:
 *     adjacent pages always differ, so every page is its own VMA. Every
 *     page was filled before mprotect, PROT_NONE ones included.
 *   - NG small mappings of 3 pages with a PROT_NONE guard page first.
 * After SIGTERM: /proc/self/maps must still count at least NP+2*NG lines,
 * then every page is checked (PROT_NONE pages after making them readable).
 */
#include "common.h"

#define NP 4000
#define NG 500
static const int prots[4] = {PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE, PROT_READ | PROT_WRITE | PROT_EXEC};
static uint8_t *big;
static uint8_t *g[NG];

int main(void)
{
	install_term();
	/* One extra PROT_NONE page on each side keeps neighbours from merging. */
	uint8_t *res = xmmap(NULL, (NP + 2) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "reserve");
	big = xmmap(res + PAGE, NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0, "big");
	for (int i = 0; i < NP; i++)
		if (i % 9 != 4) /* some pages never touched */
			fill(big + i * PAGE, PAGE, 500, (uint64_t)i * PAGE / 8);
	for (int i = 0; i < NP; i++)
		if (mprotect(big + i * PAGE, PAGE, prots[i % 4]))
			die("mprotect page %d: %s", i, strerror(errno));
	for (int i = 0; i < NG; i++) {
		g[i] = xmmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "guarded");
		fill(g[i] + PAGE, 2 * PAGE, 501 + i, 0);
		if (mprotect(g[i], PAGE, PROT_NONE))
			die("mprotect guard: %s", strerror(errno));
	}

	write_pidfile();
	wait_term();

	FILE *f = fopen("/proc/self/maps", "re");
	int lines = 0, c;
	if (f) {
		while ((c = fgetc(f)) != EOF)
			lines += c == '\n';
		fclose(f);
	}
	if (lines < NP + 2 * NG)
		failf("/proc/self/maps has %d lines, want at least %d", lines, NP + 2 * NG);
	char what[64];
	for (int i = 0; i < NP && nfail < 20; i++) {
		uint8_t *p = big + i * PAGE;
		if (!(prots[i % 4] & PROT_READ) && mprotect(p, PAGE, PROT_READ)) {
			failf("mprotect page %d readable: %s", i, strerror(errno));
			continue;
		}
		snprintf(what, sizeof(what), "page %d (prot %d)", i, prots[i % 4]);
		if (i % 9 == 4)
			check_zero(p, PAGE, what);
		else
			check(p, PAGE, 500, (uint64_t)i * PAGE / 8, what);
		if (prots[i % 4] & PROT_WRITE)
			p[0] ^= 1; /* must still be writable */
	}
	for (int i = 0; i < NG && nfail < 20; i++) {
		snprintf(what, sizeof(what), "guarded mapping %d", i);
		check(g[i] + PAGE, 2 * PAGE, 501 + i, 0, what);
	}
	finish();
}
