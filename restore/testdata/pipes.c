/* pipes: a parent and a child holding pipes across a dump and restore.
 *   a: child to parent, 3000 bytes unread at dump; the parent's read end
 *      is also its fd 20 (dup: one open file description, made
 *      non-blocking through fd 20). At the end the child writes "bye"
 *      and exits: the parent must read it and then EOF (no writer left,
 *      mmcr's own opens of the pipe included).
 *   b: parent to child, capacity 1 MiB, 200 KiB unread; the parent's
 *      write end non-blocking; the child reads through its inherited
 *      (blocking) end and also holds a second, non-blocking open of it.
 *   c: 100 bytes unread, every writer gone: the parent reads them, then
 *      EOF.
 *   d: the write end alone, its reader gone: writing fails with EPIPE.
 *   e: the child's stdin, written by the parent after the restore: a
 *      pipe of the tree's own at fd 0, not the harness's stdio.
 *   an eventfd (counter 5) shared by both: the child adds 3 after the
 *      restore, the parent must read 8 (one counter, not two).
 * With a second argument, the parent makes that FIFO (mkfifo) and holds a
 * non-blocking reader and a writer of it, "fifo bytes" waiting; the child
 * holds it read-write. After the restore the parent reads them, writes and
 * reads "more", and once the child is gone reads the "c" it wrote. A
 * second FIFO (the path with "2" appended) the parent holds a non-blocking
 * reader of, no writer ever: it reads EOF, before and after.
 * With a file argument, the parent also opens that file before the fork
 * and writes "start": the child's inherited fd shares its offset. After
 * the restore the child writes "child", then the parent "parent": the
 * file must read "startchildparent" (one offset, not two).
 * Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#define A_BYTES 3000
#define B_SIZE (1 << 20)
#define B_BYTES (200 << 10)
#define C_BYTES 100

static int a[2], b[2], c[2], d[2], e[2], b_extra = -1, file = -1, efd = -1, fr = -1, fw = -1, frw = -1;
static const char *fifo;
static int fr2 = -1;

static unsigned char pat(size_t i, int seed) { return (unsigned char)(i * 31 + i / 4096 + seed); }

static int write_pat(int fd, size_t n, int seed)
{
	unsigned char buf[4096];
	for (size_t done = 0; done < n;) {
		size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = pat(done + i, seed);
		ssize_t w = write(fd, buf, k);
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

/* read_pat reads n bytes and checks them against the pattern. */
static int read_pat(const char *who, int fd, size_t n, int seed)
{
	unsigned char buf[4096];
	for (size_t done = 0; done < n;) {
		size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);
		ssize_t r = read(fd, buf, k);
		if (r <= 0) {
			printf("FAIL %s: read at %zu of %zu: %zd (%s)\n", who, done, n, r, r < 0 ? strerror(errno) : "EOF");
			return 1;
		}
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pat(done + (size_t)i, seed)) {
				printf("FAIL %s: byte %zu is %u, want %u\n", who, done + (size_t)i, buf[i], pat(done + (size_t)i, seed));
				return 1;
			}
		done += (size_t)r;
	}
	return 0;
}

static void child_setup(void)
{
	if (fifo && ((frw = open(fifo, O_RDWR)) < 0))
		_exit(7);
	close(a[0]);
	close(b[1]);
	close(c[0]);
	close(d[1]);
	if (write_pat(a[1], A_BYTES, 1))
		_exit(3);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b[0]);
	b_extra = open(path, O_RDONLY | O_NONBLOCK);
	if (b_extra < 0)
		_exit(4);
	close(e[1]);
	if (dup2(e[0], 0) != 0)
		_exit(5);
	close(e[0]);
}

static int check_child(void)
{
	alarm(10); /* a byte missing would block a read for good */
	if (fcntl(b[0], F_GETPIPE_SZ) != B_SIZE || nonblocking(b[0]) || !nonblocking(b_extra)) {
		printf("FAIL child: pipe b: capacity %d, inherited end non-blocking %d, second open non-blocking %d\n",
		       fcntl(b[0], F_GETPIPE_SZ), nonblocking(b[0]), nonblocking(b_extra));
		return 1;
	}
	if (read_pat("child: pipe b", b[0], B_BYTES, 2))
		return 1;
	char line[64] = {0};
	if (read(0, line, sizeof(line) - 1) <= 0 || strcmp(line, "to the child\n") != 0) {
		printf("FAIL child: stdin gave \"%s\"\n", line);
		return 1;
	}
	if (frw >= 0 && write(frw, "c", 1) != 1) {
		printf("FAIL child: FIFO: write: %m\n");
		return 1;
	}
	uint64_t three = 3;
	if (write(efd, &three, 8) != 8) {
		printf("FAIL child: eventfd: write: %m\n");
		return 1;
	}
	if (file >= 0 && write(file, "child", 5) != 5) {
		printf("FAIL child: write the file: %m\n");
		return 1;
	}
	if (write(a[1], "bye", 3) != 3) {
		printf("FAIL child: pipe a: write: %m\n");
		return 1;
	}
	return 0;
}

