/* objs: a three-level tree (root -> child -> grandchild) in its own
 * session, sharing a memfd, a piece of a shared anonymous mapping (mapped
 * at a non-zero offset), a MAP_SHARED file and a deleted file mapped
 * MAP_PRIVATE. Usage: objs DIR. Prints READY, then on SIGTERM checks
 * everything, stops its descendants and prints PASS or FAIL. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
static volatile sig_atomic_t term;
static void on_term(int s) { (void)s; term = 1; }

static unsigned long *mfd, *shm, *shf;
static unsigned char *ghost;
static int depth;
static const char *dir;

static int checkall(const char *who) {
	for (int i = 0; i < 3 * PG; i++)
		if (ghost[i] != (unsigned char)(i * 5 + 1)) {
			printf("FAIL %s: ghost byte %d = %u\n", who, i, ghost[i]);
			return 1;
		}
	if (shm[100] != 0xabcdef) {
		printf("FAIL %s: shm[100] = %#lx\n", who, shm[100]);
		return 1;
	}
	if (shf[7] != 0x77) {
		printf("FAIL %s: shared file word = %#lx\n", who, shf[7]);
		return 1;
	}
	return 0;
}

/* Every task bumps its own slot in the memfd and the shared file after
 * SIGTERM; its parent checks it sees the bump: the memory is still shared. */
static int run(void) {
	pid_t kid = 0;
	if (depth < 2) {
		kid = fork();
		if (kid == 0) {
			depth++;
			return run();
		}
		while (mfd[depth + 1] == 0)
			usleep(1000);
	}
	mfd[depth] = (unsigned long)getpid();
	if (depth == 0) {
		printf("READY %d\n", kid);
		fflush(stdout);
	}
	while (!term)
		usleep(1000);
	char who[32];
	snprintf(who, sizeof who, "depth %d", depth);
	int bad = checkall(who);
	if (kid) {
		kill(kid, SIGTERM);
		int st;
		if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("FAIL %s: child status %#x\n", who, st);
			bad = 1;
		} else if (mfd[16 + depth + 1] != 1 || shm[200 + depth + 1] != 2 || shf[32 + depth + 1] != 3) {
			printf("FAIL %s: child's writes not seen: %lu %lu %lu\n", who, mfd[16 + depth + 1], shm[200 + depth + 1], shf[32 + depth + 1]);
			bad = 1;
		}
	}
	if (getsid(0) != (pid_t)mfd[0] || getpgid(0) != (pid_t)mfd[0]) {
		printf("FAIL %s: sid %d pgid %d, want %lu\n", who, getsid(0), getpgid(0), mfd[0]);
		bad = 1;
	}
	if (depth == 0) {
		struct stat a, b;
		char cwd[4096], want[4096];
		snprintf(want, sizeof want, "/proc/self/map_files/%lx-%lx", (unsigned long)mfd, (unsigned long)mfd + 4 * PG);
		if (fstat(50, &a) || stat(want, &b) || a.st_ino != b.st_ino || lseek(50, 0, SEEK_CUR) != 123) {
			printf("FAIL memfd fd 50\n");
			bad = 1;
		}
		if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, dir) != 0) {
			printf("FAIL cwd %s, want %s\n", cwd, dir);
			bad = 1;
		}
		char buf[8] = {0};
		int fd = open("log.txt", O_RDONLY);
		if (write(51, "b", 1) != 1 || read(fd, buf, sizeof buf) != 2 || strcmp(buf, "ab") != 0) {
			printf("FAIL log.txt %s\n", buf);
			bad = 1;
		}
		close(fd);
	}
	mfd[16 + depth] = 1;
	shm[200 + depth] = 2;
	shf[32 + depth] = 3;
	if (depth == 0 && !bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	setsid();
	dir = argv[1];
	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	char path[4096];

	int fd = memfd_create("objs-memfd", 0);
	ftruncate(fd, 4 * PG);
	mfd = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	/* Keep the memfd open at fd 50, at offset 123. */
	dup2(fd, 50);
	lseek(50, 123, SEEK_SET);
	close(fd);
	if (chdir(argv[1]))
		return 2;
	fd = open("log.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	dup2(fd, 51);
	close(fd);
	write(51, "a", 1);

	/* A shared anon object of 8 pages of which only pages 2..5 stay mapped. */
	unsigned char *big = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	munmap(big, 2 * PG);
	munmap(big + 6 * PG, 2 * PG);
	shm = (unsigned long *)(big + 2 * PG);
	shm[100] = 0xabcdef;

	snprintf(path, sizeof path, "%s/shared.dat", argv[1]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ftruncate(fd, 2 * PG);
	shf = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	shf[7] = 0x77;
	msync(shf, 2 * PG, MS_SYNC);

	snprintf(path, sizeof path, "%s/ghost.dat", argv[1]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (int i = 0; i < 3 * PG; i++) {
		unsigned char c = (unsigned char)(i * 5 + 1);
		write(fd, &c, 1);
	}
	ghost = mmap(NULL, 3 * PG, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	unlink(path);

	if (mfd == MAP_FAILED || big == MAP_FAILED || shf == MAP_FAILED || ghost == MAP_FAILED) {
		printf("FAIL setup\n");
		return 1;
	}
	return run();
}
