"""ngxserver: an nginx server (master, two workers) under a Python root.

Follows the protocol of common.h: build state, write ./pidfile, wait for
SIGTERM, verify, write ./result ("PASS" or "FAIL: reason").

What it puts in the tree: a master (root) and two workers (uid nobody)
that share the master's listening sockets (127.0.0.1, and ::1 where the
machine has it), each worker watching them with an epoll of its own; a
shared memory zone (limit_req) and the connection counters nginx keeps in
shared memory; the channel socket pairs between master and workers.

Before the pidfile it makes a few requests. On SIGTERM: the next request
(over IPv4, then IPv6) must get the next connection number and the
accepted-connections counter of stub_status must go on from where it was
(both are in memory the workers share); then a reload (SIGHUP: the
restored master forks new workers, which inherit its restored listeners)
must serve the number after, and a graceful quit (SIGQUIT) must end the
master with status 0.
"""
import os
import signal
import socket
import subprocess
import time
import urllib.request

import wlproto

here = os.getcwd()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


port = free_port()
ipv6 = has_ipv6_loopback()
listen = f"listen 127.0.0.1:{port};" + (f" listen [::1]:{port};" if ipv6 else "")
conf = os.path.join(here, "nginx.conf")
with open(conf, "w") as f:
    f.write(f"""
worker_processes 2;
daemon off;
pid {here}/nginx.pid;
error_log {here}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    limit_req_zone $binary_remote_addr zone=one:1m rate=1000r/s;
    server {{
        {listen}
        location = /status {{ stub_status; }}
        location / {{ limit_req zone=one burst=100 nodelay; return 200 "$connection\\n"; }}
    }}
}}
""")

nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", here, "-c", conf], stdin=subprocess.DEVNULL)


def get(path="/", host="127.0.0.1"):
    url = f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def accepts():
    # "Active connections: 1\nserver accepts handled requests\n A H R\n..."
    return int(get("/status").split("\n")[2].split()[0])


def workers():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(int(p)) == nginx.pid)


def ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


for _ in range(300):
    try:
        get()
        break
    except OSError:
        time.sleep(0.1)
for _ in range(50):  # both workers up
    if len(workers()) == 2:
        break
    time.sleep(0.1)
last = int(get())
seen = accepts()

wlproto.ready_then_wait_term()

result = "PASS"
try:
    # Connections: last, then /status (last+1, counted in seen); now
    # last+2, last+3 (IPv6), /status again, then one after the reload.
    if (got := int(get())) != last + 2:
        result = f"FAIL: connection {got} after {last} and the status request"
    elif ipv6 and (got := int(get(host="::1"))) != last + 3:
        result = f"FAIL: over IPv6, connection {got}, want {last + 3}"
    elif (got := accepts()) != seen + (3 if ipv6 else 2):
        result = f"FAIL: stub_status accepts {got}, {seen} before"
    else:
        before = workers()
        nginx.send_signal(signal.SIGHUP)
        for _ in range(100):
            now = workers()
            if len(now) == 2 and not set(now) & set(before):
                break
            time.sleep(0.1)
        else:
            result = f"FAIL: after SIGHUP the workers are {workers()}, before {before}"
        if result == "PASS":
            want = last + (5 if ipv6 else 4)
            if (got := int(get())) != want:
                result = f"FAIL: after the reload, connection {got}, want {want}"
except Exception as e:  # noqa: BLE001 - any failure is the verdict
    result = f"FAIL: {e!r}"
nginx.send_signal(signal.SIGQUIT)
try:
    code = nginx.wait(timeout=30)
    if code != 0 and result == "PASS":
        result = f"FAIL: nginx exited with {code} after SIGQUIT"
except subprocess.TimeoutExpired:
    nginx.kill()
    if result == "PASS":
        result = "FAIL: nginx did not quit in 30 s of SIGQUIT"
wlproto.write_result(result)
