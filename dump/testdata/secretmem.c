// Workload for TestDumpRefusesSecretmem: a shared mapping of memfd_secret
// memory (Linux 5.14+, when the kernel allows it) next to a plain one.
//
// Prints "ready PID SECRET" (address in hex), or exits 2 when the kernel
// has no memfd_secret; then waits for SIGTERM and exits 0 if the secret
// still holds its pattern.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../internal/testproc/testdata/waitterm.h"

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

int main(void) {
	close_range(3, ~0U, 0); // only stdio: inherited descriptors are not the test's
	int fd = syscall(447 /* memfd_secret */, 0);
	if (fd < 0 || ftruncate(fd, 4096)) {
		fprintf(stderr, "secretmem: memfd_secret: %s\n", strerror(errno));
		return 2;
	}
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		fprintf(stderr, "secretmem: mmap: %s\n", strerror(errno));
		return 2;
	}
	close(fd);
	strcpy(m, "secret");
	signal(SIGTERM, on_term);
	printf("ready %d %lx\n", getpid(), (unsigned long)m);
	fflush(stdout);
	wait_for_term(&term);
	return strcmp(m, "secret") != 0;
}
