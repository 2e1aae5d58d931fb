/*
 * copier FILE BYTES loop|pipe|splice: the plainest dump, a second
 * reference for dump. A child fills BYTES of its own private anonymous
 * memory with the pattern; its pages are then copied into FILE (a new
 * tmpfs file), 1 MiB at a time:
 *   loop:   the parent reads a piece with process_vm_readv into a buffer
 *           and write()s it, and so on;
 *   pipe:   the same two copies on two CPUs: a thread reads into a ring of
 *           buffers while a second one writes them;
 *   splice: one copy, CRIU's way: the child vmsplice()s its own pages into
 *           a ring of pipes (the pipes take references, nothing is
 *           copied) while the parent splice()s each pipe into FILE, the
 *           kernel copying the pages straight into the file's.
 * No checksum, no zero-page check, no freezing. It prints the nanoseconds
 * of the copy alone on stdout.
 *
 * dd measures the write alone, from a buffer that stays in the CPU's
 * cache; a dump must also read the task's memory, 1 GiB more from RAM:
 * the copier is about the floor for one, and splice tells whether a
 * single copy lowers it.
 */
#include "bench.h"
#include <pthread.h>
#include <sys/uio.h>

#define RING 4
#define PIPES 8 /* splice: pipes in the ring, of 1 MiB each */

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

/* splice_child is the child's side of splice: wait for the go, then
 * vmsplice piece i of its memory into pipe i % PIPES, waiting while that
 * pipe is full. */
static void splice_child(int pipes[][2], int go)
{
	char c;
	if (read(go, &c, 1) != 1)
		_exit(1);
	for (size_t off = 0, i = 0; off < total; off += MiB, i++) {
		struct iovec v = {mem + off, total - off < MiB ? total - off : MiB};
		while (v.iov_len > 0) {
			ssize_t k = vmsplice(pipes[i % PIPES][1], &v, 1, 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				_exit(2);
			v.iov_base = (uint8_t *)v.iov_base + k;
			v.iov_len -= (size_t)k;
		}
	}
	_exit(0);
}

/* splice_parent moves piece i from pipe i % PIPES into the file. */
static void splice_parent(int pipes[][2])
{
	for (size_t off = 0, i = 0; off < total; off += MiB, i++) {
		size_t n = total - off < MiB ? total - off : MiB;
		while (n > 0) {
			ssize_t k = splice(pipes[i % PIPES][0], NULL, out_fd, NULL, n, 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				die("splice into %s at %zu: %s", out_name, off, k < 0 ? strerror(errno) : "the child stopped");
			n -= (size_t)k;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[3], "loop") != 0 && strcmp(argv[3], "pipe") != 0 && strcmp(argv[3], "splice") != 0))
		die("usage: copier FILE BYTES loop|pipe|splice");
	int pipelined = strcmp(argv[3], "pipe") == 0, spliced = strcmp(argv[3], "splice") == 0;
	unsigned long bytes = arg_ul(argc, argv, 2, "bytes");
	size_t npages = (bytes + PAGE - 1) / PAGE;
	uint8_t *m = xmmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	int ready[2], go[2], pipes[PIPES][2];
	if (pipe(ready) || pipe(go))
		die("pipe: %s", strerror(errno));
	for (int i = 0; spliced && i < PIPES; i++) {
		if (pipe(pipes[i]))
			die("pipe: %s", strerror(errno));
		/* 1 MiB is /proc/sys/fs/pipe-max-size's default; a smaller
		 * pipe only means more wakeups. */
		fcntl(pipes[i][1], F_SETPIPE_SZ, (int)MiB);
	}
	mem = m;
	total = npages * PAGE;
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
		if (spliced)
			splice_child(pipes, go[0]);
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
	for (int i = 0; i < RING; i++)
		ring[i] = xmmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE);
	size_t chunks = (total + MiB - 1) / MiB;
	uint64_t start = now_ns();
	if (spliced) {
		if (write(go[1], "g", 1) != 1)
			die("start child %d: %s", (int)child, strerror(errno));
		splice_parent(pipes);
	} else if (!pipelined) {
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
