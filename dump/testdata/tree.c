// Workload for dump tests: a parent and a child sharing one
// MAP_SHARED|MAP_ANONYMOUS region split by mprotect into two VMAs, each with
// a private anonymous region holding a pattern with holes, and mappings of
// a renamed file, a file replaced by a link, and a deleted file.
//
// Also a memfd mapped shared by both (open on fd 7, page 1 a hole), and a
// private page with data behind PROT_NONE.
//
// Usage: tree DIR. Prints
// "ready PARENT CHILD PRIV SHARED COW DELETED LINKED MEMFD PNONE"
// (pids, then mapping addresses in hex) when set up, then sleeps in
// a counting loop. On SIGTERM each process checks its memory and exits 0
// if everything is as it was written (the parent also waits for the child
// and fails if the child failed).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define SHARED_PAGES 4
#define PRIV_PAGES 16
#define MEMFD_FD 7

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static unsigned char *shared, *priv, *cow, *memfd_map, *pnone;
static const unsigned char *deleted_map, *linked_map;

// Private pages that hold data; the others are holes (page 12 is only read).
static const int priv_data[] = {0, 1, 4, 7, 8, 9};
#define NPRIV (int)(sizeof(priv_data) / sizeof(priv_data[0]))

static unsigned char pat(int who, int page, int i) { return (unsigned char)(who * 31 + page * 7 + i * 13 + 1); }

static void die(const char *what) {
	fprintf(stderr, "tree %d: %s: %s\n", getpid(), what, strerror(errno));
	exit(2);
}

static void make_file(const char *path, unsigned char seed) {
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0) die(path);
	unsigned char buf[2 * PG];
	for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (unsigned char)(seed + i);
	if (write(fd, buf, sizeof buf) != sizeof buf) die("write");
	close(fd);
}

static const unsigned char *map_file(const char *path, int flags, int prot) {
	int fd = open(path, O_RDONLY);
	if (fd < 0) die(path);
	void *p = mmap(NULL, 2 * PG, prot, flags, fd, 0);
	if (p == MAP_FAILED) die("mmap file");
	close(fd);
	return p;
}

static int check(int who) {
	int bad = 0;
	// Shared region: written by the parent (who 0) before fork.
	for (int i = 0; i < SHARED_PAGES * PG; i++)
		if (shared[i] != pat(0, 100 + i / PG, i % PG)) { bad++; break; }
	for (int k = 0; k < NPRIV; k++) {
		int p = priv_data[k];
		for (int i = 0; i < PG; i++)
			if (priv[p * PG + i] != pat(who, p, i)) { bad++; break; }
	}
	for (int p = 0; p < PRIV_PAGES; p++) {
		int data = 0;
		for (int k = 0; k < NPRIV; k++) data |= priv_data[k] == p;
		if (!data)
			for (int i = 0; i < PG; i++)
				if (priv[p * PG + i]) { bad++; break; }
	}
	if (cow[0] != (unsigned char)(0xc0 + who) || cow[PG] != (unsigned char)(0x22 + PG))
		bad++;
	if (deleted_map[5] != (unsigned char)(0x33 + 5) || linked_map[7] != (unsigned char)(0x44 + 7))
		bad++;
	// memfd: pages 0 and 2 written by the parent, page 1 a hole.
	for (int i = 0; i < PG; i++)
		if (memfd_map[i] != pat(0, 200, i) || memfd_map[PG + i] || memfd_map[2 * PG + i] != pat(0, 202, i)) { bad++; break; }
	if (mprotect(pnone, PG, PROT_READ)) bad++;
	for (int i = 0; i < PG; i++)
		if (pnone[i] != pat(who, 300, i)) { bad++; break; }
	if (bad) fprintf(stderr, "tree %d: memory check failed (%d)\n", getpid(), bad);
	return bad ? 1 : 0;
}

static void fill_private(int who) {
	for (int k = 0; k < NPRIV; k++) {
		int p = priv_data[k];
		for (int i = 0; i < PG; i++) priv[p * PG + i] = pat(who, p, i);
	}
	volatile unsigned char sink = priv[12 * PG]; // maps the zero page: not data
	(void)sink;
	cow[0] = (unsigned char)(0xc0 + who); // COW copy of a private file page
	// A private page with data behind PROT_NONE: dumped through /proc/PID/mem.
	for (int i = 0; i < PG; i++) pnone[i] = pat(who, 300, i);
	if (mprotect(pnone, PG, PROT_NONE)) die("mprotect none");
}

