/*
 * shared_tree: MAP_SHARED|MAP_ANONYMOUS regions across a tree of depth 3.
 *
 *   R (root) ─┬─ C1 ── G
 *             ├─ C2
 *             └─ C3
 *
 * Regions (pages; M = marker page, the last one):
 *   ctl  2   made by R, held by all: barrier counter and inode reports
 *   S1   64  made by R, held by all; R splits it before forking:
 *            [16,24) PROT_READ, [40,44) unmapped, [50,56) never touched;
 *            C3 fills [56,60) after fork
 *   S2   32  made by R and moved with mremap before forking; C2 moves
 *            [16,32) elsewhere (two VMAs, pgoff 0 and 16)
 *   S5   8   made by R after forking C1: held by R, C2, C3
 *   S3   16  made by C1, shared with G; G mprotects page 4 PROT_READ
 *   S4   8   made by G, held by G alone
 *
 * After SIGTERM every task checks every page of every region it holds,
 * stats /proc/self/map_files of each piece (all pieces of a region: one
 * inode), reports that inode in ctl and writes its marker word into each
 * region's marker page. After a barrier (in ctl, so it only completes if ctl
 * is really shared) each task checks the others' markers and R checks that
 * all holders of a region report the same inode and distinct regions differ.
 */
#include "common.h"

enum { R, C1, C2, C3, G, NT };
enum { CTL, S1, S2, S3, S4, S5, NREG };
static const char *task_names[NT] = {"R", "C1", "C2", "C3", "G"};
static const char *reg_names[NREG] = {"ctl", "S1", "S2", "S3", "S4", "S5"};
static const size_t reg_pages[NREG] = {2, 64, 32, 16, 8, 8};
static const unsigned holders[NREG] = {
	[CTL] = 0x1f,
	[S1] = 0x1f,
	[S2] = 0x1f,
	[S3] = 1 << C1 | 1 << G,
	[S4] = 1 << G,
	[S5] = 1 << R | 1 << C2 | 1 << C3,
};

struct piece {
	size_t pg0, pg1; /* page range of the object */
	uint8_t *addr;   /* where pg0 is mapped */
};
struct view {
	int n;
	struct piece p[8];
};

struct ctl {
	uint64_t arrived;
	uint64_t dev[NT][NREG], ino[NT][NREG];
};

static int me = R;
static struct view views[NREG];
static struct ctl *ctl;

static uint64_t mark(int reg, int task) { return 0xC0DE000000000000ULL | (uint64_t)reg << 8 | task; }

static uint8_t *page_addr(int reg, size_t pg)
{
	struct view *v = &views[reg];
	for (int i = 0; i < v->n; i++)
		if (pg >= v->p[i].pg0 && pg < v->p[i].pg1)
			return v->p[i].addr + (pg - v->p[i].pg0) * PAGE;
	return NULL;
}

/* zero_page tells which pages are expected to read as zero. */
static int zero_page(int reg, size_t pg)
{
	return reg == S1 && pg >= 50 && pg < 56;
}

static uint8_t *new_region(int reg)
{
	size_t len = reg_pages[reg] * PAGE;
	uint8_t *p = xmmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0, reg_names[reg]);
	for (size_t pg = 0; pg < reg_pages[reg] - 1; pg++)
		if (!zero_page(reg, pg) && !(reg == S1 && pg >= 56 && pg < 60))
			fill(p + pg * PAGE, PAGE, 100 + reg, pg * PAGE / 8);
	views[reg].n = 1;
	views[reg].p[0] = (struct piece){0, reg_pages[reg], p};
	return p;
}

