/*
 * memkinds: memory that is more than pages, through the CLI: a SysV shared
 * memory segment (removed once attached: it lives only as long as the
 * tree), AIO contexts with completed events not reaped yet, a task
 * that locks its future mappings on fault (mlockall), a range with a NUMA
 * policy of its own (mbind) and membarrier registrations.
 *
 * The root makes the segment and an AIO context that holds 3 events, then
 * forks the child, which inherits the attachment (and a copy of the ring,
 * no context), makes its own AIO context holding 2 events and calls
 * mlockall(MCL_FUTURE | MCL_ONFAULT). On SIGTERM each checks the segment
 * (the data, an attachment of the dumped id with 2 attachments, the root's
 * mark seen by the child), reaps its events and runs one more request on
 * its context; the child checks that a new mapping is locked and the root
 * that it is not. After the fork the root interleaves half of a region
 * over node 0 and registers for private expedited membarriers: on SIGTERM
 * it checks the policy, the region's data and that its barrier works, the
 * child that its own barrier is still refused. (Kernels without NUMA or
 * without MEMBARRIER_CMD_GET_REGISTRATIONS skip those parts.)
 */
#include "common.h"
#include <linux/aio_abi.h>
#include <linux/membarrier.h>
#include <linux/mempolicy.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#define SEG (128 * 1024)

static uint8_t *seg;
static int segid;
static aio_context_t ctx;
static char byte = 'x';

static void submit(uint64_t data)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct iocb cb = {0};
	struct iocb *list[1] = {&cb};
	cb.aio_data = data;
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_fildes = fd;
	cb.aio_buf = (uint64_t)(uintptr_t)&byte;
	cb.aio_nbytes = 1;
	if (fd < 0 || syscall(SYS_io_submit, ctx, 1, list) != 1)
		die("io_submit: %s", strerror(errno));
	close(fd);
}

/* reap takes n events, which must carry data first, first+1, ... */
static void reap(int n, uint64_t first, const char *what)
{
	struct io_event ev[8];
	struct timespec ts = {2, 0};
	long got = syscall(SYS_io_getevents, ctx, n, n, ev, &ts);
	if (got != n) {
		failf("%s: io_getevents got %ld of %d events (%s)", what, got, n, got < 0 ? strerror(errno) : "short");
		return;
	}
	for (int i = 0; i < n; i++)
		if (ev[i].data != first + i || ev[i].res != 1)
			failf("%s: event %d has data %llu res %lld, want %llu 1", what, i, (unsigned long long)ev[i].data,
			      (long long)ev[i].res, (unsigned long long)(first + i));
}

/* setup_aio makes a context holding n completed events with data first.. */
static void setup_aio(int n, uint64_t first)
{
	ctx = 0;
	if (syscall(SYS_io_setup, 16, &ctx))
		die("io_setup: %s", strerror(errno));
	for (int i = 0; i < n + 1; i++)
		submit(first - 1 + i);
	reap(1, first - 1, "setup");
}

static void check_aio(int n, uint64_t first, const char *what)
{
	reap(n, first, what);
	submit(1000);
	reap(1, 1000, what);
}

static void check_seg(int marked, const char *what)
{
	check(seg, SEG - 8, 50, 0, what);
	uint64_t last;
	memcpy(&last, seg + SEG - 8, 8);
	uint64_t want = marked ? 0x5a5a5a5a5a5a5a5aULL : pat(50, (SEG - 8) / 8);
	if (last != want)
		failf("%s: last word %#llx, want %#llx", what, (unsigned long long)last, (unsigned long long)want);
	struct shmid_ds ds;
	if (shmctl(segid, IPC_STAT, &ds))
		failf("%s: shmctl(%d, IPC_STAT): %s", what, segid, strerror(errno));
	else if (ds.shm_nattch != 2 || ds.shm_segsz != SEG || !(ds.shm_perm.mode & SHM_DEST))
		failf("%s: segment %d has %lu attachments, %zu bytes, mode %#o", what, segid,
		      (unsigned long)ds.shm_nattch, (size_t)ds.shm_segsz, ds.shm_perm.mode);
}

