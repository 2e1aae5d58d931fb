/*
 * pipeline: a producer and a consumer joined by a pipe, as a shell's
 * "producer | consumer" (the pipe is the consumer's stdin).
 *
 *   R (root) ─┬─ P: writes the counter 0, 1, 2... as 8-byte words, as fast
 *             │     as the pipe takes them: at dump the pipe is full and P
 *             │     blocked in write()
 *             └─ C: reads slowly (4 KiB every 2 ms) from fd 0 and checks
 *                   every word is the next counter value
 *
 * R closes its ends once both children run. On SIGTERM P finishes the
 * word it is writing, writes the end mark and the count of words it wrote,
 * and closes the pipe; C drains the pipe to EOF, checking the counter goes
 * on without a gap or a repeat across the dump and restore, that the count
 * matches and that EOF follows (no writer left).
 */
#include "common.h"

#define END_MARK 0xFFFFFFFFFFFFFFFFULL

static int fds[2];

/* write_words writes n words, going on after short writes and EINTR. */
static int write_words(const uint64_t *w, size_t n)
{
	const char *p = (const char *)w;
	size_t left = n * 8;
	while (left > 0) {
		ssize_t k = write(fds[1], p, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		left -= (size_t)k;
	}
	return 0;
}

static void producer(void)
{
	close(fds[0]);
	uint64_t next = 0, buf[512];
	int ready = 0;
	while (!got_term) {
		for (int i = 0; i < 512; i++)
			buf[i] = next + (uint64_t)i;
		if (write_words(buf, 512))
			die("write: %s", strerror(errno));
		next += 512;
		if (!ready && next * 8 > 256 * 1024) {
			mark_ready(); /* well past a full pipe */
			ready = 1;
		}
	}
	uint64_t tail[2] = {END_MARK, next};
	if (write_words(tail, 2))
		failf("write the end mark: %s", strerror(errno));
	close(fds[1]);
}

/* read_word reads one word from fd 0; 1 at EOF, -1 on error. */
static int read_word(uint64_t *w)
{
	size_t got = 0;
	while (got < 8) {
		ssize_t k = read(0, (char *)w + got, 8 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			return got == 0 ? 1 : -1;
		got += (size_t)k;
	}
	return 0;
}

static void consumer(void)
{
	close(fds[1]);
	if (dup2(fds[0], 0) != 0)
		die("dup2: %s", strerror(errno));
	close(fds[0]);
	uint64_t want = 0;
	int ready = 0;
	for (;;) {
		/* Slowly while running, at full speed once asked to finish. */
		for (int i = 0; i < 512; i++) {
			uint64_t w;
			int r = read_word(&w);
			if (r != 0) {
				failf("read word %llu: %s", (unsigned long long)want, r > 0 ? "EOF before the end mark" : strerror(errno));
				return;
			}
			if (w == END_MARK) {
				uint64_t count;
				if (read_word(&count) != 0 || count != want)
					failf("the producer wrote %llu words, %llu came", (unsigned long long)count, (unsigned long long)want);
				char x;
				ssize_t k = read(0, &x, 1);
				if (k != 0)
					failf("after the end mark: read %zd (%s), want EOF", k, k < 0 ? strerror(errno) : "data");
				logf_("%llu words in order", (unsigned long long)want);
				return;
			}
			if (w != want) {
				failf("word %llu is %llu", (unsigned long long)want, (unsigned long long)w);
				return;
			}
			want++;
		}
		if (!ready && want >= 4096) {
			mark_ready();
			ready = 1;
		}
		if (!got_term)
			usleep(2000);
	}
}

/* start forks a child named name running fn, without waiting for it:
 * neither end of the pipe gets ready without the other. */
static pid_t start(const char *name, void (*fn)(void))
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork %s: %s", name, strerror(errno));
	if (pid == 0) {
		who = name;
		fn();
		_exit(nfail ? 1 : 0);
	}
	return pid;
}

int main(void)
{
	install_term();
	if (pipe(fds))
		die("pipe: %s", strerror(errno));
	pid_t kids[2];
	kids[0] = start("consumer", consumer);
	kids[1] = start("producer", producer);
	wait_ready(kids[0]);
	wait_ready(kids[1]);
	close(fds[0]);
	close(fds[1]);
	write_pidfile();
	wait_term();
	static const char *const names[2] = {"consumer", "producer"};
	forward_term(kids, 2);
	reap_kids(kids, names, 2);
	finish();
}
