/* accepted PATH: a server (the parent) listening on PATH with two stream
 * connections its child made there and it accepted, across a dump and
 * restore. On the first each side has bytes from the other waiting
 * unread ("ping" for the parent, "hello" for the child); the second the
 * child has closed after sending "bye", which the parent has not read. On
 * SIGTERM the parent reads "ping", then "bye" and EOF on the closed
 * connection, and lets the child go, which reads "hello", answers "pong"
 * and connects to PATH once more; the parent reads "pong" and accepts the
 * new connection. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

static struct sockaddr_un addr = {.sun_family = AF_UNIX};
static int lsn;  /* the parent's listener */
static int mine; /* the child's end of the first connection */

static int connect_to(void)
{
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr))) {
		printf("FAIL child: connect to %s: %m\n", addr.sun_path);
		return -1;
	}
	return c;
}

static void child_setup(void)
{
	close(lsn);
	mine = connect_to();
	int last = connect_to();
	if (mine < 0 || last < 0 || write(mine, "ping", 4) != 4 || write(last, "bye", 3) != 3)
		_exit(2);
	close(last);
}

static int child_main(void)
{
	wait_term();
	char buf[16] = {0};
	if (read(mine, buf, sizeof(buf)) != 5 || strcmp(buf, "hello") != 0) {
		printf("FAIL child: read %s from the server, want hello\n", buf);
		return 1;
	}
	if (write(mine, "pong", 4) != 4) {
		printf("FAIL child: answer: %m\n");
		return 1;
	}
	return connect_to() < 0;
}

/* ready waits (5 s at most) until fd has something to read or accept. */
static int ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 5000) == 1;
}

static int expect(int fd, const char *want, const char *what)
{
	char buf[16] = {0};
	ssize_t n = ready(fd) ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n) != 0) {
		printf("FAIL parent: %s: read %zd \"%s\", want \"%s\"\n", what, n, buf, want);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	install_term();
	if (argc < 2)
		return 2;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", argv[1]);
	lsn = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&addr, sizeof(addr)) || listen(lsn, 4)) {
		printf("FAIL parent: listen on %s: %m\n", addr.sun_path);
		return 1;
	}
	pid_t kid = fork_ready(child_setup);
	if (kid == 0)
		_exit(child_main());
	int conn = ready(lsn) ? accept(lsn, NULL, NULL) : -1;
	int gone = ready(lsn) ? accept(lsn, NULL, NULL) : -1;
	if (kid < 0 || conn < 0 || gone < 0 || write(conn, "hello", 5) != 5 || !ready(conn) || !ready(gone)) {
		printf("FAIL parent: accept the child's connections: %m\n");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	wait_term();

	int bad = expect(conn, "ping", "first connection") | expect(gone, "bye", "closed connection") |
		  expect(gone, "", "closed connection after bye");
	kill(kid, SIGTERM);
	bad |= expect(conn, "pong", "first connection after the child's answer");
	int again = ready(lsn) ? accept(lsn, NULL, NULL) : -1;
	if (again < 0) {
		printf("FAIL parent: no new connection to accept: %m\n");
		bad = 1;
	}
	return finish_parent(bad, kid); /* its second SIGTERM changes nothing */
}
