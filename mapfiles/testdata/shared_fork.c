/* A shared anonymous mapping inherited over fork: parent and child print
 * "pid addr len" each, then wait until stdin closes. Used by mapfiles tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	size_t len = 4 * 4096;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	strcpy(m, "shared");
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		printf("%d %lx %zu\n", getpid(), (unsigned long)m, len);
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0)
			;
		_exit(0);
	}
	usleep(1000); /* let the child print first: the test reads two lines */
	printf("%d %lx %zu\n", getpid(), (unsigned long)m, len);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	waitpid(pid, NULL, 0);
	return 0;
}
