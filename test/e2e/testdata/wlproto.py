"""wlproto: the workload protocol of common.h for the Python workloads
that run one verdict in their main thread (pyhttp.py, pgserver.py,
ngxserver.py): write ./pidfile once ready, wait for SIGTERM, write ./result.
"""
import os
import signal
import threading


def ready_then_wait_term():
    """Write ./pidfile (atomically) and return once SIGTERM has come."""
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    with open("pidfile.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename("pidfile.tmp", "pidfile")
    while not term.wait(0.2):
        pass


def write_result(result):
    """Write the verdict ("PASS" or "FAIL: reason") to ./result."""
    with open("result.tmp", "w") as f:
        f.write(result + "\n")
    os.rename("result.tmp", "result")
