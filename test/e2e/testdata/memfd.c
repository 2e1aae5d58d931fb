/*
 * memfd: a memfd mapped MAP_SHARED by a parent and its child (the fd is
 * closed after mapping) plus a MAP_PRIVATE mapping of it in the parent with
 * one modified page. After SIGTERM both check all pages, write markers that
 * the other must see (barrier in the memfd itself), and compare inodes.
 */
#include "common.h"

#define NP 32
struct ctl {
	uint64_t arrived;
	uint64_t ino[2], dev[2];
	uint64_t marker[2];
};
static uint8_t *m, *mp;
static struct ctl *ctl; /* last page of the memfd */

static void verify(int me)
{
	check(m, 8 * PAGE, 400, 0, "memfd pages 0-7 (parent)");
	check(m + 8 * PAGE, 8 * PAGE, 401, 0, "memfd pages 8-15 (child)");
	check_zero(m + 16 * PAGE, 15 * PAGE, "memfd pages 16-30 (never written)");
	struct stat st;
	if (map_files_stat(m, NP * PAGE, &st, "memfd shared map")) {
		ctl->ino[me] = st.st_ino;
		ctl->dev[me] = st.st_dev;
		if (st.st_size != NP * PAGE)
			failf("memfd size %lld, want %lu", (long long)st.st_size, NP * PAGE);
		if (st.st_nlink != 0)
			failf("memfd nlink %lu, want 0", (unsigned long)st.st_nlink);
	}
	ctl->marker[me] = 0xAB00 + me;
	__atomic_add_fetch(&ctl->arrived, 1, __ATOMIC_SEQ_CST);
	double start = mono_now();
	while (__atomic_load_n(&ctl->arrived, __ATOMIC_SEQ_CST) < 2) {
		if (mono_now() - start > 20) {
			failf("barrier: memfd not shared between parent and child after restore");
			return;
		}
		usleep(1000);
	}
	if (ctl->marker[!me] != 0xAB00u + !me)
		failf("marker of the other task not visible: 0x%llx", (unsigned long long)ctl->marker[!me]);
}

static void child(void)
{
	fill(m + 8 * PAGE, 8 * PAGE, 401, 0);
	mark_ready();
	wait_term();
	verify(1);
}

int main(void)
{
	install_term();
	int fd = memfd_create("e2e-memfd", MFD_CLOEXEC);
	if (fd < 0)
		die("memfd_create: %s", strerror(errno));
	if (ftruncate(fd, NP * PAGE))
		die("ftruncate: %s", strerror(errno));
	m = xmmap(NULL, NP * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0, "memfd");
	fill(m, 8 * PAGE, 400, 0);
	mp = xmmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0, "memfd private");
	close(fd);
	ctl = (struct ctl *)(m + (NP - 1) * PAGE);
	fill(mp + PAGE, PAGE, 402, 0);

	pid_t kid = serve_one_child(child);
	verify(0);
	check(mp, PAGE, 400, 0, "memfd private map page 0");
	check(mp + PAGE, PAGE, 402, 0, "memfd private map page 1 (private copy)");
	check(mp + 2 * PAGE, 2 * PAGE, 400, 2 * PAGE / 8, "memfd private map pages 2-3");
	reap_one_child(kid);
	struct stat st;
	if (map_files_stat(mp, 4 * PAGE, &st, "memfd private map") && (st.st_ino != ctl->ino[0] || st.st_dev != ctl->dev[0]))
		failf("memfd private map is inode %lu, shared map inode %llu", (unsigned long)st.st_ino,
		      (unsigned long long)ctl->ino[0]);
	if (ctl->ino[0] != ctl->ino[1] || ctl->dev[0] != ctl->dev[1])
		failf("parent maps memfd inode %llu, child inode %llu", (unsigned long long)ctl->ino[0],
		      (unsigned long long)ctl->ino[1]);
	finish();
}
