/*
 * copier FILE BYTES: the plainest two-copy dump, a second reference for
 * dump. A child fills BYTES of its own private anonymous memory with the
 * pattern; the parent then copies them into FILE (a new tmpfs file) the
 * way any dumper that reads a task's memory must: process_vm_readv 1 MiB
 * into a buffer, write() it, repeat. No checksum, no zero-page check, no
 * freezing. It prints the nanoseconds of the copy loop alone on stdout.
 *
 * dd measures the write alone; the copier adds the read of the task's
 * memory. On a guest whose two vCPUs do not add copy bandwidth (reading on
 * one and writing on the other runs no faster than doing both on one),
 * this is about the floor for a dump that must read a task's pages.
 */
#include "bench.h"
#include <sys/uio.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		die("usage: copier FILE BYTES");
	unsigned long bytes = arg_ul(argc, argv, 2, "bytes");
	size_t npages = (bytes + PAGE - 1) / PAGE;
	uint8_t *m = xmmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	int ready[2];
	if (pipe(ready))
		die("pipe: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		/* Filled after the fork: the pages are the child's own, not
		 * copy-on-write shared with the parent. */
		for (size_t pg = 0; pg < npages; pg++)
			fill_page(m + pg * PAGE, 1, pg);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char c;
	if (read(ready[0], &c, 1) != 1)
		die("child %d did not fill its memory", (int)child);

	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("open %s: %s", argv[1], strerror(errno));
	uint8_t *buf = xmmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE);
	uint64_t start = now_ns();
	for (size_t off = 0; off < npages * PAGE;) {
		size_t n = npages * PAGE - off < MiB ? npages * PAGE - off : MiB;
		struct iovec local = {buf, n}, remote = {m + off, n};
		ssize_t got = process_vm_readv(child, &local, 1, &remote, 1, 0);
		if (got != (ssize_t)n)
			die("process_vm_readv at %zu: %zd (%s)", off, got, got < 0 ? strerror(errno) : "short");
		for (size_t w = 0; w < n;) {
			ssize_t k = write(fd, buf + w, n - w);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				die("write %s: %s", argv[1], k < 0 ? strerror(errno) : "no progress");
			w += (size_t)k;
		}
		off += n;
	}
	uint64_t took = now_ns() - start;
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(fd);
	printf("%llu\n", (unsigned long long)took);
	return 0;
}
