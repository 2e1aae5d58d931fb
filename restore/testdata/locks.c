/* locks DIR: file locks held across a dump and restore. The parent holds
 * an flock (LOCK_EX) on DIR/a, which its child shares through the
 * inherited description, POSIX locks on DIR/b (write on bytes 10-19, read
 * from 100 to the end), an OFD read lock on all of DIR/c; the child holds
 * a shared flock on DIR/d. On SIGTERM a new process, sharing nothing,
 * probes each: the flock on a and the write ranges of b and c conflict,
 * b's other bytes are free, d takes another shared flock but no exclusive
 * one. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/file.h>

static char dir[512];

static int openat_(const char *name)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return open(path, O_RDWR | O_CREAT, 0600);
}

static void child_setup(void)
{
	int d = openat_("d");
	if (d < 0 || flock(d, LOCK_SH))
		_exit(2);
}

static int lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return fcntl(fd, cmd, &fl);
}

/* held says what F_GETLK/F_OFD_GETLK finds for a write lock on the range:
 * the type of a lock in the way, or F_UNLCK. */
static short held(int fd, int cmd, off_t start, off_t len)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	if (fcntl(fd, cmd, &fl))
		return -1;
	return fl.l_type;
}

/* probe runs in a process of its own: 0 when every lock is in place. */
static int probe(pid_t parent)
{
	int a = openat_("a"), b = openat_("b"), c = openat_("c"), d = openat_("d");
	if (flock(a, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		printf("FAIL probe: the flock on a is gone\n");
		return 1;
	}
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 12, .l_len = 1};
	if (fcntl(b, F_GETLK, &fl) || fl.l_type != F_WRLCK || fl.l_pid != parent || fl.l_start != 10 || fl.l_len != 10) {
		printf("FAIL probe: b's write lock on 10-19: type %d pid %d start %ld len %ld\n", fl.l_type, (int)fl.l_pid,
		       (long)fl.l_start, (long)fl.l_len);
		return 1;
	}
	if (held(b, F_GETLK, 200, 5) != F_RDLCK || held(b, F_GETLK, 50, 10) != F_UNLCK) {
		printf("FAIL probe: b's read lock from 100 on, or its free bytes at 50\n");
		return 1;
	}
	if (held(c, F_OFD_GETLK, 0, 0) != F_RDLCK) {
		printf("FAIL probe: c's OFD read lock is gone\n");
		return 1;
	}
	if (flock(d, LOCK_EX | LOCK_NB) == 0 || flock(d, LOCK_SH | LOCK_NB) != 0) {
		printf("FAIL probe: d's shared flock\n");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	install_term();
	if (argc < 2)
		return 2;
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	int a = openat_("a"), b = openat_("b"), c = openat_("c");
	if (a < 0 || b < 0 || c < 0 || flock(a, LOCK_EX) || lock(b, F_SETLK, F_WRLCK, 10, 10) ||
	    lock(b, F_SETLK, F_RDLCK, 100, 0) || lock(c, F_OFD_SETLK, F_RDLCK, 0, 0)) {
		printf("FAIL parent: take the locks: %m\n");
		return 1;
	}
	pid_t kid = fork_ready(child_setup);
	if (kid == 0) {
		wait_term();
		_exit(0);
	}
	printf("READY\n");
	fflush(stdout);
	wait_term();

	pid_t parent = getpid();
	pid_t p = fork();
	if (p == 0)
		_exit(probe(parent));
	int st, bad = 0;
	if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bad = 1;
	return finish_parent(bad, kid);
}
