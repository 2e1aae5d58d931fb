/*
 * reader FILE BYTES: the restore reference. Reads BYTES of FILE into fresh
 * private anonymous memory with read() in 1 MiB chunks, the way a restore
 * must at least fault in and fill every page, then exits 0.
 */
#include "bench.h"

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: reader FILE BYTES");
	unsigned long bytes = arg_ul(argc, argv, 2, "bytes");
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", argv[1], strerror(errno));
	uint8_t *m = xmmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	size_t off = 0;
	while (off < bytes) {
		size_t want = bytes - off < MiB ? bytes - off : MiB;
		ssize_t n = read(fd, m + off, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read %s at %zu: %s", argv[1], off, n < 0 ? strerror(errno) : "end of file");
		off += n;
	}
	return 0;
}
