/*
 * pdeath: process attributes that live in the kernel, not in memory, and
 * that orphans and dying parents depend on: the root is a child subreaper
 * (PR_SET_CHILD_SUBREAPER) and its child asked for SIGUSR1 when its
 * parent dies (PR_SET_PDEATHSIG); both run as root with every capability
 * and securebits NO_SETUID_FIXUP (PR_SET_SECUREBITS, inherited by the
 * child). The root also lets KSM merge all its memory
 * (PR_SET_MEMORY_MERGE, inherited by the child) when the kernel has KSM.
 * After restore all of it must still be set.
 * (A root's parent-death signal is not restored: its parent is not in
 * the image.)
 */
#include "common.h"
#include <sys/prctl.h>
#include <linux/securebits.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define LEN (32 * PAGE)

static int have_ksm; /* PR_SET_MEMORY_MERGE worked at setup */

static void check_merge(const char *what)
{
	if (!have_ksm)
		return;
	int got = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (got != 1)
		failf("%s: PR_GET_MEMORY_MERGE = %d (%s), want 1", what, got, got < 0 ? strerror(errno) : "ok");
}

static void check_pdeath(const char *what)
{
	int sig = -1;
	if (prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0))
		failf("%s: PR_GET_PDEATHSIG: %s", what, strerror(errno));
	else if (sig != SIGUSR1)
		failf("%s: parent-death signal %d, want SIGUSR1 (%d)", what, sig, SIGUSR1);
}

static void check_subreaper(const char *what)
{
	int on = -1;
	if (prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0))
		failf("%s: PR_GET_CHILD_SUBREAPER: %s", what, strerror(errno));
	else if (on != 1)
		failf("%s: child subreaper %d, want 1", what, on);
}

static void check_securebits(const char *what)
{
	int got = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (got != SECBIT_NO_SETUID_FIXUP)
		failf("%s: securebits %#x, want %#x", what, got, SECBIT_NO_SETUID_FIXUP);
}

static void child(void)
{
	signal(SIGUSR1, SIG_IGN);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1, 0, 0, 0))
		die("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	uint8_t *mine = xmmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "child");
	fill(mine, LEN, 51, 0);
	check_pdeath("child before dump");
	mark_ready();
	wait_term();
	check(mine, LEN, 51, 0, "child anon");
	check_pdeath("child after restore");
	check_securebits("child after restore");
	check_merge("child after restore");
}

int main(void)
{
	install_term();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		die("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0))
		die("prctl(PR_SET_SECUREBITS): %s", strerror(errno));
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0)
		have_ksm = 1;
	else if (errno != EINVAL)
		die("prctl(PR_SET_MEMORY_MERGE): %s", strerror(errno));
	uint8_t *anon = xmmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "anon");
	fill(anon, LEN, 50, 0);

	pid_t kid = serve_one_child(child);
	check(anon, LEN, 50, 0, "root anon");
	check_subreaper("root after restore");
	check_securebits("root after restore");
	check_merge("root after restore");
	reap_one_child(kid);
	finish();
}
