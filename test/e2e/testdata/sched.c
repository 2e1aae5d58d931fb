/*
 * sched: scheduling state and oom_score_adj, which live in the kernel, not
 * in memory, and which a restore must give back as they were.
 *
 *   root      oom_score_adj 300; its main thread SCHED_BATCH at nice 7
 *     fifo    thread: SCHED_FIFO priority 10 (keeps nice 7); sleeps
 *     idle    thread: SCHED_IDLE (keeps nice 7); sleeps
 *   child     forked: SCHED_RR priority 5 with SCHED_RESET_ON_FORK (nice 7
 *             from its parent), its own oom_score_adj 200
 *
 * Timer slack (prctl PR_SET_TIMERSLACK, per thread): the root's main thread
 * sets 123 µs (the child inherits it at fork), the idle thread 777 µs; the
 * FIFO thread keeps what the kernel gives a real-time thread.
 *
 * Every thread records what the kernel says of it once it is set up: its
 * policy as sched_getscheduler reports it (reset-on-fork included), its
 * real-time priority (sched_getattr) and nice value (getpriority, which
 * a real-time thread has too), its timer slack, and its process's
 * /proc/self/oom_score_adj.
 * After SIGTERM the child checks itself and the root checks each of its
 * threads by tid (restore keeps tids), naming anything that changed.
 */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define ROOT_OOM 300
#define CHILD_OOM 200
#define NICE 7
#define FIFO_PRIO 10
#define RR_PRIO 5

#define ROOT_SLACK 123000UL
#define IDLE_SLACK 777000UL

#define FLAG_RESET_ON_FORK 0x01 /* SCHED_FLAG_RESET_ON_FORK, linux/sched.h */

/* kattr is the kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0). */
struct kattr {
	uint32_t size;
	uint32_t policy;
	uint64_t flags;
	int32_t nice;
	uint32_t prio;
	uint64_t runtime, deadline, period;
};

struct state {
	int policy; /* as sched_getscheduler reports it */
	unsigned prio;
	int nice;
};

static const char *policy_name(int p, char *buf, size_t len)
{
	static const char *names[] = {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH",
				      "policy 4", "SCHED_IDLE", "SCHED_DEADLINE", "SCHED_EXT"};
	int base = p & ~SCHED_RESET_ON_FORK;
	if (base >= 0 && base < (int)(sizeof(names) / sizeof(names[0])))
		snprintf(buf, len, "%s%s", names[base], p & SCHED_RESET_ON_FORK ? "|SCHED_RESET_ON_FORK" : "");
	else
		snprintf(buf, len, "policy %#x", p);
	return buf;
}

/* read_state reads tid's state (0: the calling thread); 0 on failure, recorded. */
static int read_state(pid_t tid, struct state *s, const char *what)
{
	struct kattr a;
	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, tid, &a, sizeof(a), 0)) {
		failf("%s: sched_getattr: %s", what, strerror(errno));
		return 0;
	}
	s->policy = (int)a.policy | (a.flags & FLAG_RESET_ON_FORK ? SCHED_RESET_ON_FORK : 0);
	s->prio = a.prio;
	int p = sched_getscheduler(tid);
	if (p != s->policy) {
		char b1[64], b2[64];
		failf("%s: sched_getscheduler says %s, sched_getattr %s", what, policy_name(p, b1, sizeof(b1)),
		      policy_name(s->policy, b2, sizeof(b2)));
		return 0;
	}
	errno = 0;
	int n = getpriority(PRIO_PROCESS, tid);
	if (n == -1 && errno) {
		failf("%s: getpriority: %s", what, strerror(errno));
		return 0;
	}
	s->nice = n;
	return 1;
}

static int read_oom(void)
{
	char buf[32];
	int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open /proc/self/oom_score_adj: %s", strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		die("read /proc/self/oom_score_adj: %s", n < 0 ? strerror(errno) : "empty");
	buf[n] = 0;
	return atoi(buf);
}

static void set_oom(int v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d", v);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, n) != n)
		die("set oom_score_adj %d: %s (below the oom_score_adj_min this process inherited?)", v,
		    strerror(errno));
	close(fd);
}

static void set_sched(int policy, unsigned prio, int nice, uint64_t flags, const char *what)
{
	struct kattr a;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.policy = policy;
	a.prio = prio;
	a.nice = nice;
	a.flags = flags;
	if (syscall(SYS_sched_setattr, 0, &a, 0))
		die("%s: sched_setattr(policy %d, priority %u, nice %d): %s", what, policy, prio, nice,
		    strerror(errno));
}

/* want_state dies at setup when the kernel did not give what was asked. */
static void want_state(const struct state *s, int policy, unsigned prio, int nice, const char *what)
{
	if (s->policy != policy || s->prio != prio || s->nice != nice) {
		char b1[64], b2[64];
		die("%s: set up as %s priority %u nice %d, the kernel says %s priority %u nice %d", what,
		    policy_name(policy, b1, sizeof(b1)), prio, nice, policy_name(s->policy, b2, sizeof(b2)),
		    s->prio, s->nice);
	}
}

