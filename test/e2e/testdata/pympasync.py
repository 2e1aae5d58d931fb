"""pympasync: an asyncio program with a multiprocessing child (fork).

Follows the protocol of common.h: build state, write ./pidfile, wait for
SIGTERM, verify, write ./result ("PASS" or "FAIL: reason").

The parent's asyncio loop (an epoll and its self-pipe socket pair) exists
before the fork, so the child inherits the epoll: one open file shared
by two processes, as in any program that forks workers after making its
loop. After the fork the parent watches the child's end of a
multiprocessing Pipe with loop.add_reader (a registration in that shared
epoll), and a ticker task sleeps with asyncio.sleep.

  child   sends 1, 2, 3... over the Pipe every 20 ms until it reads "stop",
          then sends its last number and exits 0
  parent  checks every number arrives once and in order, counts ticks

On SIGTERM the parent checks that numbers and ticks went on arriving,
stops the child, joins it and checks its exit status.
"""
import asyncio
import multiprocessing as mp
import os
import signal
import sys
import time


def child_main(conn):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    n = 0
    while True:
        if conn.poll(0.02):
            if conn.recv() == "stop":
                conn.send(("last", n))
                return
        n += 1
        conn.send(n)


async def main():
    errors = []
    parent_conn, child_conn = mp.Pipe()
    proc = mp.Process(target=child_main, args=(child_conn,))
    proc.start()
    child_conn.close()
    loop = asyncio.get_running_loop()
    seen = {"n": 0, "ticks": 0}
    last = loop.create_future()

    def on_message():
        try:
            msg = parent_conn.recv()
        except EOFError:
            loop.remove_reader(parent_conn.fileno())
            if not last.done():
                last.set_exception(EOFError("the child's pipe closed"))
            return
        if isinstance(msg, tuple):
            loop.remove_reader(parent_conn.fileno())
            last.set_result(msg[1])
            return
        if msg != seen["n"] + 1 and not errors:
            errors.append(f"message {msg} after {seen['n']}")
        seen["n"] = msg

    loop.add_reader(parent_conn.fileno(), on_message)

    async def ticker():
        while True:
            await asyncio.sleep(0.01)
            seen["ticks"] += 1

    tick_task = asyncio.create_task(ticker())
    while seen["n"] < 5:
        await asyncio.sleep(0.01)
    term = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, term.set)
    with open("pidfile.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename("pidfile.tmp", "pidfile")
    await term.wait()

    # Restored (or not): both must still advance.
    n0, t0 = seen["n"], seen["ticks"]
    deadline = time.monotonic() + 10
    while (seen["n"] < n0 + 5 or seen["ticks"] < t0 + 5) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if seen["n"] < n0 + 5:
        errors.append(f"messages stalled at {seen['n']} (from {n0})")
    if seen["ticks"] < t0 + 5:
        errors.append(f"ticks stalled at {seen['ticks']} (from {t0})")
    parent_conn.send("stop")
    try:
        final = await asyncio.wait_for(last, 10)
        if final != seen["n"] and not errors:
            errors.append(f"child's last number {final}, parent saw {seen['n']}")
    except (asyncio.TimeoutError, EOFError) as e:
        errors.append(f"child did not stop: {e!r}")
    proc.join(10)
    if proc.exitcode != 0:
        errors.append(f"child exit code {proc.exitcode}")
    tick_task.cancel()
    with open("result", "w") as f:
        f.write("PASS\n" if not errors else f"FAIL: {errors[0]}\n")


if __name__ == "__main__":
    mp.set_start_method("fork")
    asyncio.run(main())