/* split_view replaces the piece holding [pg0,pg1) by up to three pieces. */
static void split_view(int reg, size_t pg0, size_t pg1)
{
	struct view *v = &views[reg], nv = {0};
	for (int i = 0; i < v->n; i++) {
		struct piece q = v->p[i];
		if (pg0 >= q.pg1 || pg1 <= q.pg0) {
			nv.p[nv.n++] = q;
			continue;
		}
		if (q.pg0 < pg0)
			nv.p[nv.n++] = (struct piece){q.pg0, pg0, q.addr};
		nv.p[nv.n++] = (struct piece){pg0, pg1, q.addr + (pg0 - q.pg0) * PAGE};
		if (pg1 < q.pg1)
			nv.p[nv.n++] = (struct piece){pg1, q.pg1, q.addr + (pg1 - q.pg0) * PAGE};
	}
	*v = nv;
}

static void drop_piece(int reg, size_t pg0)
{
	struct view *v = &views[reg];
	for (int i = 0; i < v->n; i++)
		if (v->p[i].pg0 == pg0) {
			memmove(&v->p[i], &v->p[i + 1], (v->n - i - 1) * sizeof(v->p[0]));
			v->n--;
			return;
		}
}

/* move_piece mremaps the piece starting at pg0 to a fresh address. */
static void move_piece(int reg, size_t pg0)
{
	struct view *v = &views[reg];
	for (int i = 0; i < v->n; i++) {
		if (v->p[i].pg0 != pg0)
			continue;
		size_t len = (v->p[i].pg1 - v->p[i].pg0) * PAGE;
		/* Reserve with guards on both sides so the target cannot merge. */
		uint8_t *res = xmmap(NULL, len + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "reserve");
		void *to = mremap(v->p[i].addr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, res + PAGE);
		if (to == MAP_FAILED)
			die("mremap %s piece %zu: %s", reg_names[reg], pg0, strerror(errno));
		v->p[i].addr = to;
		return;
	}
	die("no piece at page %zu of %s", pg0, reg_names[reg]);
}

static void verify_and_mark(void)
{
	char what[96];
	for (int reg = 0; reg < NREG; reg++) {
		if (!(holders[reg] & 1u << me))
			continue;
		size_t n = reg_pages[reg];
		if (reg != CTL) {
			for (size_t pg = 0; pg < n - 1; pg++) {
				uint8_t *a = page_addr(reg, pg);
				if (!a)
					continue;
				snprintf(what, sizeof(what), "%s page %zu", reg_names[reg], pg);
				if (zero_page(reg, pg))
					check_zero(a, PAGE, what);
				else
					check(a, PAGE, 100 + reg, pg * PAGE / 8, what);
			}
		}
		struct view *v = &views[reg];
		struct stat st0 = {0};
		for (int i = 0; i < v->n; i++) {
			struct stat st;
			snprintf(what, sizeof(what), "%s pages [%zu,%zu)", reg_names[reg], v->p[i].pg0, v->p[i].pg1);
			if (!map_files_stat(v->p[i].addr, (v->p[i].pg1 - v->p[i].pg0) * PAGE, &st, what))
				continue;
			if (st0.st_ino == 0)
				st0 = st;
			else if (st.st_ino != st0.st_ino || st.st_dev != st0.st_dev)
				failf("%s: pieces map different inodes (%lu vs %lu) in one task", what,
				      (unsigned long)st.st_ino, (unsigned long)st0.st_ino);
			if (st.st_size != (off_t)(n * PAGE))
				failf("%s: shmem object size %lld, want %zu", what, (long long)st.st_size, n * PAGE);
		}
		ctl->dev[me][reg] = st0.st_dev;
		ctl->ino[me][reg] = st0.st_ino;
		if (reg != CTL) {
			uint64_t *m = (uint64_t *)page_addr(reg, n - 1);
			m[me] = mark(reg, me);
		}
	}
	__atomic_add_fetch(&ctl->arrived, 1, __ATOMIC_SEQ_CST);
	double start = mono_now();
	while (__atomic_load_n(&ctl->arrived, __ATOMIC_SEQ_CST) < NT) {
		if (mono_now() - start > 20) {
			failf("barrier: only %llu of %d tasks arrived within 20s (ctl region not shared?)",
			      (unsigned long long)ctl->arrived, NT);
			return;
		}
		usleep(1000);
	}
	for (int reg = 1; reg < NREG; reg++) {
		if (!(holders[reg] & 1u << me))
			continue;
		uint64_t *m = (uint64_t *)page_addr(reg, reg_pages[reg] - 1);
		for (int t = 0; t < NT; t++) {
			uint64_t want = holders[reg] & 1u << t ? mark(reg, t) : 0;
			if (m[t] != want)
				failf("%s marker of %s: got 0x%llx want 0x%llx", reg_names[reg], task_names[t],
				      (unsigned long long)m[t], (unsigned long long)want);
		}
		check_zero(m + NT, PAGE - NT * 8, "marker page beyond markers");
	}
}

