/*
 * cow SIZE_MIB NCHILD PERMILLE: a root fills SIZE_MIB MiB of private
 * anonymous memory, then forks NCHILD children. Child i (1-based) rewrites
 * PERMILLE/1000 of the pages (page pg when pg % 1000 < PERMILLE, shifted by
 * i so children differ) with its own pattern; every other page stays
 * copy-on-write shared with the root. On SIGTERM every task checks every
 * page (reads only: the sharing survives the check).
 */
#include "bench.h"

static uint8_t *m;
static size_t npages;
static unsigned long permille;

/* mine says whether child i (0 = the root: none) rewrote page pg. */
static int mine(unsigned long i, size_t pg)
{
	return i > 0 && (pg + i * 7919) % 1000 < permille;
}

static void verify(unsigned long i)
{
	size_t bad = 0;
	for (size_t pg = 0; pg < npages; pg++)
		bad += !check_page(m + pg * PAGE, mine(i, pg) ? 10 + i : 4, pg);
	if (bad)
		failf("task %lu: %zu of %zu pages differ", i, bad, npages);
}

int main(int argc, char **argv)
{
	unsigned long mib = arg_ul(argc, argv, 1, "MiB");
	unsigned long nchild = arg_ul(argc, argv, 2, "children");
	permille = arg_ul(argc, argv, 3, "permille");
	npages = mib * MiB / PAGE;
	install_term();
	m = xmmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	for (size_t pg = 0; pg < npages; pg++)
		fill_page(m + pg * PAGE, 4, pg);
	pid_t *kids = calloc(nchild + 1, sizeof(pid_t));
	for (unsigned long i = 1; i <= nchild; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			for (size_t pg = 0; pg < npages; pg++)
				if (mine(i, pg))
					fill_page(m + pg * PAGE, 10 + i, pg);
			mark_ready();
			wait_term();
			verify(i);
			_exit(nfail ? 1 : 0);
		}
		kids[i - 1] = pid;
		wait_ready(pid);
	}
	write_pidfile();
	wait_term();
	verify(0);
	term_and_reap(kids, nchild);
	finish();
}
