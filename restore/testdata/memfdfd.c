/* memfdfd: memfds that are more than mappings. "bytes" is never mapped:
 * 10000 bytes written into it with write(), its fd's offset left at 6000,
 * sealed against growing. "short" is mapped 3 pages shared, then cut to
 * 5000 bytes (its mapping reaches past the end, as memfds allow). A
 * private mapping of "bytes" too ("private"): the file's data. On SIGTERM
 * it checks each one's length, data and offset, the seal, and that the
 * page of "short" past its end is gone. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/stat.h>

static long page;
static int bytes_fd, short_fd;
static char *short_map, *priv_map;
static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

static char pat(int i) { return (char)(i * 13 + 5); }

static int fail(const char *fmt, long a, long b)
{
	printf("FAIL ");
	printf(fmt, a, b);
	printf("\n");
	return 1;
}

static int check(void)
{
	struct stat st;
	if (fstat(bytes_fd, &st) || st.st_size != 10000)
		return fail("bytes: size %ld, want %ld", (long)st.st_size, 10000);
	if (lseek(bytes_fd, 0, SEEK_CUR) != 6000)
		return fail("bytes: offset %ld, want %ld", (long)lseek(bytes_fd, 0, SEEK_CUR), 6000);
	static char buf[10000];
	if (pread(bytes_fd, buf, sizeof(buf), 0) != sizeof(buf))
		return fail("bytes: short read (%ld of %ld)", 0, 10000);
	for (int i = 0; i < 10000; i++)
		if (buf[i] != pat(i))
			return fail("bytes: byte %ld is %ld", i, buf[i]);
	for (int i = 0; i < 100; i++)
		if (priv_map[i] != pat(i))
			return fail("private mapping: byte %ld is %ld", i, priv_map[i]);
	if (fcntl(bytes_fd, F_GET_SEALS) != F_SEAL_GROW)
		return fail("bytes: seals %#lx, want %#lx", fcntl(bytes_fd, F_GET_SEALS), F_SEAL_GROW);
	if (fstat(short_fd, &st) || st.st_size != 5000)
		return fail("short: size %ld, want %ld", (long)st.st_size, 5000);
	if (short_map[0] != 's' || short_map[4999] != 't')
		return fail("short: data %#lx %#lx", short_map[0], short_map[4999]);
	struct sigaction sa = {0};
	sa.sa_handler = on_bus;
	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(bus_jmp, 1) == 0) {
		volatile char c = short_map[2 * page];
		(void)c;
		return fail("short: page 2, past the end, still readable (%ld, %ld)", 0, 0);
	}
	return 0;
}

int main(void)
{
	page = sysconf(_SC_PAGESIZE);
	bytes_fd = memfd_create("bytes", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	short_fd = memfd_create("short", MFD_CLOEXEC);
	if (bytes_fd < 0 || short_fd < 0)
		return printf("FAIL memfd_create: %m\n"), 1;
	static char buf[10000];
	for (int i = 0; i < 10000; i++)
		buf[i] = pat(i);
	if (write(bytes_fd, buf, sizeof(buf)) != sizeof(buf) || lseek(bytes_fd, 6000, SEEK_SET) != 6000 ||
	    fcntl(bytes_fd, F_ADD_SEALS, F_SEAL_GROW))
		return printf("FAIL bytes: %m\n"), 1;
	priv_map = mmap(NULL, page, PROT_READ, MAP_PRIVATE, bytes_fd, 0);
	if (ftruncate(short_fd, 3 * page))
		return printf("FAIL short: %m\n"), 1;
	short_map = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_SHARED, short_fd, 0);
	if (short_map == MAP_FAILED || priv_map == MAP_FAILED)
		return printf("FAIL mmap: %m\n"), 1;
	short_map[0] = 's';
	short_map[4999] = 't';
	short_map[2 * page] = 'x';
	if (ftruncate(short_fd, 5000))
		return printf("FAIL short: truncate: %m\n"), 1;
	install_term();
	printf("READY\n");
	fflush(stdout);
	wait_term();
	if (check())
		return 1;
	printf("PASS\n");
	return 0;
}
