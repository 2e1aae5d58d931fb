/* sockets: a parent and a child holding unix socket pairs across a dump
 * and restore.
 *   s: stream, parent to child; 5000 bytes from the child wait at the
 *      parent's end, "ping" from the parent at the child's. The parent's
 *      end is non-blocking and also its fd 30 (dup). At the end the child
 *      writes "bye" and exits: the parent must read it, then EOF.
 *   g: datagram, the parent's three messages wait at the child's end
 *      ("d1", an empty one, "d333"), whose SO_RCVBUF is 64 KiB (getsockopt
 *      says 128 KiB).
 *   q: seqpacket, both ends in the child: two packets wait at one end, the
 *      other shut down for writing: they read back, then EOF.
 *   h: stream, the child wrote "last words" and closed its end: the
 *      parent reads them, then EOF.
 *   u: a datagram socket of the parent's, never connected: it is one
 *      again (ENOTCONN).
 * Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#define S_BYTES 5000

static int s[2], g[2], q[2], h[2], u = -1;

static unsigned char pat(size_t i) { return (unsigned char)(i * 13 + 5); }

static void child_setup(void)
{
	close(s[0]);
	close(g[0]);
	close(h[0]);
	if (write(h[1], "last words", 10) != 10)
		_exit(6);
	close(h[1]);
	unsigned char buf[S_BYTES];
	for (size_t i = 0; i < S_BYTES; i++)
		buf[i] = pat(i);
	if (write(s[1], buf, S_BYTES) != S_BYTES)
		_exit(3);
	int rcv = 64 << 10;
	if (setsockopt(g[1], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)))
		_exit(4);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, q) || send(q[0], "p1", 2, 0) != 2 || send(q[0], "p22", 3, 0) != 3 ||
	    shutdown(q[0], SHUT_WR))
		_exit(5);
}

static int check_child(void)
{
	alarm(10); /* a message missing would block a read for good */
	char buf[64];
	if (read(s[1], buf, 4) != 4 || memcmp(buf, "ping", 4) != 0) {
		printf("FAIL child: stream: want ping\n");
		return 1;
	}
	int rcv = 0;
	socklen_t len = sizeof(rcv);
	if (getsockopt(g[1], SOL_SOCKET, SO_RCVBUF, &rcv, &len) || rcv != 128 << 10) {
		printf("FAIL child: datagram SO_RCVBUF %d, want %d\n", rcv, 128 << 10);
		return 1;
	}
	const char *want[] = {"d1", "", "d333"};
	for (int i = 0; i < 3; i++) {
		ssize_t n = recv(g[1], buf, sizeof(buf), MSG_DONTWAIT);
		if (n != (ssize_t)strlen(want[i]) || memcmp(buf, want[i], n) != 0) {
			printf("FAIL child: datagram %d: %zd bytes (%s), want \"%s\"\n", i, n, n < 0 ? strerror(errno) : "", want[i]);
			return 1;
		}
	}
	if (recv(q[1], buf, sizeof(buf), 0) != 2 || recv(q[1], buf + 2, sizeof(buf), 0) != 3 || memcmp(buf, "p1p22", 5) != 0 ||
	    recv(q[1], buf, sizeof(buf), 0) != 0) {
		printf("FAIL child: seqpacket: want p1, p22, then EOF\n");
		return 1;
	}
	if (write(s[1], "bye", 3) != 3) {
		printf("FAIL child: stream: write: %m\n");
		return 1;
	}
	return 0;
}

static int check_parent(void)
{
	if (shares_nonblocking("stream", s[0], 30))
		return 1;
	unsigned char buf[S_BYTES];
	size_t got = 0;
	while (got < S_BYTES) {
		ssize_t n = read(s[0], buf + got, S_BYTES - got);
		if (n <= 0) {
			printf("FAIL parent: stream: read at %zu of %d: %zd (%s)\n", got, S_BYTES, n, n < 0 ? strerror(errno) : "EOF");
			return 1;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < S_BYTES; i++)
		if (buf[i] != pat(i)) {
			printf("FAIL parent: stream: byte %zu is %u, want %u\n", i, buf[i], pat(i));
			return 1;
		}
	if (write(s[0], "ping", 4) != 4) {
		printf("FAIL parent: stream: write: %m\n");
		return 1;
	}
	char words[16] = {0};
	if (read(h[0], words, sizeof(words)) != 10 || strcmp(words, "last words") != 0 || read(h[0], words, 1) != 0) {
		printf("FAIL parent: stream whose peer closed: \"%s\", then want EOF\n", words);
		return 1;
	}
	int type = 0;
	socklen_t len = sizeof(type);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockopt(u, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_DGRAM || getpeername(u, (struct sockaddr *)&ss, &sl) == 0 ||
	    errno != ENOTCONN) {
		printf("FAIL parent: the unconnected socket: type %d, getpeername %m\n", type);
		return 1;
	}
	return 0;
}

int main(void)
{
	install_term();
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || socketpair(AF_UNIX, SOCK_DGRAM, 0, g) || socketpair(AF_UNIX, SOCK_STREAM, 0, h))
		return 2;
	if ((u = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0)
		return 2;
	fflush(stdout);
	pid_t kid = fork_ready(child_setup);
	if (kid == 0) {
		wait_term();
		int bad = check_child();
		fflush(stdout);
		_exit(bad);
	}
	if (kid < 0)
		return 2;
	close(s[1]);
	close(g[1]);
	close(h[1]);
	if (send(g[0], "d1", 2, 0) != 2 || send(g[0], "", 0, 0) != 0 || send(g[0], "d333", 4, 0) != 4)
		return 2;
	if (dup2(s[0], 30) != 30 || fcntl(30, F_SETFL, O_NONBLOCK))
		return 2;
	printf("READY\n");
	fflush(stdout);
	wait_term();
	alarm(20); /* a child blocked for good would block waitpid */
	int bad = check_parent();
	bad = reap_said_bye(bad, kid, s[0], "stream");
	if (!bad)
		printf("PASS\n");
	fflush(stdout);
	return bad;
}
