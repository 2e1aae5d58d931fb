/* mempolicy: NUMA memory policies across a dump and restore. Per thread
 * (set_mempolicy): the parent interleaves over node 0 with static nodes,
 * its forked child binds to node 0 instead. Per range (mbind), all on
 * node 0: the parent binds pages 4-7 of a private region of 16 pages and
 * prefers node 0 for pages 8-11 (splitting it), and interleaves a shared
 * region of 4 pages; then forks. The child, still sharing the private
 * pages copy-on-write, gives pages 4-7 back to the default and takes the
 * local policy for pages 0-3. On SIGTERM each checks get_mempolicy says
 * its own for each range and the regions hold their data. "mempolicy
 * probe" exits 0 when the kernel has NUMA policies, 3 when not. Prints
 * PASS or the first FAIL. */
#include "vmatest.h"
#include <linux/mempolicy.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define MAXNODE 64
#define PAGES 16

static char *priv, *shared;
static long page;

static int set_policy(int mode)
{
	unsigned long mask = 1; /* node 0 */
	return syscall(SYS_set_mempolicy, mode, &mask, MAXNODE + 1);
}

static int bind_range(char *start, int pages, int mode)
{
	unsigned long mask = 1;
	int none = mode == MPOL_DEFAULT || mode == MPOL_LOCAL;
	return syscall(SYS_mbind, start, pages * page, mode, none ? NULL : &mask, none ? 0 : MAXNODE + 1, 0);
}

static int check(const char *who, int want)
{
	int mode = -1;
	unsigned long mask = 0;
	if (syscall(SYS_get_mempolicy, &mode, &mask, MAXNODE + 1, NULL, 0)) {
		printf("FAIL %s: get_mempolicy: %m\n", who);
		return 1;
	}
	if (mode != want || mask != 1) {
		printf("FAIL %s: memory policy %#x nodes %#lx, want %#x nodes 0x1\n", who, mode, mask, want);
		return 1;
	}
	return 0;
}

/* check_range: the policy of the range at p is want, with node 0 unless
 * want has no nodes; its pages hold their pattern (seed: the region's). */
static int check_range(const char *who, const char *what, char *p, int want)
{
	int mode = -1;
	unsigned long mask = 0;
	if (syscall(SYS_get_mempolicy, &mode, &mask, MAXNODE + 1, p, MPOL_F_ADDR)) {
		printf("FAIL %s: get_mempolicy of %s at %p: %m\n", who, what, (void *)p);
		return 1;
	}
	unsigned long want_mask = want == MPOL_DEFAULT || want == MPOL_LOCAL ? 0 : 1;
	if (mode != want || mask != want_mask) {
		printf("FAIL %s: %s at %p: policy %#x nodes %#lx, want %#x nodes %#lx\n", who, what, (void *)p, mode, mask,
		       want, want_mask);
		return 1;
	}
	return 0;
}

static int check_data(const char *who)
{
	for (int i = 0; i < PAGES; i++)
		if (priv[i * page] != (char)(i + 1) || priv[i * page + page - 1] != (char)(i + 100)) {
			printf("FAIL %s: private page %d lost its data\n", who, i);
			return 1;
		}
	for (int i = 0; i < 4; i++)
		if (shared[i * page] != (char)(i + 50)) {
			printf("FAIL %s: shared page %d lost its data\n", who, i);
			return 1;
		}
	return 0;
}

static void child_setup(void)
{
	if (set_policy(MPOL_BIND) || bind_range(priv + 4 * page, 4, MPOL_DEFAULT) || bind_range(priv, 4, MPOL_LOCAL))
		_exit(2);
}

static int check_child(void)
{
	return check("child", MPOL_BIND) || check_range("child", "private pages 0-3", priv, MPOL_LOCAL) ||
	       check_range("child", "private pages 4-7", priv + 4 * page, MPOL_DEFAULT) ||
	       check_range("child", "private pages 8-11", priv + 8 * page, MPOL_PREFERRED) ||
	       check_range("child", "private pages 12-15", priv + 12 * page, MPOL_DEFAULT) ||
	       check_range("child", "shared region", shared, MPOL_INTERLEAVE) || check_data("child");
}

static int check_parent(void)
{
	return check("parent", MPOL_INTERLEAVE | MPOL_F_STATIC_NODES) ||
	       check_range("parent", "private pages 0-3", priv, MPOL_DEFAULT) ||
	       check_range("parent", "private pages 4-7", priv + 4 * page, MPOL_BIND) ||
	       check_range("parent", "private pages 8-11", priv + 8 * page, MPOL_PREFERRED) ||
	       check_range("parent", "shared region", shared, MPOL_INTERLEAVE) || check_data("parent");
}

int main(int argc, char **argv)
{
	if (set_policy(MPOL_INTERLEAVE | MPOL_F_STATIC_NODES))
		return argc > 1 ? 3 : (printf("FAIL set_mempolicy: %m\n"), 1);
	if (argc > 1)
		return 0;
	page = sysconf(_SC_PAGESIZE);
	priv = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (priv == MAP_FAILED || shared == MAP_FAILED)
		return printf("FAIL mmap: %m\n"), 1;
	if (bind_range(priv + 4 * page, 4, MPOL_BIND) || bind_range(priv + 8 * page, 4, MPOL_PREFERRED) ||
	    bind_range(shared, 4, MPOL_INTERLEAVE))
		return printf("FAIL mbind: %m\n"), 1;
	for (int i = 0; i < PAGES; i++) {
		priv[i * page] = (char)(i + 1);
		priv[i * page + page - 1] = (char)(i + 100);
	}
	for (int i = 0; i < 4; i++)
		shared[i * page] = (char)(i + 50);
	install_term();
	return run_pair(child_setup, check_child, check_parent);
}
