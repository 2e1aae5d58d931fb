/*
 * simple: a small tree for --leave-running and bad-image scenarios.
 * The root has a patterned anon region and a private mapping of
 * ./backing.dat with one modified page; one child has its own anon region.
 */
#include "common.h"

#define LEN (256 * PAGE)
#define FLEN (16 * PAGE)
static uint8_t *anon, *fmap;

static void child(void)
{
	uint8_t *mine = xmmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "child");
	fill(mine, LEN, 21, 0);
	mark_ready();
	wait_term();
	check(mine, LEN, 21, 0, "child anon");
	check(anon, LEN, 20, 0, "inherited anon");
}

int main(void)
{
	install_term();
	anon = xmmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "anon");
	fill(anon, LEN, 20, 0);
	write_file("backing.dat", FLEN, 22);
	int fd = open("backing.dat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open backing.dat: %s", strerror(errno));
	fmap = xmmap(NULL, FLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0, "backing.dat");
	close(fd);
	fill(fmap + 3 * PAGE, PAGE, 23, 0);

	pid_t kid = serve_one_child(child);
	check(anon, LEN, 20, 0, "root anon");
	check(fmap, 3 * PAGE, 22, 0, "backing.dat pages 0-2");
	check(fmap + 3 * PAGE, PAGE, 23, 0, "backing.dat page 3 (private copy)");
	check(fmap + 4 * PAGE, FLEN - 4 * PAGE, 22, 4 * PAGE / 8, "backing.dat pages 4-15");
	reap_one_child(kid);
	finish();
}
