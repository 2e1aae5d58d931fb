/* memtree: a process (and optionally a forked child sharing anonymous
 * memory with it) that fills memory with patterns, prints READY, sleeps
 * until SIGTERM, then checks every byte and prints PASS or FAIL. Used by
 * restore's tests: dump it, restore it, SIGTERM it. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define N (8 << 20)
#define SHN (1 << 20)

static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

static int check(const char *who, const char *what, unsigned char *p, size_t n, unsigned mul, unsigned add, int holes) {
	for (size_t i = 0; i < n; i++) {
		unsigned char want = (unsigned char)(i * mul + add);
		if (holes && (i / 4096) % 3 == 2)
			want = 0;
		if (p[i] != want) {
			printf("FAIL %s %s: byte %zu = %u, want %u\n", who, what, i, p[i], want);
			return 1;
		}
	}
	return 0;
}

static void fill(unsigned char *p, size_t n, unsigned mul, unsigned add, int holes) {
	for (size_t i = 0; i < n; i++) {
		if (holes && (i / 4096) % 3 == 2)
			continue;
		p[i] = (unsigned char)(i * mul + add);
	}
}

int main(int argc, char **argv) {
	int kids = argc > 1 ? atoi(argv[1]) : 0;
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);

	unsigned char *heap = malloc(N);
	unsigned char *anon = mmap(NULL, N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *ro = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long *shared = mmap(NULL, SHN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	volatile unsigned char stackbuf[64 * 1024];
	if (!heap || anon == MAP_FAILED || ro == MAP_FAILED || shared == MAP_FAILED) {
		printf("FAIL setup\n");
		return 1;
	}
	fill(heap, N, 7, 1, 0);
	fill(anon, N, 13, 5, 1);
	fill(ro, 4 * 4096, 3, 9, 0);
	mprotect(ro, 4 * 4096, PROT_READ);
	mlock(ro, 4 * 4096);
	fill((unsigned char *)stackbuf, sizeof stackbuf, 11, 3, 0);
	fill((unsigned char *)shared + 4096, SHN - 4096, 17, 2, 0);
	shared[0] = 0x5eed;

	pid_t kid = 0;
	if (kids > 0) {
		kid = fork();
		if (kid == 0) {
			/* The child writes into its private copy and the shared page. */
			fill(anon, N, 19, 4, 1);
			shared[1] = (unsigned long)getpid();
			while (!term)
				usleep(1000);
			int bad = check("child", "anon", anon, N, 19, 4, 1) ||
				  check("child", "heap", heap, N, 7, 1, 0) ||
				  check("child", "shared", (unsigned char *)shared + 4096, SHN - 4096, 17, 2, 0);
			if (shared[0] != 0x5eedbeef) {
				printf("FAIL child: parent's write after restore not seen (%#lx)\n", shared[0]);
				bad = 1;
			}
			shared[2] = bad ? 0xbad : 0xc0de; /* seen by the parent only if still shared */
			fflush(stdout);
			_exit(bad);
		}
		while (shared[1] != (unsigned long)kid)
			usleep(1000);
	}
	printf("READY %d\n", kid);
	fflush(stdout);
	unsigned long ticks = 0;
	while (!term) {
		usleep(1000);
		ticks++;
	}
	int bad = check("parent", "heap", heap, N, 7, 1, 0) ||
		  check("parent", "anon", anon, N, 13, 5, 1) ||
		  check("parent", "ro", ro, 4 * 4096, 3, 9, 0) ||
		  check("parent", "stack", (unsigned char *)stackbuf, sizeof stackbuf, 11, 3, 0) ||
		  check("parent", "shared", (unsigned char *)shared + 4096, SHN - 4096, 17, 2, 0);
	if (kid) {
		shared[0] = 0x5eedbeef;
		kill(kid, SIGTERM);
		int st;
		if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("FAIL child status %#x\n", st);
			bad = 1;
		} else if (shared[2] != 0xc0de) {
			printf("FAIL child's shared write not seen (%#lx)\n", shared[2]);
			bad = 1;
		}
	}
	if (!bad)
		printf("PASS %lu\n", ticks);
	fflush(stdout);
	return bad;
}
