/* memfdseals: memfd seals, mode and owner across a dump and restore.
 * "sealed": written, then sealed against shrink, grow and write, mapped
 * read-only; "plain" (no MFD_ALLOW_SEALING: F_SEAL_SEAL only), mode 0640,
 * owner 1234:5678, mapped read-write; "future": mapped read-write, then
 * sealed with F_SEAL_FUTURE_WRITE (the mapping stays writable, new writes
 * do not). On SIGTERM it checks each memfd's seals, mode, owner, data and
 * what the seals allow and forbid. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/mman.h>
#include <sys/stat.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static long page;
static int sealed_fd, plain_fd, future_fd;
static char *sealed_map, *plain_map, *future_map;

static int make(const char *name, unsigned flags, char fill)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);
	if (fd < 0 || ftruncate(fd, 2 * page))
		return -1;
	char buf[64];
	memset(buf, fill, sizeof(buf));
	if (pwrite(fd, buf, sizeof(buf), 0) != sizeof(buf))
		return -1;
	return fd;
}

static int check_memfd(const char *what, int fd, int seals, mode_t mode, uid_t uid, gid_t gid, const char *map, char fill)
{
	int got = fcntl(fd, F_GET_SEALS);
	struct stat st;
	if (got != seals) {
		printf("FAIL %s: seals %#x, want %#x\n", what, got, seals);
		return 1;
	}
	if (fstat(fd, &st) || (st.st_mode & 07777) != mode || st.st_uid != uid || st.st_gid != gid) {
		printf("FAIL %s: mode %#o owner %d:%d, want %#o %d:%d\n", what, st.st_mode & 07777, st.st_uid, st.st_gid,
		       mode, uid, gid);
		return 1;
	}
	for (int i = 0; i < 64; i++)
		if (map[i] != fill) {
			printf("FAIL %s: byte %d is %#x, want %#x\n", what, i, map[i], fill);
			return 1;
		}
	return 0;
}

static int refused(const char *what, long ret)
{
	if (ret != -1 || errno != EPERM) {
		printf("FAIL %s: not refused (%ld, %m)\n", what, ret);
		return 1;
	}
	return 0;
}

int main(void)
{
	page = sysconf(_SC_PAGESIZE);
	sealed_fd = make("sealed", MFD_ALLOW_SEALING, 's');
	plain_fd = make("plain", 0, 'p');
	future_fd = make("future", MFD_ALLOW_SEALING, 'f');
	if (sealed_fd < 0 || plain_fd < 0 || future_fd < 0)
		return printf("FAIL memfd_create: %m\n"), 1;
	if (fcntl(sealed_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE))
		return printf("FAIL seal: %m\n"), 1;
	if (fchmod(plain_fd, 0640) || fchown(plain_fd, 1234, 5678))
		return printf("FAIL fchmod/fchown: %m\n"), 1;
	sealed_map = mmap(NULL, 2 * page, PROT_READ, MAP_SHARED, sealed_fd, 0);
	plain_map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, plain_fd, 0);
	future_map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, future_fd, 0);
	if (sealed_map == MAP_FAILED || plain_map == MAP_FAILED || future_map == MAP_FAILED)
		return printf("FAIL mmap: %m\n"), 1;
	if (fcntl(future_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE))
		return printf("FAIL future seal: %m\n"), 1;
	install_term();
	printf("READY\n");
	fflush(stdout);
	wait_term();

	uid_t me = getuid();
	gid_t mygid = getgid();
	if (check_memfd("sealed", sealed_fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, 0777, me, mygid, sealed_map, 's') ||
	    check_memfd("plain", plain_fd, F_SEAL_SEAL, 0640, 1234, 5678, plain_map, 'p') ||
	    check_memfd("future", future_fd, F_SEAL_FUTURE_WRITE, 0777, me, mygid, future_map, 'f'))
		return 1;
	char c = 'x';
	if (refused("write to the write-sealed memfd", pwrite(sealed_fd, &c, 1, 0)) ||
	    refused("shrink of the sealed memfd", ftruncate(sealed_fd, page)) ||
	    refused("write to the future-write-sealed memfd", pwrite(future_fd, &c, 1, 0)) ||
	    refused("a new seal on the plain memfd", fcntl(plain_fd, F_ADD_SEALS, F_SEAL_WRITE)))
		return 1;
	void *w = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, future_fd, 0);
	if (w != MAP_FAILED)
		return printf("FAIL a new writable mapping of the future-write-sealed memfd\n"), 1;
	future_map[100] = 'w'; /* the mapping made before the seal stays writable */
	plain_map[100] = 'w';
	printf("PASS\n");
	return 0;
}
