/*
 * cow: copy-on-write divergence after fork.
 *
 * R has a private anon region A and a private writable mapping F of
 * ./cow.dat (some pages modified before forking). After each fork, tasks
 * modify different pages of A and F:
 *   R  ─┬─ C1 ── G      C1 modifies, then forks G, which modifies more
 *       └─ C2           C2 modifies nothing (all pages shared COW with R)
 * Each task keeps a private table of which "version" every page should hold
 * and, after SIGTERM, checks every page of A and F against it. cow.dat on
 * disk must be untouched.
 */
#include "common.h"

#define NP 64
enum { A, F, NREG };
static uint8_t *reg[NREG];
static uint16_t ver[NREG][NP]; /* 0 = original content */

static uint64_t seed(int r, int v) { return 1000 + r * 100 + v; }

static void modify(int r, int from, int to, int v)
{
	for (int pg = from; pg < to; pg++) {
		fill(reg[r] + pg * PAGE, PAGE, seed(r, v), pg * PAGE / 8);
		ver[r][pg] = v;
	}
}

static void verify(void)
{
	char what[64];
	for (int r = 0; r < NREG; r++)
		for (int pg = 0; pg < NP; pg++) {
			snprintf(what, sizeof(what), "%s page %d (version %d)", r == A ? "anon" : "cow.dat map", pg, ver[r][pg]);
			if (r == F && ver[r][pg] == 0)
				check(reg[r] + pg * PAGE, PAGE, 999, pg * PAGE / 8, what);
			else
				check(reg[r] + pg * PAGE, PAGE, seed(r, ver[r][pg]), pg * PAGE / 8, what);
		}
}

static void task_g(void)
{
	modify(A, 20, 30, 4);
	modify(F, 30, 34, 4);
	mark_ready();
	wait_term();
	verify();
}

static void task_c1(void)
{
	modify(A, 8, 24, 2);
	modify(F, 0, 4, 2);
	pid_t kids[1];
	const char *names[1] = {"G"};
	kids[0] = spawn("G", task_g);
	modify(A, 40, 42, 5); /* after G's fork: G must not see it */
	mark_ready();
	wait_term();
	forward_term(kids, 1);
	verify();
	reap_kids(kids, names, 1);
}

static void task_c2(void)
{
	mark_ready();
	wait_term();
	verify();
}

int main(void)
{
	install_term();
	reg[A] = xmmap(NULL, NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "A");
	modify(A, 0, NP, 0);
	write_file("cow.dat", NP * PAGE, 999);
	int fd = open("cow.dat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open cow.dat: %s", strerror(errno));
	reg[F] = xmmap(NULL, NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0, "cow.dat");
	close(fd);
	modify(F, 0, 8, 1);

	pid_t kids[2];
	const char *names[2] = {"C1", "C2"};
	kids[0] = spawn("C1", task_c1);
	modify(A, 0, 16, 3);
	modify(F, 8, 16, 3);
	kids[1] = spawn("C2", task_c2);
	modify(A, 50, 60, 6); /* after both forks */
	modify(F, 50, 52, 6);

	write_pidfile();
	wait_term();
	forward_term(kids, 2);
	verify();
	uint8_t *buf = malloc(NP * PAGE);
	if (pread_file("cow.dat", buf, NP * PAGE, 0))
		check(buf, NP * PAGE, 999, 0, "cow.dat on disk");
	free(buf);
	reap_kids(kids, names, 2);
	finish();
}
