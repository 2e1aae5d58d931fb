/* mempolicy: NUMA memory policies (set_mempolicy, per thread) across a
 * dump and restore: the parent interleaves over node 0 with static nodes,
 * its forked child binds to node 0 instead. On SIGTERM each checks
 * get_mempolicy says its own. "mempolicy probe" exits 0 when the kernel
 * has NUMA policies, 3 when not. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <linux/mempolicy.h>
#include <sys/syscall.h>

#define MAXNODE 64

static int set_policy(int mode)
{
	unsigned long mask = 1; /* node 0 */
	return syscall(SYS_set_mempolicy, mode, &mask, MAXNODE + 1);
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

static void child_setup(void)
{
	if (set_policy(MPOL_BIND))
		_exit(2);
}

static int check_child(void) { return check("child", MPOL_BIND); }
static int check_parent(void) { return check("parent", MPOL_INTERLEAVE | MPOL_F_STATIC_NODES); }

int main(int argc, char **argv)
{
	if (set_policy(MPOL_INTERLEAVE | MPOL_F_STATIC_NODES))
		return argc > 1 ? 3 : (printf("FAIL set_mempolicy: %m\n"), 1);
	if (argc > 1)
		return 0;
	install_term();
	return run_pair(child_setup, check_child, check_parent);
}
