/* filefork: a three-level tree (root -> child -> grandchild) sharing a
 * file mapped MAP_PRIVATE, each having written other pages of it after
 * the forks, so each sees its own private pages and the file elsewhere.
 * Usage: filefork FILE. Prints READY, then on SIGTERM every task checks
 * every page; the root prints PASS or FAIL. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define NP 8

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

static unsigned char *priv, *ro;

/* page pg of the file holds (i * 3 + pg) bytes; a task's own write of
 * page pg holds the byte tag. */
static void put(int pg, unsigned char tag) { memset(priv + pg * PG, tag, PG); }

/* want[pg] is the tag a task expects in page pg, 0 for the file's bytes. */
static int check(const char *who, const unsigned char want[NP]) {
	for (int pg = 0; pg < NP; pg++)
		for (int i = 0; i < PG; i++) {
			unsigned char w = want[pg] ? want[pg] : (unsigned char)(i * 3 + pg);
			if (priv[pg * PG + i] != w) {
				printf("FAIL %s: page %d byte %d = %u, want %u\n", who, pg, i, priv[pg * PG + i], w);
				return 1;
			}
			if (ro[pg * PG + i] != (unsigned char)(i * 3 + pg)) {
				printf("FAIL %s: read-only page %d byte %d = %u\n", who, pg, i, ro[pg * PG + i]);
				return 1;
			}
		}
	return 0;
}

static void wait_term(void) {
	while (!term)
		usleep(1000);
}

/* reap waits for pid after SIGTERM; nonzero if it failed. */
static int reap(pid_t pid) {
	int st;
	kill(pid, SIGTERM);
	return waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 2;
	unsigned char buf[PG];
	for (int pg = 0; pg < NP; pg++) {
		for (int i = 0; i < PG; i++)
			buf[i] = (unsigned char)(i * 3 + pg);
		if (write(fd, buf, PG) != PG)
			return 2;
	}
	priv = mmap(NULL, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ro = mmap(NULL, NP * PG, PROT_READ, MAP_PRIVATE, fd, 0);
	if (priv == MAP_FAILED || ro == MAP_FAILED)
		return 2;
	close(fd);
	int ready[2];
	if (pipe(ready))
		return 2;
	put(0, 0xa0); /* before the forks: every task's */
	pid_t kid = fork();
	if (kid == 0) {
		put(2, 0xc2);
		put(4, 0xc4);
		pid_t grandkid = fork();
		if (grandkid == 0) {
			put(5, 0xd5);
			write(ready[1], "g", 1);
			close(ready[0]);
			close(ready[1]);
			wait_term();
			const unsigned char want[NP] = {0xa0, 0, 0xc2, 0, 0xc4, 0xd5, 0, 0};
			_exit(check("grandchild", want));
		}
		put(6, 0xc6); /* after the fork: the grandchild has the file there */
		write(ready[1], "c", 1);
		close(ready[0]);
		close(ready[1]);
		wait_term();
		const unsigned char want[NP] = {0xa0, 0, 0xc2, 0, 0xc4, 0, 0xc6, 0};
		int bad = check("child", want);
		if (reap(grandkid)) {
			printf("FAIL grandchild\n");
			bad = 1;
		}
		fflush(stdout);
		_exit(bad);
	}
	put(1, 0xb1);
	put(4, 0xb4);
	close(ready[1]);
	/* Both bytes, then EOF once both have closed the pipe: pipes are
	 * not dumped, so none may be open at READY. */
	char c;
	for (int i = 0; i < 2; i++)
		if (read(ready[0], &c, 1) != 1)
			return 2;
	if (read(ready[0], &c, 1) != 0)
		return 2;
	close(ready[0]);
	printf("READY %d\n", kid);
	fflush(stdout);
	wait_term();
	const unsigned char want[NP] = {0xa0, 0xb1, 0, 0, 0xb4, 0, 0, 0};
	int bad = check("parent", want);
	if (reap(kid)) {
		printf("FAIL child\n");
		bad = 1;
	}
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