static void check_inodes(void)
{
	for (int reg = 0; reg < NREG; reg++) {
		int first = -1;
		for (int t = 0; t < NT; t++) {
			if (!(holders[reg] & 1u << t))
				continue;
			if (first < 0) {
				first = t;
				continue;
			}
			if (ctl->ino[t][reg] != ctl->ino[first][reg] || ctl->dev[t][reg] != ctl->dev[first][reg])
				failf("%s: %s maps inode %llu but %s maps inode %llu (not one shared object)",
				      reg_names[reg], task_names[t], (unsigned long long)ctl->ino[t][reg],
				      task_names[first], (unsigned long long)ctl->ino[first][reg]);
		}
		for (int other = 0; other < reg; other++) {
			int a = __builtin_ctz(holders[reg]), b = __builtin_ctz(holders[other]);
			if (ctl->ino[a][reg] == ctl->ino[b][other])
				failf("%s and %s map the same inode %llu", reg_names[reg], reg_names[other],
				      (unsigned long long)ctl->ino[a][reg]);
		}
	}
}

static void task_g(void)
{
	me = G;
	if (mprotect(page_addr(S3, 4), PAGE, PROT_READ))
		die("mprotect S3: %s", strerror(errno));
	split_view(S3, 4, 5);
	new_region(S4);
	mark_ready();
	wait_term();
	verify_and_mark();
}

static void task_c1(void)
{
	me = C1;
	new_region(S3);
	pid_t kids[1];
	const char *names[1] = {"G"};
	kids[0] = spawn("G", task_g);
	mark_ready();
	wait_term();
	forward_term(kids, 1);
	verify_and_mark();
	reap_kids(kids, names, 1);
}

static void task_c2(void)
{
	me = C2;
	split_view(S2, 16, 32);
	move_piece(S2, 16);
	mark_ready();
	wait_term();
	verify_and_mark();
}

static void task_c3(void)
{
	me = C3;
	for (size_t pg = 56; pg < 60; pg++)
		fill(page_addr(S1, pg), PAGE, 100 + S1, pg * PAGE / 8);
	mark_ready();
	wait_term();
	verify_and_mark();
}

int main(void)
{
	install_term();
	ctl = (struct ctl *)new_region(CTL);
	memset(ctl, 0, reg_pages[CTL] * PAGE);

	uint8_t *s1 = new_region(S1);
	if (mprotect(s1 + 16 * PAGE, 8 * PAGE, PROT_READ))
		die("mprotect S1: %s", strerror(errno));
	split_view(S1, 16, 24);
	if (munmap(s1 + 40 * PAGE, 4 * PAGE))
		die("munmap S1: %s", strerror(errno));
	split_view(S1, 40, 44);
	drop_piece(S1, 40);

	new_region(S2);
	move_piece(S2, 0);

	pid_t kids[3];
	const char *names[3] = {"C1", "C2", "C3"};
	kids[0] = spawn("C1", task_c1);
	new_region(S5);
	kids[1] = spawn("C2", task_c2);
	kids[2] = spawn("C3", task_c3);

	write_pidfile();
	wait_term();
	forward_term(kids, 3);
	verify_and_mark();
	reap_kids(kids, names, 3);
	check_inodes();
	finish();
}
