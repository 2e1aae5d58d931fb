"""pythreads: a Python process with threads and a few MiB of data.

Follows the protocol of common.h: build state, write ./pidfile, wait for
SIGTERM, verify, write ./result ("PASS" or "FAIL: reason").

  data      a dict of 20000 entries (str -> list of ints), a bytearray of
            4 MiB and a list of floats, built from a seed: recomputable
  workers   4 threads take jobs (ranges of keys) from a queue.Queue, sum
            the entries' lists and put the sums on a result queue
  feeder    1 thread keeps putting jobs on the queue
  collector 1 thread takes results and checks each against the expected
            sum, counting them
  ticker    1 thread sleeps in time.sleep and counts ticks

On SIGTERM the main thread checks that jobs and ticks keep advancing,
stops the threads, joins them, and checks every result seen, the data
structures and the thread names.
"""
import hashlib
import os
import queue
import signal
import sys
import threading
import time

NKEYS = 20000
got_term = threading.Event()
stop = threading.Event()
errors = []


def fail(msg):
    if not errors:
        print(f"[pythreads {os.getpid()}] FAIL: {msg}", flush=True)
    errors.append(msg)


def values(i):
    return [(i * 7919 + k * 104729) % 1000003 for k in range(8)]


def build():
    data = {f"key-{i:06d}": values(i) for i in range(NKEYS)}
    blob = bytearray(hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32))
    floats = [i * 0.5 for i in range(100000)]
    return data, blob, floats


data, blob, floats = build()
blob_digest = hashlib.sha256(blob).hexdigest()
jobs = queue.Queue(maxsize=64)
# Bounded like jobs: four workers outrun the one collector, and an unbounded
# queue would keep growing the heap (the driver compares maps over time).
results = queue.Queue(maxsize=64)
counts = {"jobs": 0, "results": 0, "ticks": 0}
count_lock = threading.Lock()


def expected(lo, hi):
    return sum(sum(values(i)) for i in range(lo, hi))


def feeder():
    lo = 0
    while not stop.is_set():
        hi = min(lo + 50, NKEYS)
        try:
            jobs.put((lo, hi), timeout=0.1)
        except queue.Full:
            continue
        lo = 0 if hi == NKEYS else hi


def worker():
    while not stop.is_set():
        try:
            lo, hi = jobs.get(timeout=0.1)
        except queue.Empty:
            continue
        s = sum(sum(data[f"key-{i:06d}"]) for i in range(lo, hi))
        while not stop.is_set():
            try:
                results.put((lo, hi, s), timeout=0.1)
                break
            except queue.Full:
                continue
        with count_lock:
            counts["jobs"] += 1


def collector():
    while not stop.is_set() or not results.empty():
        try:
            lo, hi, s = results.get(timeout=0.1)
        except queue.Empty:
            continue
        if s != expected(lo, hi):
            fail(f"job {lo}-{hi}: sum {s}, want {expected(lo, hi)}")
        with count_lock:
            counts["results"] += 1


def ticker():
    while not stop.is_set():
        time.sleep(0.01)
        with count_lock:
            counts["ticks"] += 1


def snapshot():
    with count_lock:
        return dict(counts)


def main():
    signal.signal(signal.SIGTERM, lambda s, f: got_term.set())
    threads = [threading.Thread(target=feeder, name="feeder"),
               threading.Thread(target=collector, name="collector"),
               threading.Thread(target=ticker, name="ticker")]
    threads += [threading.Thread(target=worker, name=f"worker{i}") for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while min(snapshot().values()) == 0:
        if time.monotonic() > deadline:
            print("SETUP ERROR: threads made no progress", flush=True)
            sys.exit(3)
        time.sleep(0.01)
    # Let the heap reach its steady size before the driver's first snapshot.
    time.sleep(0.5)
    with open("pidfile.tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename("pidfile.tmp", "pidfile")

    start = time.monotonic()
    while not got_term.wait(0.05):
        if time.monotonic() - start > 900:
            fail("no SIGTERM within 15 minutes")
            break

    before = snapshot()
    time.sleep(0.5)
    after = snapshot()
    for k in before:
        if after[k] <= before[k]:
            fail(f"{k} stuck at {before[k]} after SIGTERM")
    names = sorted(t.name for t in threading.enumerate())
    want = sorted(["MainThread"] + [t.name for t in threads])
    if names != want:
        fail(f"threads {names}, want {want}")
    stop.set()
    for t in threads:
        t.join(timeout=20)
        if t.is_alive():
            fail(f"thread {t.name} did not stop")
    if hashlib.sha256(blob).hexdigest() != blob_digest:
        fail("bytearray changed")
    d2, b2, f2 = build()
    if d2 != data:
        fail("dict changed")
    if b2 != blob:
        fail("bytearray differs from its rebuild")
    if f2 != floats:
        fail("float list changed")
    final = snapshot()
    print(f"[pythreads {os.getpid()}] jobs {final['jobs']} results {final['results']} ticks {final['ticks']}",
          flush=True)
    verdict = "PASS" if not errors else f"FAIL: {errors[0]} ({len(errors)} failures)"
    with open("result.tmp", "w") as f:
        f.write(verdict + "\n")
    os.rename("result.tmp", "result")
    sys.exit(0 if not errors else 1)


main()
