/*
 * copier FILE BYTES loop|pipe: the plainest two-copy dump, a second
 * reference for dump. A child fills BYTES of its own private anonymous
 * memory with the pattern; the parent then copies them into FILE (a new
 * tmpfs file) the way any dumper that reads a task's memory must:
 * process_vm_readv 1 MiB into a buffer and write() it.
 *   loop: one thread reads a buffer, writes it, and so on;
 *   pipe: a thread reads into a ring of buffers while a second one writes
 *         them: the same work on two CPUs.
 * No checksum, no zero-page check, no freezing. It prints the nanoseconds
 * of the copy alone on stdout; the harness takes the faster mode.
 *
 * dd measures the write alone; the copier adds the read of the task's
 * memory, which any dump must do: it is about the floor for one.
 */
#include "bench.h"
#include <pthread.h>
#include <sys/uio.h>

#define RING 4

static pid_t child;
static uint8_t *mem;
static size_t total;
static int out_fd;
static const char *out_name;
static uint8_t *ring[RING];
static size_t ring_len[RING];
static size_t filled, written; /* buffers read and written so far */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static size_t read_chunk(uint8_t *buf, size_t off)
{
	size_t n = total - off < MiB ? total - off : MiB;
	struct iovec local = {buf, n}, remote = {mem + off, n};
	ssize_t got = process_vm_readv(child, &local, 1, &remote, 1, 0);
	if (got != (ssize_t)n)
		die("process_vm_readv at %zu: %zd (%s)", off, got, got < 0 ? strerror(errno) : "short");
	return n;
}

static void write_all(const uint8_t *buf, size_t n)
{
	for (size_t w = 0; w < n;) {
		ssize_t k = write(out_fd, buf + w, n - w);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("write %s: %s", out_name, k < 0 ? strerror(errno) : "no progress");
		w += (size_t)k;
	}
}

static void *writer(void *arg)
{
	size_t chunks = *(size_t *)arg;
	for (size_t i = 0; i < chunks; i++) {
		pthread_mutex_lock(&mu);
		while (filled == i)
			pthread_cond_wait(&cond, &mu);
		pthread_mutex_unlock(&mu);
		write_all(ring[i % RING], ring_len[i % RING]);
		pthread_mutex_lock(&mu);
		written = i + 1;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[3], "loop") != 0 && strcmp(argv[3], "pipe") != 0))
		die("usage: copier FILE BYTES loop|pipe");
	int pipelined = strcmp(argv[3], "pipe") == 0;
	unsigned long bytes = arg_ul(argc, argv, 2, "bytes");
	size_t npages = (bytes + PAGE - 1) / PAGE;
	uint8_t *m = xmmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	int ready[2];
	if (pipe(ready))
		die("pipe: %s", strerror(errno));
	child = fork();
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

	out_name = argv[1];
	out_fd = open(out_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out_fd < 0)
		die("open %s: %s", out_name, strerror(errno));
	mem = m;
	total = npages * PAGE;
	for (int i = 0; i < RING; i++)
		ring[i] = xmmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE);
	size_t chunks = (total + MiB - 1) / MiB;
	uint64_t start = now_ns();
	if (!pipelined) {
		for (size_t off = 0; off < total;) {
			size_t n = read_chunk(ring[0], off);
			write_all(ring[0], n);
			off += n;
		}
	} else {
		pthread_t w;
		if (pthread_create(&w, NULL, writer, &chunks))
			die("pthread_create failed");
		for (size_t i = 0, off = 0; i < chunks; i++) {
			pthread_mutex_lock(&mu);
			while (i - written == RING)
				pthread_cond_wait(&cond, &mu);
			pthread_mutex_unlock(&mu);
			ring_len[i % RING] = read_chunk(ring[i % RING], off);
			off += ring_len[i % RING];
			pthread_mutex_lock(&mu);
			filled = i + 1;
			pthread_cond_broadcast(&cond);
			pthread_mutex_unlock(&mu);
		}
		pthread_join(w, NULL);
	}
	uint64_t took = now_ns() - start;
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(out_fd);
	printf("%llu\n", (unsigned long long)took);
	return 0;
}
