/* sealed: mappings sealed with mseal (Linux 6.10+) across a dump and
 * restore. The parent fills and seals 8 private anonymous pages, forks a
 * child (which inherits the sealed mapping) and seals a second, read-only
 * mapping after the fork, which the child therefore has unsealed. Both
 * print their readiness (or SKIP without mseal), sleep until SIGTERM, then
 * check their data, that smaps marks exactly the sealed mappings "sl", and
 * that munmap of a sealed one fails with EPERM. The parent prints PASS or
 * the first FAIL (the child's comes back in its status). */
#include "vmatest.h"
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define PG 4096
#define SYS_mseal_ 462

static int sealed(void *addr)
{
	struct vma_info vi = vma_smaps(addr);
	return vi.found ? has_flag(&vi, "sl") : -1;
}

static int check(const char *who, unsigned char *a, int a_sealed, unsigned char *b, int b_sealed)
{
	for (int i = 0; i < 8 * PG; i += PG)
		if (a[i] != (unsigned char)(i / PG + 1)) {
			printf("FAIL %s: sealed page %d holds %u\n", who, i / PG, a[i]);
			return 1;
		}
	if (b[0] != 77) {
		printf("FAIL %s: read-only page holds %u\n", who, b[0]);
		return 1;
	}
	if (sealed(a) != a_sealed || sealed(b) != b_sealed) {
		printf("FAIL %s: sealed flags %d %d, want %d %d\n", who, sealed(a), sealed(b), a_sealed, b_sealed);
		return 1;
	}
	if (munmap(a, 8 * PG) == 0 || errno != EPERM) {
		printf("FAIL %s: munmap of the sealed mapping: %s\n", who, strerror(errno));
		return 1;
	}
	return 0;
}

int main(void)
{
	install_term();
	unsigned char *a = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *b = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED) {
		printf("FAIL mmap\n");
		return 1;
	}
	for (int i = 0; i < 8; i++)
		memset(a + i * PG, i + 1, PG);
	b[0] = 77;
	mprotect(b, PG, PROT_READ);
	if (syscall(SYS_mseal_, a, 8 * PG, 0)) {
		printf(errno == ENOSYS ? "SKIP no mseal\n" : "FAIL mseal: %m\n");
		return errno == ENOSYS ? 0 : 1;
	}
	pid_t kid = fork_ready(NULL);
	if (kid == 0) {
		wait_term();
		_exit(check("child", a, 1, b, 0));
	}
	if (kid < 0) {
		printf("FAIL child setup\n");
		return 1;
	}
	if (syscall(SYS_mseal_, b, PG, 0)) {
		printf("FAIL mseal read-only: %m\n");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	wait_term();
	return finish_parent(check("parent", a, 1, b, 1), kid);
}
