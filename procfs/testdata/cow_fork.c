/* Private anonymous pages written before fork stay shared copy-on-write
 * until one side writes them. Pages 0-3 are written by the parent, then it
 * forks; the child writes page 1. Both print "pid addr" and wait for stdin
 * to close. Used by the procfs PagePFNs test. */
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	char *m = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (int i = 0; i < 4; i++)
		m[i * 4096] = 'a' + i;
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0)
		m[4096] = 'X';
	else
		usleep(20000); /* child first: the test reads child, then parent */
	printf("%d %lx\n", getpid(), (unsigned long)m);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return 0;
}
