/* tcplisten: TCP listeners across a dump and restore. The parent listens
 * on 127.0.0.1 (an ephemeral port, SO_REUSEADDR, backlog 7, SO_KEEPALIVE,
 * TCP_KEEPIDLE 77, a receive buffer set, SO_LINGER 5 s) and on ::1
 * (IPV6_V6ONLY, backlog 3, O_NONBLOCK); its child, sharing the first
 * listener (fork), sits in accept() on it. On SIGTERM the parent checks
 * both listen where they did, with their backlogs and options, connects
 * to the first (the child's restarted accept takes it and answers
 * "child") and to the second (accepted by the parent itself). Prints PASS
 * or the first FAIL. */
#include "vmatest.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

static pid_t child;

/* FAIL prints why and ends the test, the child (blocked in accept) too:
 * it holds the output. */
#define FAIL(...)                                      \
	do {                                           \
		printf(__VA_ARGS__);                   \
		if (child > 0)                         \
			kill(child, SIGKILL);          \
		return 1;                              \
	} while (0)

static int backlog_of(int fd)
{
	struct tcp_info ti;
	socklen_t n = sizeof(ti);
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n) ? -1 : (int)ti.tcpi_sacked;
}

int main(void)
{
	install_term();
	int one = 1;
	int l4 = socket(AF_INET, SOCK_STREAM, 0), l6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t n4 = sizeof(a4), n6 = sizeof(a6);
	if (l4 < 0 || l6 < 0 || setsockopt(l4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) || setsockopt(l4, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
	    setsockopt(l4, IPPROTO_TCP, TCP_KEEPIDLE, &(int){77}, sizeof(int)) ||
	    setsockopt(l4, SOL_SOCKET, SO_RCVBUF, &(int){100000}, sizeof(int)) ||
	    setsockopt(l4, SOL_SOCKET, SO_LINGER, &(struct linger){1, 5}, sizeof(struct linger)) || bind(l4, (void *)&a4, n4) ||
	    bind(l6, (void *)&a6, n6) || listen(l4, 7) || listen(l6, 3) || getsockname(l4, (void *)&a4, &n4) ||
	    getsockname(l6, (void *)&a6, &n6))
		return printf("FAIL setup: %m\n"), 1;
	int rcvbuf = opt(l4, SOL_SOCKET, SO_RCVBUF), sndbuf6 = opt(l6, SOL_SOCKET, SO_SNDBUF);
	child = fork();
	if (child == 0) {
		signal(SIGTERM, SIG_IGN);
		int c;
		while ((c = accept(l4, NULL, NULL)) < 0 && errno == EINTR)
			;
		_exit(c < 0 || write(c, "child", 5) != 5 ? 2 : 0);
	}
	if (child < 0)
		return printf("FAIL fork: %m\n"), 1;
	printf("READY\n");
	fflush(stdout);
	wait_term();

	struct sockaddr_in b4;
	struct sockaddr_in6 b6;
	socklen_t m4 = sizeof(b4), m6 = sizeof(b6);
	if (getsockname(l4, (void *)&b4, &m4) || getsockname(l6, (void *)&b6, &m6) || b4.sin_port != a4.sin_port ||
	    b4.sin_addr.s_addr != a4.sin_addr.s_addr || b6.sin6_port != a6.sin6_port ||
	    memcmp(&b6.sin6_addr, &a6.sin6_addr, sizeof(b6.sin6_addr)))
		FAIL("FAIL the listeners moved: ports %d %d, were %d %d\n", ntohs(b4.sin_port), ntohs(b6.sin6_port),
			      ntohs(a4.sin_port), ntohs(a6.sin6_port));
	if (!opt(l4, SOL_SOCKET, SO_ACCEPTCONN) || !opt(l6, SOL_SOCKET, SO_ACCEPTCONN))
		FAIL("FAIL not listening any more\n");
	if (backlog_of(l4) != 7 || backlog_of(l6) != 3)
		FAIL("FAIL backlogs %d and %d, want 7 and 3\n", backlog_of(l4), backlog_of(l6));
	if (opt(l4, SOL_SOCKET, SO_REUSEADDR) != 1 || opt(l6, SOL_SOCKET, SO_REUSEADDR) != 0 ||
	    opt(l6, IPPROTO_IPV6, IPV6_V6ONLY) != 1)
		FAIL("FAIL options: SO_REUSEADDR %d %d, IPV6_V6ONLY %d\n", opt(l4, SOL_SOCKET, SO_REUSEADDR),
			      opt(l6, SOL_SOCKET, SO_REUSEADDR), opt(l6, IPPROTO_IPV6, IPV6_V6ONLY));
	struct linger lg = {0};
	socklen_t lgn = sizeof(lg);
	if (opt(l4, SOL_SOCKET, SO_KEEPALIVE) != 1 || opt(l4, IPPROTO_TCP, TCP_KEEPIDLE) != 77 ||
	    opt(l4, SOL_SOCKET, SO_RCVBUF) != rcvbuf || opt(l6, SOL_SOCKET, SO_SNDBUF) != sndbuf6 ||
	    opt(l6, SOL_SOCKET, SO_KEEPALIVE) != 0 || getsockopt(l4, SOL_SOCKET, SO_LINGER, &lg, &lgn) || !lg.l_onoff ||
	    lg.l_linger != 5)
		FAIL("FAIL keepalive %d idle %d, rcvbuf %d (was %d), ::1 sndbuf %d (was %d), linger %d %d\n",
		     opt(l4, SOL_SOCKET, SO_KEEPALIVE), opt(l4, IPPROTO_TCP, TCP_KEEPIDLE), opt(l4, SOL_SOCKET, SO_RCVBUF), rcvbuf,
		     opt(l6, SOL_SOCKET, SO_SNDBUF), sndbuf6, lg.l_onoff, lg.l_linger);
	if ((fcntl(l4, F_GETFL) & O_NONBLOCK) || !(fcntl(l6, F_GETFL) & O_NONBLOCK))
		FAIL("FAIL O_NONBLOCK: %#x %#x\n", fcntl(l4, F_GETFL), fcntl(l6, F_GETFL));

	int c4 = socket(AF_INET, SOCK_STREAM, 0);
	char buf[8] = {0};
	if (c4 < 0 || connect(c4, (void *)&a4, n4) || read(c4, buf, 5) != 5 || memcmp(buf, "child", 5))
		FAIL("FAIL the child's accept: %m (read %.5s)\n", buf);
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL("FAIL child status %#x\n", status);
	int c6 = socket(AF_INET6, SOCK_STREAM, 0);
	struct pollfd p = {.fd = l6, .events = POLLIN};
	if (c6 < 0 || connect(c6, (void *)&a6, n6) || poll(&p, 1, 2000) != 1)
		FAIL("FAIL connect to ::1: %m\n");
	int s6 = accept(l6, NULL, NULL);
	if (s6 < 0 || write(s6, "6", 1) != 1 || read(c6, buf, 1) != 1 || buf[0] != '6')
		FAIL("FAIL accept on ::1: %m\n");
	printf("PASS\n");
	return 0;
}
