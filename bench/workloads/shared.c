/*
 * shared NTASKS SIZE_MIB: a root and NTASKS-1 children (forked by the root)
 * sharing one MAP_SHARED|MAP_ANONYMOUS object of SIZE_MIB MiB, filled by the
 * root before the forks. On SIGTERM the root checks every page; each child
 * checks one page per 64 KiB of its own mapping, so the sharing itself is
 * verified without every task reading the whole object.
 */
#include "bench.h"

static uint8_t *m;
static size_t npages;

static void check_all(size_t step)
{
	size_t bad = 0;
	for (size_t pg = 0; pg < npages; pg += step)
		bad += !check_page(m + pg * PAGE, 2, pg);
	if (bad)
		failf("%zu shared pages differ from their pattern (checked every %zu)", bad, step);
}

int main(int argc, char **argv)
{
	unsigned long ntasks = arg_ul(argc, argv, 1, "tasks");
	unsigned long mib = arg_ul(argc, argv, 2, "MiB");
	if (ntasks < 1 || ntasks > 4096)
		die("tasks %lu out of range", ntasks);
	npages = mib * MiB / PAGE;
	install_term();
	m = xmmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	for (size_t pg = 0; pg < npages; pg++)
		fill_page(m + pg * PAGE, 2, pg);
	pid_t *kids = calloc(ntasks, sizeof(pid_t));
	for (unsigned long i = 0; i + 1 < ntasks; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			mark_ready();
			wait_term();
			check_all(16);
			_exit(nfail ? 1 : 0);
		}
		kids[i] = pid;
		wait_ready(pid);
	}
	write_pidfile();
	wait_term();
	check_all(1);
	term_and_reap(kids, ntasks - 1);
	finish();
}
