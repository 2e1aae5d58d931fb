/*
 * threads_tree: a forked tree of multi-threaded tasks sharing anonymous
 * memory.
 *
 *   R ─┬─ A ── G
 *      └─ B
 *
 * R maps a MAP_SHARED|MAP_ANONYMOUS region (all tasks inherit it): a
 * 64-page pattern, then one slot per (task, thread). Every task, after
 * forking its children, starts NW worker threads; each worker bumps its own
 * slot with atomic adds, rereads a page of the shared pattern and of its
 * task's private pattern, and every few rounds waits on a task-local
 * condvar that the next worker signals (a ring), so workers sit blocked in
 * futex waits as often as they run.
 *
 * On SIGTERM each task checks that its own workers' slots keep moving and
 * R checks that every slot of every task moves as seen through the shared
 * region (the region is still shared after restore); then each task stops
 * and joins its workers and checks both patterns whole.
 */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

enum { R, A, B, G, NT };
static const char *task_names[NT] = {"R", "A", "B", "G"};
#define NW 3
#define PAT_PAGES 64
#define PRIV_PAGES 32

struct shared {
	_Atomic uint64_t slot[NT][NW];
	_Atomic uint64_t errors;
};

static uint8_t *region; /* PAT_PAGES of pattern, then struct shared */
static struct shared *sh;
static uint8_t *priv;
static int me = R;
static volatile int stop;
static pthread_t workers[NW];
static char werr[NW][160];

static pthread_mutex_t ringmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ringcv = PTHREAD_COND_INITIALIZER;
static uint64_t ring; /* whose turn: ring % NW */

static void *worker(void *arg)
{
	int w = (int)(intptr_t)arg;
	uint64_t round = 0;
	while (!stop) {
		atomic_fetch_add(&sh->slot[me][w], 1);
		size_t pg = round % PAT_PAGES;
		uint64_t *sp = (uint64_t *)(region + pg * PAGE);
		if (sp[7] != pat(0x5eed, pg * (PAGE / 8) + 7) && !werr[w][0])
			snprintf(werr[w], sizeof(werr[w]), "shared pattern page %zu changed", pg);
		uint64_t *pp = (uint64_t *)(priv + (round % PRIV_PAGES) * PAGE);
		if (pp[3] != pat(100 + me, (round % PRIV_PAGES) * (PAGE / 8) + 3) && !werr[w][0])
			snprintf(werr[w], sizeof(werr[w]), "private pattern page %llu changed",
				 (unsigned long long)(round % PRIV_PAGES));
		round++;
		if (round % 8 == 0) {
			/* Take our turn in the ring: blocks on the condvar. */
			pthread_mutex_lock(&ringmu);
			while (ring % NW != (uint64_t)w && !stop)
				pthread_cond_wait(&ringcv, &ringmu);
			ring++;
			pthread_cond_broadcast(&ringcv);
			pthread_mutex_unlock(&ringmu);
		}
		usleep(500);
	}
	return NULL;
}

static void start_workers(void)
{
	priv = xmmap(NULL, PRIV_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, "priv");
	fill(priv, PRIV_PAGES * PAGE, 100 + me, 0);
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (int w = 0; w < NW; w++)
		if (pthread_create(&workers[w], NULL, worker, (void *)(intptr_t)w))
			die("pthread_create worker %d", w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (int i = 0; i < 3000; i++) {
		int ok = 1;
		for (int w = 0; w < NW; w++)
			ok &= atomic_load(&sh->slot[me][w]) > 0;
		if (ok)
			return;
		usleep(1000);
	}
	die("workers made no progress during setup");
}

/*
 * moving checks that the given tasks' slots all advance, each within 5 s:
 * on a loaded machine a worker may wait that long for a CPU, a stuck one
 * never advances.
 */
static void moving(int first, int last)
{
	uint64_t before[NT][NW];
	for (int t = first; t <= last; t++)
		for (int w = 0; w < NW; w++)
			before[t][w] = atomic_load(&sh->slot[t][w]);
	for (int tries = 0; tries < 500; tries++) {
		int still = 0;
		for (int t = first; t <= last; t++)
			for (int w = 0; w < NW; w++)
				still += atomic_load(&sh->slot[t][w]) == before[t][w];
		if (!still)
			break;
		usleep(10 * 1000);
	}
	for (int t = first; t <= last; t++)
		for (int w = 0; w < NW; w++)
			if (atomic_load(&sh->slot[t][w]) == before[t][w])
				failf("task %s worker %d: slot stuck at %llu", task_names[t], w,
				      (unsigned long long)before[t][w]);
}

static void stop_workers(void)
{
	pthread_mutex_lock(&ringmu);
	stop = 1;
	pthread_cond_broadcast(&ringcv);
	pthread_mutex_unlock(&ringmu);
	alarm(20);
	for (int w = 0; w < NW; w++)
		if (pthread_join(workers[w], NULL))
			failf("join worker %d", w);
	alarm(0);
	for (int w = 0; w < NW; w++)
		if (werr[w][0])
			failf("worker %d: %s", w, werr[w]);
	check(region, PAT_PAGES * PAGE, 0x5eed, 0, "shared pattern");
	check(priv, PRIV_PAGES * PAGE, 100 + me, 0, "private pattern");
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "FAIL: watchdog: stuck joining workers\n";
	ssize_t n = write(1, msg, sizeof(msg) - 1);
	(void)n;
	_exit(1);
}

static void leaf(void)
{
	start_workers();
	mark_ready();
	wait_term();
	moving(me, me);
	stop_workers();
}

static void task_g(void) { me = G; leaf(); }
static void task_b(void) { me = B; leaf(); }

static void task_a(void)
{
	me = A;
	pid_t kid = spawn("G", task_g);
	start_workers();
	mark_ready();
	wait_term();
	forward_term(&kid, 1);
	moving(me, me);
	stop_workers();
	const char *n = "G";
	reap_kids(&kid, &n, 1);
}

int main(void)
{
	install_term();
	signal(SIGALRM, on_alarm);
	size_t len = PAT_PAGES * PAGE + 2 * PAGE;
	region = xmmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0, "shared");
	fill(region, PAT_PAGES * PAGE, 0x5eed, 0);
	sh = (struct shared *)(region + PAT_PAGES * PAGE);
	pid_t kids[2];
	kids[0] = spawn("A", task_a);
	kids[1] = spawn("B", task_b);
	start_workers();
	write_pidfile();
	wait_term();
	/* Before the children stop: every task's workers, seen through the region. */
	moving(R, NT - 1);
	forward_term(kids, 2);
	stop_workers();
	static const char *const kn[2] = {"A", "B"};
	reap_kids(kids, kn, 2);
	finish();
}
