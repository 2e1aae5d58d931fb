/*
 * mdwe: a tree under memory-deny-write-execute (prctl PR_SET_MDWE,
 * Linux 6.3+). Dump must get its state without ever mapping memory that
 * is writable and executable in it, and the restored tasks must still
 * refuse to make memory executable: a restore that dropped the flag
 * would quietly lift a protection the program asked for.
 */
#include "common.h"
#include <sys/prctl.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN (1UL << 0)
#endif

#define LEN (64 * PAGE)
static uint8_t *anon;

/* check_mdwe: MDWE is on, and an attempt to make a written page
 * executable is refused. */
static void check_mdwe(const char *what)
{
	int got = prctl(PR_GET_MDWE, 0, 0, 0, 0);
	if (got != (int)PR_MDWE_REFUSE_EXEC_GAIN)
		failf("%s: PR_GET_MDWE = %d (%s), want %lu", what, got, got < 0 ? strerror(errno) : "ok",
		      PR_MDWE_REFUSE_EXEC_GAIN);
	uint8_t *p = xmmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "probe");
	p[0] = 0xc3;
	if (mprotect(p, PAGE, PROT_READ | PROT_EXEC) == 0)
		failf("%s: mprotect(PROT_EXEC) of a written page succeeded under MDWE", what);
	munmap(p, PAGE);
}

static void child(void)
{
	uint8_t *mine = xmmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "child");
	fill(mine, LEN, 41, 0);
	check_mdwe("child before dump");
	mark_ready();
	wait_term();
	check(mine, LEN, 41, 0, "child anon");
	check_mdwe("child after restore");
}

int main(void)
{
	install_term();
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0))
		die("prctl(PR_SET_MDWE): %s", strerror(errno));
	anon = xmmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "anon");
	fill(anon, LEN, 40, 0);
	check_mdwe("root before dump");

	pid_t kid = serve_one_child(child);
	check(anon, LEN, 40, 0, "root anon");
	check_mdwe("root after restore");
	reap_one_child(kid);
	finish();
}
