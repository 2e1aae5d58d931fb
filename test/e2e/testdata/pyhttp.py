"""pyhttp: a Python HTTP server (http.server in a thread) on 127.0.0.1.

Follows the protocol of common.h: build state, write ./pidfile, wait for
SIGTERM, verify, write ./result ("PASS" or "FAIL: reason").

The server listens on an ephemeral port and counts the requests it
served; the main thread asks it for /count before the pidfile is
written. On SIGTERM the main thread asks again: the same server, on the
same port, must answer with the count one higher (its listener and its
state came back), then it shuts the server down.
"""
import http.server
import threading
import urllib.request

import wlproto

served = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        with lock:
            served += 1
            body = f"{served}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
thread.start()


def get():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as r:
        return int(r.read())


before = get()
wlproto.ready_then_wait_term()
try:
    after = get()
    result = "PASS" if after == before + 1 else f"FAIL: count {after} after {before}"
except Exception as e:  # noqa: BLE001 - any failure is the verdict
    result = f"FAIL: request to port {port}: {e!r}"
server.shutdown()
wlproto.write_result(result)
