/* thp: huge pages disabled but where advised (prctl PR_SET_THP_DISABLE
 * with PR_THP_DISABLE_EXCEPT_ADVISED, Linux 6.18) across a dump and
 * restore. The parent sets it and forks a child that clears the flags it
 * inherited; on SIGTERM each checks PR_GET_THP_DISABLE (3 in the parent,
 * 0 in the child). "thp probe" exits 0 when the kernel has the flag, 3
 * when not. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/prctl.h>

#define EXCEPT_ADVISED (1 << 1)

static void child_setup(void)
{
	if (prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0))
		_exit(2);
}

static int check(const char *who, int want)
{
	int got = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	if (got != want) {
		printf("FAIL %s: PR_GET_THP_DISABLE %d, want %d\n", who, got, want);
		return 1;
	}
	return 0;
}

static int check_child(void) { return check("child", 0); }
static int check_parent(void) { return check("parent", 1 | EXCEPT_ADVISED); }

int main(int argc, char **argv)
{
	if (prctl(PR_SET_THP_DISABLE, 1, EXCEPT_ADVISED, 0, 0))
		return argc > 1 ? 3 : (printf("FAIL prctl: %m\n"), 1);
	if (argc > 1)
		return 0;
	install_term();
	return run_pair(child_setup, check_child, check_parent);
}
