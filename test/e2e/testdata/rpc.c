/*
 * rpc: a root and a child talking over a unix socket pair (seqpacket), as
 * a parent and its worker do.
 *
 *   R (root) ── C: C answers each request n with 2n+1; R keeps up to 8
 *                  requests in flight, so at dump requests and answers
 *                  wait in both directions
 *
 * On SIGTERM R stops asking, takes the answers still due (each must be
 * 2n+1 of its request, in order: none lost, none repeated across the
 * dump and restore), sends the quit request 0 and reaps C, which checks
 * it saw every request in order.
 */
#include "common.h"
#include <sys/socket.h>

#define INFLIGHT 8

static int sv[2];

/* xfer sends or receives one 8-byte packet, going on after EINTR. */
static int xfer(int fd, uint64_t *v, int send_it)
{
	for (;;) {
		ssize_t n = send_it ? send(fd, v, 8, 0) : recv(fd, v, 8, 0);
		if (n < 0 && errno == EINTR)
			continue;
		return n == 8 ? 0 : -1;
	}
}

static void worker(void)
{
	close(sv[0]);
	uint64_t want = 1;
	int ready = 0;
	for (;;) {
		uint64_t n;
		if (xfer(sv[1], &n, 0)) {
			failf("receive request %llu: %s", (unsigned long long)want, strerror(errno));
			return;
		}
		if (n == 0)
			break;
		if (n != want) {
			failf("request %llu came as %llu", (unsigned long long)want, (unsigned long long)n);
			return;
		}
		want++;
		uint64_t answer = 2 * n + 1;
		if (xfer(sv[1], &answer, 1)) {
			failf("answer %llu: %s", (unsigned long long)n, strerror(errno));
			return;
		}
		if (!ready && want > 1000) {
			mark_ready();
			ready = 1;
		}
	}
	logf_("%llu requests in order", (unsigned long long)(want - 1));
}

int main(void)
{
	install_term();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		die("socketpair: %s", strerror(errno));
	pid_t kid = fork();
	if (kid < 0)
		die("fork: %s", strerror(errno));
	if (kid == 0) {
		who = "worker";
		worker();
		_exit(nfail ? 1 : 0);
	}
	close(sv[1]);
	uint64_t next = 1, due = 1; /* the next request to send, the next answer due */
	int published = 0;
	while (!got_term || due < next) {
		if (!got_term && next - due < INFLIGHT) {
			if (xfer(sv[0], &next, 1))
				die("send request %llu: %s", (unsigned long long)next, strerror(errno));
			next++;
			continue;
		}
		uint64_t a;
		if (xfer(sv[0], &a, 0)) {
			failf("answer to %llu: %s", (unsigned long long)due, strerror(errno));
			break;
		}
		if (a != 2 * due + 1) {
			failf("answer to %llu is %llu", (unsigned long long)due, (unsigned long long)a);
			break;
		}
		due++;
		if (!published && due > 1000) {
			wait_ready(kid);
			write_pidfile();
			published = 1;
		}
		if (published && !got_term)
			usleep(200);
	}
	uint64_t quit = 0;
	if (xfer(sv[0], &quit, 1))
		failf("send quit: %s", strerror(errno));
	static const char *const names[1] = {"worker"};
	reap_kids(&kid, names, 1);
	logf_("%llu answers in order", (unsigned long long)(due - 1));
	finish();
}