static int check_parent(void)
{
	if (shares_nonblocking("pipe a", a[0], 20))
		return 1;
	if (read_pat("parent: pipe a", a[0], A_BYTES, 1) || read_pat("parent: pipe c", c[0], C_BYTES, 3))
		return 1;
	char x;
	ssize_t r = read(c[0], &x, 1);
	if (r != 0) {
		printf("FAIL parent: pipe c: read after its bytes: %zd, want EOF\n", r);
		return 1;
	}
	if (write(d[1], "x", 1) != -1 || errno != EPIPE) {
		printf("FAIL parent: pipe d: write to a pipe with no reader: %m, want EPIPE\n");
		return 1;
	}
	if (!nonblocking(b[1]) || fcntl(b[1], F_GETPIPE_SZ) != B_SIZE) {
		printf("FAIL parent: pipe b: non-blocking %d, capacity %d\n", nonblocking(b[1]), fcntl(b[1], F_GETPIPE_SZ));
		return 1;
	}
	if (fr >= 0) {
		char got[16] = {0};
		if (read(fr, got, sizeof(got)) != 10 || strcmp(got, "fifo bytes") != 0 || write(fw, "more", 4) != 4 ||
		    read(fr, got, sizeof(got)) != 4 || memcmp(got, "more", 4) != 0 || !nonblocking(fr)) {
			printf("FAIL parent: FIFO: read \"%s\"\n", got);
			return 1;
		}
	}
	if (fr2 >= 0 && read(fr2, &x, 1) != 0) {
		printf("FAIL parent: a FIFO no one writes to: read %m, want EOF\n");
		return 1;
	}
	if (write(e[1], "to the child\n", 13) != 13) {
		printf("FAIL parent: pipe e: write: %m\n");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	install_term();
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1) {
		file = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (file < 0 || write(file, "start", 5) != 5)
			return 2;
	}
	if (argc > 2) {
		fifo = argv[2];
		if (mkfifo(fifo, 0600) || (fr = open(fifo, O_RDONLY | O_NONBLOCK)) < 0 || (fw = open(fifo, O_WRONLY)) < 0 ||
		    write(fw, "fifo bytes", 10) != 10)
			return 2;
		char path2[4096];
		snprintf(path2, sizeof(path2), "%s2", fifo);
		if (mkfifo(path2, 0600) || (fr2 = open(path2, O_RDONLY | O_NONBLOCK)) < 0)
			return 2;
	}
	if (pipe(a) || pipe(b) || pipe(c) || pipe(d) || pipe(e))
		return 2;
	efd = eventfd(5, EFD_NONBLOCK);
	if (efd < 0)
		return 2;
	if (fcntl(b[1], F_SETPIPE_SZ, B_SIZE) != B_SIZE)
		return 2;
	if (write_pat(c[1], C_BYTES, 3))
		return 2;
	close(c[1]);
	close(d[0]);
	fflush(stdout);
	pid_t kid = fork_ready(child_setup);
	if (kid == 0) {
		wait_term();
		int bad = check_child();
		fflush(stdout);
		_exit(bad);
	}
	if (kid < 0)
		return 2;
	close(a[1]);
	close(b[0]);
	close(e[0]);
	if (dup2(a[0], 20) != 20 || fcntl(20, F_SETFL, O_NONBLOCK))
		return 2;
	if (write_pat(b[1], B_BYTES, 2) || fcntl(b[1], F_SETFL, O_NONBLOCK))
		return 2;
	printf("READY\n");
	fflush(stdout);
	wait_term();
	alarm(20); /* a child blocked for good would block waitpid */
	int bad = check_parent();
	bad = reap_said_bye(bad, kid, a[0], "pipe a");
	char cb = 0;
	if (!bad && fr >= 0 && (read(fr, &cb, 1) != 1 || cb != 'c')) {
		printf("FAIL parent: FIFO: the child's byte: %c\n", cb);
		bad = 1;
	}
	uint64_t count = 0;
	if (!bad && (read(efd, &count, 8) != 8 || count != 8)) {
		printf("FAIL parent: the eventfd shared with the child counts %llu, want 8\n", (unsigned long long)count);
		bad = 1;
	}
	char content[32] = {0};
	if (!bad && file >= 0 &&
	    (lseek(file, 0, SEEK_CUR) != 10 || write(file, "parent", 6) != 6 || pread(file, content, sizeof(content) - 1, 0) != 16 ||
	     strcmp(content, "startchildparent") != 0)) {
		printf("FAIL parent: the file shared with the child reads \"%s\" (offset %ld before the parent's write)\n", content,
		       (long)lseek(file, 0, SEEK_CUR));
		bad = 1;
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
