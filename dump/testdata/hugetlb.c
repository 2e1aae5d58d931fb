// Workload for TestDumpRefusesDeletedHugetlbfs: a hugetlb mapping (one
// 2 MiB page; a private mapping of a file of a hugetlbfs mount, deleted
// once mapped, when run as "hugetlb file PATH", else private anonymous
// memory) and a plain anonymous one, both holding a pattern.
//
// Prints "ready PID HUGE ANON" (addresses in hex), then waits for SIGTERM
// and exits 0 if both still hold their pattern.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../internal/testproc/testdata/waitterm.h"

#define HUGE_LEN (2 << 20)
#define ANON_LEN (64 << 10)

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static unsigned char pat(int m, size_t i) { return (unsigned char)(m * 59 + i * 7 + 3); }

int main(int argc, char **argv) {
	int file = argc > 2 && strcmp(argv[1], "file") == 0;
	close_range(3, ~0U, 0); // only stdio: inherited descriptors are not the test's
	unsigned char *huge;
	if (file) {
		int fd = open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		huge = fd < 0 || ftruncate(fd, HUGE_LEN) ? MAP_FAILED
		                                          : mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (fd >= 0)
			close(fd);
		unlink(argv[2]);
	} else {
		huge = mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	}
	if (huge == MAP_FAILED) {
		fprintf(stderr, "hugetlb: mmap MAP_HUGETLB: %s\n", strerror(errno));
		return 2;
	}
	unsigned char *anon = mmap(NULL, ANON_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED) {
		fprintf(stderr, "hugetlb: mmap: %s\n", strerror(errno));
		return 2;
	}
	for (size_t i = 0; i < HUGE_LEN; i++) huge[i] = pat(1, i);
	for (size_t i = 0; i < ANON_LEN; i++) anon[i] = pat(2, i);
	signal(SIGTERM, on_term);
	printf("ready %d %lx %lx\n", getpid(), (unsigned long)huge, (unsigned long)anon);
	fflush(stdout);
	wait_for_term(&term);
	for (size_t i = 0; i < HUGE_LEN; i++)
		if (huge[i] != pat(1, i)) return 1;
	for (size_t i = 0; i < ANON_LEN; i++)
		if (anon[i] != pat(2, i)) return 1;
	return 0;
}
