/* membarrier: membarrier(2) registrations across a dump and restore. The
 * parent registers for private expedited barriers and forks (the child
 * inherits that), then registers for global expedited ones too; the child
 * registers for the rseq kind. On SIGTERM each checks
 * MEMBARRIER_CMD_GET_REGISTRATIONS says its own, that the barriers it
 * registered for work and that one it did not fails with EPERM.
 * "membarrier probe" exits 0 when the kernel tells registrations (Linux
 * 6.3+), 3 when not. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <linux/membarrier.h>
#include <sys/syscall.h>

#define GET_REGISTRATIONS (1 << 9)

static long mb(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

/* check: the registrations are want; barrier works; refused fails with
 * EPERM. */
static int check(const char *who, long want, int barrier, int refused)
{
	long got = mb(GET_REGISTRATIONS);
	if (got != want) {
		printf("FAIL %s: registrations %#lx, want %#lx\n", who, got, want);
		return 1;
	}
	if (mb(barrier)) {
		printf("FAIL %s: barrier %#x: %m\n", who, barrier);
		return 1;
	}
	if (mb(refused) != -1 || errno != EPERM) {
		printf("FAIL %s: barrier %#x not refused (%m)\n", who, refused);
		return 1;
	}
	return 0;
}

static void child_setup(void)
{
	if (mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ))
		_exit(2);
}

int main(int argc, char **argv)
{
	if (mb(GET_REGISTRATIONS) < 0)
		return argc > 1 ? 3 : (printf("FAIL membarrier: %m\n"), 1);
	if (argc > 1)
		return 0;
	install_term();
	if (mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED))
		return printf("FAIL register: %m\n"), 1;
	pid_t kid = fork_ready(child_setup);
	if (kid == 0) {
		wait_term();
		_exit(check("child",
			    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
			    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE));
	}
	if (kid < 0)
		return printf("FAIL child setup\n"), 1;
	if (mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
		return printf("FAIL register global: %m\n"), 1;
	printf("READY\n");
	fflush(stdout);
	wait_term();
	int bad = check("parent", MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
			MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ);
	return finish_parent(bad, kid);
}