/* locked_kb is the task's VmLck. */
static long locked_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* check_future_lock maps 16 pages and checks they are locked or not. */
static void check_future_lock(int want, const char *what)
{
	long before = locked_kb();
	void *p = xmmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "probe");
	long grew = locked_kb() - before;
	if (grew != (want ? 64 : 0))
		failf("%s: a new mapping of 64 kB added %ld kB of locked memory, want %d", what, grew, want ? 64 : 0);
	munmap(p, 16 * PAGE);
}

static uint8_t *numa_region;
static int have_numa, have_membarrier;

#define MB_GET_REGISTRATIONS (1 << 9)

static long mb(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

/* setup_policies interleaves the second half of a 32-page region over
 * node 0 and registers the root for private expedited barriers. */
static void setup_policies(void)
{
	numa_region = xmmap(NULL, 32 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "numa region");
	unsigned long mask = 1;
	if (syscall(SYS_mbind, numa_region + 16 * PAGE, 16 * PAGE, MPOL_INTERLEAVE, &mask, 65, 0) == 0)
		have_numa = 1;
	else if (errno != ENOSYS)
		die("mbind: %s", strerror(errno));
	fill(numa_region, 32 * PAGE, 60, 0);
	if (mb(MB_GET_REGISTRATIONS) >= 0) {
		have_membarrier = 1;
		if (mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED))
			die("membarrier register: %s", strerror(errno));
	}
}

static void check_policies(void)
{
	check(numa_region, 32 * PAGE, 60, 0, "numa region");
	int modes[2] = {MPOL_DEFAULT, MPOL_INTERLEAVE};
	for (int half = 0; have_numa && half < 2; half++) {
		int mode = -1;
		unsigned long mask = 0;
		if (syscall(SYS_get_mempolicy, &mode, &mask, 65, numa_region + half * 16 * PAGE, MPOL_F_ADDR))
			failf("get_mempolicy: %s", strerror(errno));
		else if (mode != modes[half] || mask != (half ? 1UL : 0UL))
			failf("half %d of the numa region: policy %d nodes %#lx, want %d", half, mode, mask, modes[half]);
	}
	if (have_membarrier && mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		failf("private expedited membarrier: %s", strerror(errno));
}

static void child(void)
{
	setup_aio(2, 20);
	if (mlockall(MCL_FUTURE | MCL_ONFAULT))
		die("mlockall: %s", strerror(errno));
	mark_ready();
	wait_term();
	check_seg(1, "child segment");
	if (shmdt(seg))
		failf("child: shmdt: %s", strerror(errno));
	check_aio(2, 20, "child aio");
	check_future_lock(1, "child");
	if (mb(MB_GET_REGISTRATIONS) >= 0 && (mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != -1 || errno != EPERM))
		failf("private expedited membarrier not refused: the child never registered");
}

int main(void)
{
	install_term();
	segid = shmget(IPC_PRIVATE, SEG, IPC_CREAT | 0600);
	seg = segid < 0 ? (void *)-1 : shmat(segid, NULL, 0);
	if (seg == (void *)-1)
		die("shmget/shmat: %s", strerror(errno));
	if (shmctl(segid, IPC_RMID, NULL))
		die("IPC_RMID: %s", strerror(errno));
	fill(seg, SEG, 50, 0);
	setup_aio(3, 10);

	pid_t kid = spawn("child", child);
	setup_policies();
	write_pidfile();
	wait_term();
	check_policies();
	check_seg(0, "root segment");
	memset(seg + SEG - 8, 0x5a, 8); /* for the child to see */
	check_aio(3, 10, "root aio");
	check_future_lock(0, "root");
	forward_term(&kid, 1);
	reap_one_child(kid);
	finish();
}
