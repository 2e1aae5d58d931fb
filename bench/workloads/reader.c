/*
 * reader FILE BYTES MODE: the restore reference. Fills BYTES of fresh
 * private anonymous memory with the contents of FILE, then exits 0.
 *   read: read() straight into the fresh memory, 1 MiB at a time: the plain
 *         way; every page is first touched through its user address.
 *   pvw:  read() 1 MiB at a time into one reused buffer, then
 *         process_vm_writev() it to the fresh memory: the kernel fills the
 *         pages through get_user_pages, never through a user address. On
 *         guests where a first touch of a user page is expensive (shadow
 *         paging) this is several times faster, and it is what a restorer
 *         can do, so the harness takes the faster of the two.
 * It prints the nanoseconds from its start to the last byte in place on
 * stdout: its exit, which frees BYTES of memory (20-35 ms per GiB on the
 * README's guest), is not part of the reference, as a restore leaves its
 * memory in place.
 */
#include "bench.h"
#include <sys/uio.h>

int main(int argc, char **argv)
{
	uint64_t start = now_ns();
	if (argc < 4)
		die("usage: reader FILE BYTES read|pvw");
	unsigned long bytes = arg_ul(argc, argv, 2, "bytes");
	int pvw = strcmp(argv[3], "pvw") == 0;
	if (!pvw && strcmp(argv[3], "read") != 0)
		die("mode %s: want read or pvw", argv[3]);
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", argv[1], strerror(errno));
	uint8_t *m = xmmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	uint8_t *buf = NULL;
	if (pvw) {
		buf = xmmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
		memset(buf, 0, MiB);
	}
	size_t off = 0;
	while (off < bytes) {
		size_t want = bytes - off < MiB ? bytes - off : MiB;
		ssize_t n = read(fd, pvw ? buf : m + off, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read %s at %zu: %s", argv[1], off, n < 0 ? strerror(errno) : "end of file");
		if (pvw) {
			struct iovec local = {buf, (size_t)n}, remote = {m + off, (size_t)n};
			ssize_t w = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
			if (w != n)
				die("process_vm_writev at %zu: %zd of %zd (%s)", off, w, n, w < 0 ? strerror(errno) : "short");
		}
		off += n;
	}
	printf("%llu\n", (unsigned long long)(now_ns() - start));
	return 0;
}
