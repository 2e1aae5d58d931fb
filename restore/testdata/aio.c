/* aio: an AIO context (io_setup) across a dump and restore, with events
 * completed and not reaped yet in its ring. The task submits writes of one
 * byte to /dev/null (which complete at once) with data 1..5 and reaps the
 * first two, so that its ring holds 3; run as "aio wrap", it first
 * submits and reaps a ring's worth less three, so that the ring's tail has
 * wrapped behind its head. As "aio child", it also forks a child, which
 * inherits a copy of the ring but no context, and which must see the
 * parent's ring in it after restore. On SIGTERM it reaps the
 * three events (data 3, 4, 5), then submits one more write and reaps it:
 * the context must work, at the address the task holds. The ring is read
 * the way libaio does too: the head and tail in it must match. Prints
 * PASS or the first FAIL. */
#include "vmatest.h"
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <time.h>

struct ring {
	unsigned id, nr, head, tail, magic, compat, incompat, header;
};

static aio_context_t ctx;
static char byte = 'x';

static int submit(int fd, unsigned long long data)
{
	struct iocb cb = {0};
	struct iocb *list[1] = {&cb};
	cb.aio_data = data;
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_fildes = fd;
	cb.aio_buf = (unsigned long)&byte;
	cb.aio_nbytes = 1;
	return syscall(SYS_io_submit, ctx, 1, list) == 1 ? 0 : -1;
}

/* reap takes n events and checks their data are first, first+1, ... */
static int reap(const char *when, int n, unsigned long long first)
{
	struct io_event ev[8];
	struct timespec ts = {2, 0};
	long got = syscall(SYS_io_getevents, ctx, n, n, ev, &ts);
	if (got != n) {
		printf("FAIL %s: io_getevents got %ld of %d events: %m\n", when, got, n);
		return 1;
	}
	for (int i = 0; i < n; i++)
		if (ev[i].data != first + i || ev[i].res != 1) {
			printf("FAIL %s: event %d: data %llu res %lld, want %llu 1\n", when, i, (unsigned long long)ev[i].data,
			       (long long)ev[i].res, first + i);
			return 1;
		}
	return 0;
}

static int check(void)
{
	struct ring *r = (struct ring *)ctx;
	unsigned head = r->head, tail = r->tail;
	if ((tail + r->nr - head) % r->nr != 3) {
		printf("FAIL restored ring: head %u tail %u of %u: want 3 events\n", head, tail, r->nr);
		return 1;
	}
	if (reap("after restore", 3, 3))
		return 1;
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0 || submit(fd, 42) || reap("new request", 1, 42)) {
		printf("FAIL a new request on the restored context\n");
		return 1;
	}
	close(fd);
	return 0;
}

/* The child's copy of the ring maps the parent's: once the parent has
 * checked (run_pair), all its events are reaped. */
static int check_child(void)
{
	struct ring *r = (struct ring *)ctx;
	struct vma_info vi = vma_smaps(r);
	if (!vi.found || r->head != r->tail) {
		printf("FAIL child: ring copy found %d, head %u tail %u: want the parent's, all reaped\n", vi.found, r->head, r->tail);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (syscall(SYS_io_setup, 128, &ctx)) {
		printf("FAIL io_setup: %m\n");
		return 1;
	}
	int fd = open("/dev/null", O_WRONLY);
	struct ring *r = (struct ring *)ctx;
	if (strcmp(mode, "wrap") == 0)
		for (unsigned i = 0; i < r->nr - 3; i++)
			if (submit(fd, 1000 + i) || reap("wrapping", 1, 1000 + i))
				return 1;
	for (int i = 1; i <= 5; i++)
		if (submit(fd, i)) {
			printf("FAIL io_submit %d: %m\n", i);
			return 1;
		}
	close(fd);
	if (reap("before dump", 2, 1))
		return 1;
	if (strcmp(mode, "wrap") == 0 && r->tail >= r->head) {
		printf("FAIL the ring did not wrap: head %u tail %u\n", r->head, r->tail);
		return 1;
	}
	install_term();
	if (strcmp(mode, "child") == 0)
		return run_pair(NULL, check_child, check);
	printf("READY\n");
	fflush(stdout);
	wait_term();
	int bad = check();
	if (!bad)
		printf("PASS\n");
	return bad;
}
