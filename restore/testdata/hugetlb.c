/* hugetlb: anonymous hugetlb memory (MAP_HUGETLB, one 2 MiB page) across
 * a dump and restore, private, or shared when run as "hugetlb shared", or
 * a mapping of a file of a hugetlbfs mount, shared ("hugetlb file PATH")
 * or private ("hugetlb privfile PATH", every page then copied on write), or
 * a shared mapping of a hugetlb memfd ("hugetlb memfd"). The
 * parent fills it with a pattern but for one 4 KiB page it leaves zero,
 * and forks a child that shares it (copy-on-write when private). On
 * SIGTERM each checks the data and its own smaps (the mapping must still
 * be hugetlb, of 2 MiB pages, shared or not as before); the parent then
 * writes a mark, which the child must see when the memory is shared and
 * must not when private. "hugetlb probe" exits 0 when a huge page can be
 * mapped, 3 when not. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <fcntl.h>
#include <linux/mman.h>
#include <sys/mman.h>

#define HUGE (2UL << 20)
#define ZERO_PAGE 5 /* the 4 KiB page left zero */
#define MARK (HUGE - 1)

static unsigned char *m;
static int shared;

static unsigned char pat(size_t i) { return i / 4096 == ZERO_PAGE ? 0 : (unsigned char)(i * 13 + i / 4096 + 1); }

static int check(const char *who, int marked)
{
	for (size_t i = 0; i < HUGE; i++) {
		unsigned char want = i == MARK && marked ? 0xa5 : pat(i);
		if (m[i] != want) {
			printf("FAIL %s: byte %zu is %u, want %u\n", who, i, m[i], want);
			return 1;
		}
	}
	struct vma_info vi = vma_smaps(m);
	if (!vi.found || !has_flag(&vi, "ht") || vi.page_kb != HUGE / 1024 || has_flag(&vi, "sh") != shared) {
		printf("FAIL %s: mapping found %d, page size %ld kB, flags:%s", who, vi.found, vi.page_kb, vi.flags);
		return 1;
	}
	return 0;
}

/* The parent checks first (run_pair), then marks; the child looks after. */
static int check_child(void) { return check("child", shared); }
static int check_parent(void)
{
	int bad = check("parent", 0);
	m[MARK] = 0xa5;
	return bad;
}

int main(int argc, char **argv)
{
	int privfile = argc > 2 && strcmp(argv[1], "privfile") == 0;
	int file = privfile || (argc > 2 && strcmp(argv[1], "file") == 0);
	int memfd = argc > 1 && strcmp(argv[1], "memfd") == 0;
	shared = (file && !privfile) || memfd || (argc > 1 && strcmp(argv[1], "shared") == 0);
	if (file || memfd) {
		int fd = memfd ? memfd_create("huge", MFD_HUGETLB | MAP_HUGE_2MB) /* MFD_HUGE_2MB: the same bits */ : open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, HUGE)) {
			printf("FAIL create %s: %m\n", memfd ? "memfd" : argv[2]);
			return 1;
		}
		m = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, privfile ? MAP_PRIVATE : MAP_SHARED, fd, 0);
		close(fd);
	} else {
		m = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	}
	if (m == MAP_FAILED)
		return argc > 1 && strcmp(argv[1], "probe") == 0 ? 3 : (printf("FAIL mmap MAP_HUGETLB: %m\n"), 1);
	if (argc > 1 && strcmp(argv[1], "probe") == 0)
		return 0;
	for (size_t i = 0; i < HUGE; i++)
		m[i] = pat(i);
	install_term();
	return run_pair(NULL, check_child, check_parent);
}