/* compare names every field of now that differs from was. */
static void compare(const struct state *was, const struct state *now, const char *what)
{
	char b1[64], b2[64];
	if (now->policy != was->policy)
		failf("%s: policy %s after restore, was %s", what, policy_name(now->policy, b1, sizeof(b1)),
		      policy_name(was->policy, b2, sizeof(b2)));
	if (now->prio != was->prio)
		failf("%s: real-time priority %u after restore, was %u", what, now->prio, was->prio);
	if (now->nice != was->nice)
		failf("%s: nice %d after restore, was %d", what, now->nice, was->nice);
}

static void check_oom(int was, const char *what)
{
	int now = read_oom();
	if (now != was)
		failf("%s: oom_score_adj %d after restore, was %d", what, now, was);
}

struct thr {
	const char *name;
	int policy;
	unsigned prio;
	pthread_t pt;
	volatile pid_t tid;
	struct state at_start;
	unsigned long slack_set, slack_at_start; /* slack_set 0: leave it */
	volatile int ready;
};

static struct thr thr[2] = {
	{.name = "fifo", .policy = SCHED_FIFO, .prio = FIFO_PRIO},
	{.name = "idle", .policy = SCHED_IDLE, .slack_set = IDLE_SLACK},
};
static volatile int stop;

/* slack is the calling thread's timer slack in ns. */
static unsigned long slack(void) { return (unsigned long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0); }

static void set_slack(unsigned long ns, const char *what)
{
	if (prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0))
		die("%s: prctl(PR_SET_TIMERSLACK, %lu): %s", what, ns, strerror(errno));
	if (slack() != ns)
		die("%s: timer slack %lu ns after setting %lu", what, slack(), ns);
}

static void check_slack(unsigned long was, const char *what)
{
	unsigned long now = slack();
	if (now != was)
		failf("%s: timer slack %lu ns, was %lu ns before the dump", what, now, was);
}

/* worker sets its policy and sleeps until told to stop: a real-time thread must not spin. */
static void *worker(void *arg)
{
	struct thr *t = arg;
	t->tid = (pid_t)syscall(SYS_gettid);
	set_sched(t->policy, t->prio, 0, 0, t->name);
	if (t->slack_set)
		set_slack(t->slack_set, t->name);
	t->slack_at_start = slack();
	if (read_state(0, &t->at_start, t->name))
		want_state(&t->at_start, t->policy, t->prio, NICE, t->name);
	t->ready = 1;
	while (!stop) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	check_slack(t->slack_at_start, t->name);
	return NULL;
}

static void child(void)
{
	struct state was, now;
	unsigned long slack_was = slack(); /* the root's, inherited at fork */
	if (slack_was != ROOT_SLACK)
		die("child: timer slack %lu ns, its parent's is %lu", slack_was, ROOT_SLACK);
	set_sched(SCHED_RR, RR_PRIO, 0, FLAG_RESET_ON_FORK, "child");
	slack_was = slack(); /* a real-time thread's */
	set_oom(CHILD_OOM);
	if (!read_state(0, &was, "child at start"))
		die("child: cannot read its scheduling state");
	want_state(&was, SCHED_RR | SCHED_RESET_ON_FORK, RR_PRIO, NICE, "child");
	int oom = read_oom();
	if (oom != CHILD_OOM)
		die("child: oom_score_adj %d, set %d", oom, CHILD_OOM);
	mark_ready();
	wait_term();
	if (read_state(0, &now, "child after restore"))
		compare(&was, &now, "child");
	check_slack(slack_was, "child");
	check_oom(oom, "child");
}

int main(void)
{
	install_term();
	set_oom(ROOT_OOM);
	set_sched(SCHED_BATCH, 0, NICE, 0, "root");
	set_slack(ROOT_SLACK, "root");
	struct state main_was, now;
	if (!read_state(0, &main_was, "root at start"))
		die("root: cannot read its scheduling state");
	want_state(&main_was, SCHED_BATCH, 0, NICE, "root");
	int oom = read_oom();
	if (oom != ROOT_OOM)
		die("root: oom_score_adj %d, set %d", oom, ROOT_OOM);

	pid_t kids[1];
	const char *names[1] = {"child"};
	kids[0] = spawn("child", child);
	for (int i = 0; i < 2; i++)
		if (pthread_create(&thr[i].pt, NULL, worker, &thr[i]))
			die("pthread_create %s", thr[i].name);
	double deadline = mono_now() + 30;
	for (int i = 0; i < 2; i++)
		while (!thr[i].ready) {
			if (mono_now() > deadline)
				die("thread %s not ready within 30s", thr[i].name);
			usleep(1000);
		}
	if (nfail)
		die("setup: %s", first_fail);
	write_pidfile();
	wait_term();
	forward_term(kids, 1);

	if (read_state(0, &now, "root after restore"))
		compare(&main_was, &now, "root main thread");
	check_slack(ROOT_SLACK, "root main thread");
	check_oom(oom, "root");
	for (int i = 0; i < 2; i++) {
		char what[64];
		snprintf(what, sizeof(what), "root thread %s (tid %d)", thr[i].name, (int)thr[i].tid);
		if (read_state(thr[i].tid, &now, what))
			compare(&thr[i].at_start, &now, what);
	}
	stop = 1;
	for (int i = 0; i < 2; i++) /* each checks its own timer slack as it ends */
		pthread_join(thr[i].pt, NULL);
	reap_kids(kids, names, 1);
	finish();
}
