"""pgserver: a PostgreSQL server, its postmaster and background processes
under a Python root, holding a table.

Follows the protocol of common.h: build state, write ./pidfile, wait for
SIGTERM, verify, write ./result ("PASS" or "FAIL: reason").

What it puts in the tree: a postmaster (uid postgres) and its checkpointer,
background writer, WAL writer and launchers, sharing the main segment (a
MAP_SHARED|MAP_ANONYMOUS mapping), a POSIX shm segment (/dev/shm) and a
SysV one; the postmaster-death pipe every child holds; signalfd and epoll
in each; a TCP listener on 127.0.0.1 and a unix one.

Before the pidfile it fills a table, draws from a sequence and runs a
CHECKPOINT (so that no background process has pages to write while the
driver compares the tree). On SIGTERM, through new connections (a new
backend forked by the postmaster): the table's digest is the same, the
sequence goes on, a new row goes in and a CHECKPOINT writes it; then a
fast shutdown must end cleanly, and a new server on the same data
directory must find the row: the restored processes' shared memory, WAL
and files were one coherent server.
"""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import wlproto

here = os.getcwd()
bindir = os.path.dirname(sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))[-1])
try:
    user = pwd.getpwnam("postgres")
except KeyError:
    user = pwd.getpwnam("nobody")
# The server's own directory, under /tmp: the run dir's parents may be
# closed to uid postgres, and a unix socket's path must fit in 108 bytes.
top = tempfile.mkdtemp(prefix="mmcr-pg-")
os.chmod(top, 0o755)
data, sockdir = os.path.join(top, "data"), os.path.join(top, "sock")
for d in (data, sockdir):
    os.mkdir(d, 0o700)
    os.chown(d, user.pw_uid, user.pw_gid)
logpath = os.path.join(here, "postgres.log")
log = open(logpath, "ab")


def as_postgres():
    os.setgid(user.pw_gid)
    os.setgroups([])
    os.setuid(user.pw_uid)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()


def start():
    return subprocess.Popen(
        [os.path.join(bindir, "postgres"), "-D", data, "-p", str(port), "-k", sockdir,
         "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=32MB",
         # No process may come or go between the driver's snapshot and
         # the dump: no autovacuum workers.
         "-c", "autovacuum=off"],
        preexec_fn=as_postgres, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def psql(sql, host=None):
    out = subprocess.run(
        [os.path.join(bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-h", host or sockdir, "-p", str(port), "-U", "postgres", "-d", "postgres", "-c", sql],
        capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {out.stderr.strip()}")
    return out.stdout.strip()


def wait_ready():
    for _ in range(300):
        try:
            return psql("select 1")
        except RuntimeError:
            time.sleep(0.1)
    raise RuntimeError("the server did not take connections in 30 s")


def stop(server):
    server.send_signal(signal.SIGINT)  # fast shutdown
    try:
        code = server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        raise RuntimeError("the server did not stop in 60 s of SIGINT")
    if code != 0:
        raise RuntimeError(f"the server exited with {code}")


DIGEST = "select count(*) || ' ' || md5(string_agg(s, ',' order by i)) from t"

def setup_failed(what):
    with open(logpath, "rb") as f:
        sys.stderr.write(f"{what}; postgres.log ends:\n" + f.read()[-2000:].decode(errors="replace"))
    shutil.rmtree(top, ignore_errors=True)
    sys.exit(1)


if subprocess.run([os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                  preexec_fn=as_postgres, stdin=subprocess.DEVNULL, stdout=log, stderr=log).returncode != 0:
    setup_failed("initdb failed")
server = start()
try:
    wait_ready()
except RuntimeError as e:
    server.kill()
    setup_failed(str(e))
psql("create table t (i int primary key, s text); "
     "insert into t select g, md5(g::text) from generate_series(1, 50000) g; "
     "create sequence q; select nextval('q'), nextval('q'), nextval('q')")
digest = psql(DIGEST)
if psql("select count(*) from t", host="127.0.0.1") != "50000":
    server.kill()
    setup_failed("the table over TCP is not the table")
psql("checkpoint")
time.sleep(0.5)

wlproto.ready_then_wait_term()

result = "PASS"
try:
    if (got := psql(DIGEST)) != digest:
        result = f"FAIL: table digest {got}, before {digest}"
    elif (got := psql("select nextval('q')")) != "4":
        result = f"FAIL: the sequence gave {got} after 3"
    elif (got := psql("select count(*) from t", host="127.0.0.1")) != "50000":
        result = f"FAIL: over TCP the table has {got} rows"
    else:
        psql("insert into t values (-1, 'after the restore'); checkpoint")
        stop(server)
        server = start()
        wait_ready()
        got = psql("select count(*) || ' ' || coalesce((select s from t where i = -1), 'none') from t")
        if got != "50001 after the restore":
            result = f"FAIL: a new server on the data directory finds {got!r}"
except Exception as e:  # noqa: BLE001 - any failure is the verdict
    result = f"FAIL: {e}"
finally:
    if server.poll() is None:
        try:
            stop(server)
        except Exception as e:  # noqa: BLE001
            if result == "PASS":
                result = f"FAIL: {e}"
shutil.rmtree(top, ignore_errors=True)
wlproto.write_result(result)
