/* inotify: inotify instances across a dump and restore. One, non-blocking
 * and dup'd, watches a directory for creations and deletions (wd 1) and a
 * file in it for a change of attributes, once (IN_ONESHOT; wd 3: the
 * watch that had wd 2 was removed); another, blocking, watches the
 * directory for closes after writing. On SIGTERM it makes a file in the
 * directory, writes and closes it and changes the watched file's mode,
 * and checks each instance reads just those events with the dumped
 * descriptors (nothing from restore's work), through either fd of the
 * first. Prints PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/inotify.h>
#include <sys/stat.h>

static char dir[64], file[96], newfile[96];
static int ify, ify_dup, ify2;

/* next_event reads one event of fd into ev (name in name), 0 when none. */
static int next_event(int fd, struct inotify_event *ev, char *name)
{
	static char buf[4096] __attribute__((aligned(8)));
	static int len, off;
	static int from = -1;
	if (from != fd)
		len = off = 0, from = fd;
	if (off >= len) {
		len = read(fd, buf, sizeof(buf));
		off = 0;
		if (len <= 0)
			return 0;
	}
	struct inotify_event *e = (struct inotify_event *)(buf + off);
	*ev = *e;
	strcpy(name, e->len ? e->name : "");
	off += sizeof(*e) + e->len;
	return 1;
}

static int expect(int fd, const char *what, int wd, uint32_t mask, const char *name)
{
	struct inotify_event ev;
	char got[256];
	if (!next_event(fd, &ev, got)) {
		printf("FAIL %s: no event (%m)\n", what);
		return 1;
	}
	if (ev.wd != wd || ev.mask != mask || strcmp(got, name)) {
		printf("FAIL %s: event wd %d mask %#x name %s, want wd %d mask %#x name %s\n", what, ev.wd, ev.mask, got, wd,
		       mask, name);
		return 1;
	}
	return 0;
}

static int check(void)
{
	if (!(fcntl(ify, F_GETFL) & O_NONBLOCK) || (fcntl(ify2, F_GETFL) & O_NONBLOCK))
		return printf("FAIL flags %#x %#x\n", fcntl(ify, F_GETFL), fcntl(ify2, F_GETFL)), 1;
	int fd = open(newfile, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1 || close(fd))
		return printf("FAIL make a file: %m\n"), 1;
	/* Read through the dup first; next_event's buffer is per fd. */
	if (expect(ify_dup, "create", 1, IN_CREATE, "new") || expect(ify2, "close after write", 1, IN_CLOSE_WRITE, "new"))
		return 1;
	if (chmod(file, 0640))
		return printf("FAIL chmod: %m\n"), 1;
	if (expect(ify, "attrib", 3, IN_ATTRIB, "") || expect(ify, "oneshot end", 3, IN_IGNORED, ""))
		return 1;
	struct inotify_event ev;
	char name[256];
	if (next_event(ify, &ev, name))
		return printf("FAIL an event more: wd %d mask %#x\n", ev.wd, ev.mask), 1;
	return 0;
}

int main(void)
{
	strcpy(dir, "/tmp/mmcr-inotify-test-XXXXXX");
	if (!mkdtemp(dir))
		return printf("FAIL mkdtemp: %m\n"), 1;
	snprintf(file, sizeof(file), "%s/watched", dir);
	snprintf(newfile, sizeof(newfile), "%s/new", dir);
	if (close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)))
		return printf("FAIL create: %m\n"), 1;
	ify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ify2 = inotify_init1(IN_CLOEXEC);
	if (ify < 0 || ify2 < 0)
		return printf("FAIL inotify_init1: %m\n"), 1;
	int w1 = inotify_add_watch(ify, dir, IN_CREATE | IN_DELETE);
	int w2 = inotify_add_watch(ify, file, IN_MODIFY);
	if (w1 != 1 || w2 != 2 || inotify_rm_watch(ify, w2))
		return printf("FAIL watches %d %d: %m\n", w1, w2), 1;
	int w3 = inotify_add_watch(ify, file, IN_ATTRIB | IN_ONESHOT);
	if (w3 != 3 || inotify_add_watch(ify2, dir, IN_CLOSE_WRITE) != 1)
		return printf("FAIL watches: %m\n"), 1;
	struct inotify_event ev;
	char name[256];
	while (next_event(ify, &ev, name)) /* the IN_IGNORED of wd 2 */
		;
	ify_dup = dup(ify);
	install_term();
	printf("READY\n");
	fflush(stdout);
	wait_term();
	int bad = check();
	unlink(newfile);
	unlink(file);
	rmdir(dir);
	if (!bad)
		printf("PASS\n");
	return bad;
}
