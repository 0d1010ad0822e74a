"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 in a
thread of the test process, recording every request (headers and the raw
body) and answering what the test tells it to. Nothing leaves the machine.

    with Receiver() as rx:            # rx.url is http://127.0.0.1:PORT/hook
        ...
        rx.wait_for(3)                # at least 3 requests, or AssertionError
"""
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time


def hmac_hex(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def e2b_signature(secret, body):
    """E2B's scheme: base64 of SHA-256(secret + body), '=' padding removed."""
    return base64.b64encode(hashlib.sha256(secret.encode() + body).digest()).decode().rstrip("=")


class Receiver:
    def __init__(self, port=0, answer=None, delay=0.0):
        """answer(n, body) -> HTTP status (n counts requests from 0), or a
        (status, headers) pair; default 200. delay: seconds to wait first."""
        self.requests = []          # (headers dict with lower-case names, body bytes, status answered)
        self.answer = answer or (lambda n, body: 200)
        self.delay = delay
        self.lock = threading.Condition()
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if rx.delay:
                    time.sleep(rx.delay)
                with rx.lock:
                    n = len(rx.requests)
                result = rx.answer(n, body)
                status, headers = result if isinstance(result, tuple) else (result, {})
                with rx.lock:
                    rx.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                    rx.lock.notify_all()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_for(self, n, timeout=30, status=None):
        """Waits until n requests (answered with `status`, if given) arrived."""
        deadline = time.time() + timeout
        with self.lock:
            while self.count(status) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"receiver got {self.count(status)} requests, expected {n}")
                self.lock.wait(left)
            return list(self.requests)

    def count(self, status=None):
        return sum(1 for r in self.requests if status is None or r[2] == status)

    def delivered(self):
        """The payloads answered 2xx, in arrival order."""
        with self.lock:
            return [json.loads(body) for _, body, status in self.requests if 200 <= status < 300]
