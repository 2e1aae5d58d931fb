/* guards: guard regions (madvise MADV_GUARD_INSTALL) across a dump and
 * restore. The parent fills 32 private anonymous pages and guards pages
 * 4-5 and 20; its forked child, which inherits the mapping, removes the
 * guard of page 20, guards page 10 and rewrites page 30. Both print their
 * readiness, sleep until SIGTERM, then check that exactly their guard
 * pages fault (SIGSEGV) and every other page holds its pattern; the parent
 * prints PASS or the first FAIL (the child's comes back in its status).
 * The parent also guards page 2 of a shared anonymous mapping (Linux 6.15+
 * allows it; "SHARED-GUARD" on the READY line says it did), which the
 * child inherits: whichever of its pages fault in each task before the
 * dump must fault after the restore, and only those. */
#include "vmatest.h"
#include <setjmp.h>
#include <sys/mman.h>

#define MADV_GUARD_INSTALL_ 102
#define MADV_GUARD_REMOVE_ 103
#define PAGES 32
#define PG 4096
#define SHPAGES 8

static unsigned char *sh;
static int sh_before[SHPAGES];

static sigjmp_buf jb;
static void on_segv(int s) { (void)s; siglongjmp(jb, 1); }

static int faults(volatile unsigned char *p)
{
	if (sigsetjmp(jb, 1))
		return 1;
	(void)*p;
	return 0;
}

static unsigned char pattern(int page, int child) { return (unsigned char)(page * 7 + 1 + child * 100); }

/* check returns 0 when the pages listed in guard[] (ended by -1) fault and
 * the others hold their pattern (page 30 the child's in the child). */
static int check(const char *who, unsigned char *m, const int *guard, int child)
{
	for (int pg = 0; pg < PAGES; pg++) {
		int want_guard = 0;
		for (const int *g = guard; *g >= 0; g++)
			want_guard |= *g == pg;
		int got = faults(m + pg * PG);
		if (got != want_guard) {
			printf("FAIL %s: page %d %s\n", who, pg, got ? "faults, not a guard at dump" : "does not fault, a guard at dump");
			return 1;
		}
		unsigned char want = pattern(pg, child && pg == 30);
		if (!got && (m[pg * PG] != want || m[pg * PG + PG - 1] != want)) {
			printf("FAIL %s: page %d holds %u, want %u\n", who, pg, m[pg * PG], want);
			return 1;
		}
	}
	return 0;
}

/* shared_state records which shared pages fault (before the dump). */
static void shared_state(int *out)
{
	for (int pg = 0; pg < SHPAGES; pg++)
		out[pg] = faults(sh + pg * PG);
}

/* check_shared returns 0 when the shared pages fault as they did before
 * the dump and the others hold their pattern. */
static int check_shared(const char *who)
{
	int now[SHPAGES];
	shared_state(now);
	for (int pg = 0; pg < SHPAGES; pg++) {
		if (now[pg] != sh_before[pg]) {
			printf("FAIL %s: shared page %d %s before the dump\n", who, pg, sh_before[pg] ? "faulted" : "did not fault");
			return 1;
		}
		if (!now[pg] && sh[pg * PG] != (unsigned char)(pg + 50)) {
			printf("FAIL %s: shared page %d holds %u\n", who, pg, sh[pg * PG]);
			return 1;
		}
	}
	return 0;
}

/* child_setup is the child's change to what it inherited, before the dump. */
static unsigned char *m;
static void child_setup(void)
{
	if (madvise(m + 20 * PG, PG, MADV_GUARD_REMOVE_) || madvise(m + 10 * PG, PG, MADV_GUARD_INSTALL_))
		_exit(2);
	/* The removal left page 20 empty: it reads as zeros until written. */
	memset(m + 20 * PG, pattern(20, 0), PG);
	memset(m + 30 * PG, pattern(30, 1), PG);
	shared_state(sh_before);
}

int main(void)
{
	install_term();
	struct sigaction sv = {0};
	sv.sa_handler = on_segv;
	sv.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sv, NULL);

	m = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		printf("FAIL mmap\n");
		return 1;
	}
	for (int pg = 0; pg < PAGES; pg++)
		memset(m + pg * PG, pattern(pg, 0), PG);
	if (madvise(m + 4 * PG, 2 * PG, MADV_GUARD_INSTALL_) || madvise(m + 20 * PG, PG, MADV_GUARD_INSTALL_)) {
		printf("FAIL madvise(MADV_GUARD_INSTALL): %m\n");
		return 1;
	}
	sh = mmap(NULL, SHPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		printf("FAIL mmap shared\n");
		return 1;
	}
	for (int pg = 0; pg < SHPAGES; pg++)
		memset(sh + pg * PG, pg + 50, PG);
	int shguard = madvise(sh + 2 * PG, PG, MADV_GUARD_INSTALL_) == 0;
	pid_t kid = fork_ready(child_setup);
	if (kid == 0) {
		wait_term();
		static const int guard[] = {4, 5, 10, -1};
		_exit(check("child", m, guard, 1) || check_shared("child") ? 1 : 0);
	}
	if (kid < 0) {
		printf("FAIL child setup\n");
		return 1;
	}
	shared_state(sh_before);
	printf("READY%s\n", shguard ? " SHARED-GUARD" : "");
	fflush(stdout);
	wait_term();
	static const int guard[] = {4, 5, 20, -1};
	return finish_parent(check("parent", m, guard, 0) || check_shared("parent"), kid);
}
