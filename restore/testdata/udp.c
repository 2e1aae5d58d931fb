/* udp: UDP sockets across a dump and restore. A server socket bound to
 * 127.0.0.1 (an ephemeral port), a client connected to it (its port
 * picked by connect), a socket never bound, and a server on ::1
 * (IPV6_V6ONLY, O_NONBLOCK, SO_BROADCAST). A first datagram goes from client to server
 * before the dump and is read. On SIGTERM the client sends "ping": the
 * server must get it from the client's old port and answer there with
 * "pong", which the client reads; the sockets must be bound, connected
 * and flagged as before. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(void)
{
	install_term();
	int one = 1;
	int srv = socket(AF_INET, SOCK_DGRAM, 0), cli = socket(AF_INET, SOCK_DGRAM, 0), loose = socket(AF_INET, SOCK_DGRAM, 0);
	int srv6 = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}, ca, from;
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t n = sizeof(sa), cn = sizeof(ca), n6 = sizeof(a6), fn = sizeof(from);
	char buf[16] = {0};
	if (srv < 0 || cli < 0 || loose < 0 || srv6 < 0 || setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(srv6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) ||
	    setsockopt(srv6, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) || bind(srv, (void *)&sa, n) ||
	    getsockname(srv, (void *)&sa, &n) || connect(cli, (void *)&sa, n) || getsockname(cli, (void *)&ca, &cn) ||
	    bind(srv6, (void *)&a6, n6) || getsockname(srv6, (void *)&a6, &n6) || send(cli, "hi", 2, 0) != 2 ||
	    recv(srv, buf, sizeof(buf), 0) != 2)
		return printf("FAIL setup: %m\n"), 1;
	printf("READY\n");
	fflush(stdout);
	wait_term();

	struct sockaddr_in b, c, peer;
	struct sockaddr_in6 b6;
	socklen_t bn = sizeof(b), cbn = sizeof(c), pn = sizeof(peer), bn6 = sizeof(b6), ln = sizeof(b);
	if (getsockname(srv, (void *)&b, &bn) || b.sin_port != sa.sin_port || getsockname(cli, (void *)&c, &cbn) ||
	    c.sin_port != ca.sin_port || getpeername(cli, (void *)&peer, &pn) || peer.sin_port != sa.sin_port ||
	    getsockname(srv6, (void *)&b6, &bn6) || b6.sin6_port != a6.sin6_port)
		return printf("FAIL addresses: server %d (was %d), client %d (was %d) to %d, ::1 %d (was %d)\n", ntohs(b.sin_port),
			      ntohs(sa.sin_port), ntohs(c.sin_port), ntohs(ca.sin_port), ntohs(peer.sin_port), ntohs(b6.sin6_port),
			      ntohs(a6.sin6_port)), 1;
	if (getsockname(loose, (void *)&b, &ln) || b.sin_port != 0 || getpeername(loose, (void *)&peer, &pn) == 0)
		return printf("FAIL the loose socket got bound (port %d) or connected\n", ntohs(b.sin_port)), 1;
	if (opt(srv, SOL_SOCKET, SO_REUSEADDR) != 1 || opt(srv6, IPPROTO_IPV6, IPV6_V6ONLY) != 1 ||
	    opt(srv6, SOL_SOCKET, SO_BROADCAST) != 1 || opt(srv, SOL_SOCKET, SO_BROADCAST) != 0 ||
	    !(fcntl(srv6, F_GETFL) & O_NONBLOCK) || (fcntl(srv, F_GETFL) & O_NONBLOCK))
		return printf("FAIL options or flags\n"), 1;
	if (send(cli, "ping", 4, 0) != 4 || recvfrom(srv, buf, sizeof(buf), 0, (void *)&from, &fn) != 4 ||
	    memcmp(buf, "ping", 4) || from.sin_port != ca.sin_port)
		return printf("FAIL ping: %m (from port %d, client was %d)\n", ntohs(from.sin_port), ntohs(ca.sin_port)), 1;
	if (sendto(srv, "pong", 4, 0, (void *)&from, fn) != 4 || recv(cli, buf, sizeof(buf), 0) != 4 || memcmp(buf, "pong", 4))
		return printf("FAIL pong: %m\n"), 1;
	printf("PASS\n");
	return 0;
}