static void loop(void) {
	volatile unsigned long counter = 0;
	struct timespec ts = {0, 2000000};
	while (!term) {
		counter++;
		nanosleep(&ts, NULL);
	}
}

int main(int argc, char **argv) {
	// Only stdio: fds leaked by whoever started the test are not ours to dump.
	close_range(3, ~0U, 0);
	if (argc < 2) { fprintf(stderr, "usage: tree DIR\n"); return 2; }
	char a[4096], b[4096], c[4096], c2[4096], del[4096];
	snprintf(a, sizeof a, "%s/moved-from", argv[1]);
	snprintf(b, sizeof b, "%s/moved-to", argv[1]);
	snprintf(c, sizeof c, "%s/linked-old", argv[1]);
	snprintf(c2, sizeof c2, "%s/linked-new", argv[1]);
	snprintf(del, sizeof del, "%s/deleted", argv[1]);

	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);

	shared = mmap(NULL, SHARED_PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	priv = mmap(NULL, PRIV_PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED || priv == MAP_FAILED) die("mmap");
	for (int i = 0; i < SHARED_PAGES * PG; i++) shared[i] = pat(0, 100 + i / PG, i % PG);
	// Two VMAs over one shmem object.
	if (mprotect(shared + 2 * PG, 2 * PG, PROT_READ)) die("mprotect");

	// Renamed: mapped, then moved (maps follows the move).
	make_file(a, 0x22);
	cow = (unsigned char *)map_file(a, MAP_PRIVATE, PROT_READ | PROT_WRITE);
	if (rename(a, b)) die("rename");
	// Linked under a new name, old name removed: still linked, but the
	// path the kernel shows names nothing.
	make_file(c, 0x44);
	linked_map = map_file(c, MAP_SHARED, PROT_READ);
	if (link(c, c2) || unlink(c)) die("link");
	// Deleted.
	make_file(del, 0x33);
	deleted_map = map_file(del, MAP_SHARED, PROT_READ);
	if (unlink(del)) die("unlink");

	// A memfd mapped shared by both tasks, its fd kept open on MEMFD_FD.
	int mfd = memfd_create("mmcr-test", 0);
	if (mfd < 0 || ftruncate(mfd, 3 * PG)) die("memfd");
	memfd_map = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (memfd_map == MAP_FAILED) die("mmap memfd");
	if (dup2(mfd, MEMFD_FD) < 0) die("dup2 memfd");
	close(mfd);
	for (int i = 0; i < PG; i++) {
		memfd_map[i] = pat(0, 200, i);
		memfd_map[2 * PG + i] = pat(0, 202, i);
	}
	pnone = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pnone == MAP_FAILED) die("mmap pnone");

	int ready[2];
	if (pipe(ready)) die("pipe");
	pid_t child = fork();
	if (child < 0) die("fork");
	if (child == 0) {
		close(ready[0]);
		fill_private(1);
		if (write(ready[1], "x", 1) != 1) die("ready");
		close(ready[1]);
		loop();
		return check(1);
	}
	close(ready[1]);
	fill_private(0);
	char x;
	// The child's byte, then EOF once it has closed the pipe: a dump must
	// not meet the pipe as the child's fd 4.
	if (read(ready[0], &x, 1) != 1 || read(ready[0], &x, 1) != 0) die("wait child");
	close(ready[0]);
	printf("ready %d %d %lx %lx %lx %lx %lx %lx %lx\n", getpid(), child, (unsigned long)priv,
	       (unsigned long)shared, (unsigned long)cow, (unsigned long)deleted_map,
	       (unsigned long)linked_map, (unsigned long)memfd_map, (unsigned long)pnone);
	fflush(stdout);
	loop();
	int rc = check(0);
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) < 0) die("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "tree: child failed (status %#x)\n", st);
		rc = 1;
	}
	return rc;
}
