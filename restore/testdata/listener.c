/* listener PATH: a parent with a stream socket listening on PATH (its file
 * made mode 0640, owner 65534:65534) and a datagram socket bound to an
 * abstract name, and a child, across a dump and restore. On SIGTERM the
 * parent lets the child go, which connects to PATH and sends "hi", and
 * sends "ping" to the abstract name; the parent accepts, reads both, and
 * checks the listener and the socket file. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static struct sockaddr_un lsn = {.sun_family = AF_UNIX}, abs_ = {.sun_family = AF_UNIX};
static socklen_t abs_len;

static int child_talks(void)
{
	int c = socket(AF_UNIX, SOCK_STREAM, 0), g = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (c < 0 || g < 0 || connect(c, (struct sockaddr *)&lsn, sizeof(lsn)) || write(c, "hi", 2) != 2) {
		printf("FAIL child: connect to %s: %m\n", lsn.sun_path);
		return 1;
	}
	if (sendto(g, "ping", 4, 0, (struct sockaddr *)&abs_, abs_len) != 4) {
		printf("FAIL child: send to the abstract name: %m\n");
		return 1;
	}
	return 0;
}

static int parent_checks(int l, int d)
{
	struct pollfd p = {.fd = l, .events = POLLIN};
	if (poll(&p, 1, 5000) != 1) {
		printf("FAIL parent: no connection to accept\n");
		return 1;
	}
	int a = accept(l, NULL, NULL);
	char buf[8] = {0};
	if (a < 0 || read(a, buf, sizeof(buf)) != 2 || strcmp(buf, "hi") != 0) {
		printf("FAIL parent: accepted: %s (%m)\n", buf);
		return 1;
	}
	p.fd = d;
	if (poll(&p, 1, 5000) != 1 || recv(d, buf, sizeof(buf), 0) != 4 || memcmp(buf, "ping", 4) != 0) {
		printf("FAIL parent: nothing at the abstract name\n");
		return 1;
	}
	int on = 0;
	socklen_t len = sizeof(on);
	struct stat st;
	if (getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) || !on || stat(lsn.sun_path, &st) || !S_ISSOCK(st.st_mode) ||
	    (st.st_mode & 0777) != 0640 || st.st_uid != 65534 || st.st_gid != 65534) {
		printf("FAIL parent: listener %d, socket file mode %o owner %d:%d\n", on, st.st_mode, st.st_uid, st.st_gid);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strlen(argv[1]) >= sizeof(lsn.sun_path))
		return 2;
	install_term();
	strcpy(lsn.sun_path, argv[1]);
	int n = snprintf(abs_.sun_path + 1, sizeof(abs_.sun_path) - 1, "mmcr-listener-%d", getpid());
	abs_len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	int l = socket(AF_UNIX, SOCK_STREAM, 0), d = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (l < 0 || d < 0 || bind(l, (struct sockaddr *)&lsn, sizeof(lsn)) || chmod(lsn.sun_path, 0640) ||
	    chown(lsn.sun_path, 65534, 65534) || listen(l, 7) || bind(d, (struct sockaddr *)&abs_, abs_len))
		return 2;
	fflush(stdout);
	pid_t kid = fork_ready(NULL);
	if (kid == 0) {
		close(l);
		close(d);
		wait_term();
		int bad = child_talks();
		fflush(stdout);
		_exit(bad);
	}
	if (kid < 0)
		return 2;
	printf("READY\n");
	fflush(stdout);
	wait_term();
	alarm(20);
	kill(kid, SIGTERM); /* the child talks first */
	return finish_parent(parent_checks(l, d), kid);
}
