"""The servers test_ports.py runs inside a sandbox (python3 of the host
template, stdlib only), all bound to 127.0.0.1 there:

  8000  HTTP (ThreadingHTTPServer, HTTP/1.1):
          GET  /headers        the request's headers and target as JSON
          GET  /bytes?n=N      N bytes of a fixed pattern (Content-Length)
          GET  /chunked?n=N    the same, chunked
          GET  /short          says Content-Length 1000, sends 10 and closes
          GET  /chunkcut       one chunk, then closes without the last chunk
          HEAD *               Content-Length 12345, no body
          POST /upload         sha256 and length of the body (Content-Length or chunked)
          *    anything else   the method and target as JSON
  8765  WebSocket echo, hand-rolled on socket (text and binary, ping, close)
  9001  answers garbage that is not HTTP
  9002  accepts and never answers
  9003  answers a status line and then 1 MiB of one header
"""
import base64
import hashlib
import http.server
import json
import socket
import socketserver
import struct
import threading

PATTERN = bytes(range(256)) * 256     # 64 KiB


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def pattern(self, n, chunked):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(n))
        self.end_headers()
        while n > 0:
            piece = PATTERN[:min(n, len(PATTERN))]
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            n -= len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        path, _, query = self.path.partition("?")
        n = int(query[2:]) if query.startswith("n=") else 0
        if path == "/headers":
            self.answer_json({"target": self.path, "peer": self.client_address[1],
                              "headers": [[k, v] for k, v in self.headers.items()]})
        elif path == "/bytes":
            self.pattern(n, False)
        elif path == "/chunked":
            self.pattern(n, True)
        elif path == "/chunkcut":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.answer_json({"method": "GET", "target": self.path})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "12345")
        self.send_header("X-Head", "yes")
        self.end_headers()

    def read_body(self):
        h = hashlib.sha256()
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 20))
                    h.update(piece)
                    total += len(piece)
                    left -= len(piece)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                piece = self.rfile.read(min(left, 1 << 20))
                if not piece:
                    break
                h.update(piece)
                total += len(piece)
                left -= len(piece)
        return h.hexdigest(), total

    def do_POST(self):
        digest, total = self.read_body()
        self.answer_json({"method": "POST", "target": self.path, "sha256": digest, "length": total})

    def do_PUT(self):
        self.do_POST()

    def do_DELETE(self):
        self.answer_json({"method": "DELETE", "target": self.path})


class HTTPServer(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        piece = conn.recv(n - len(data))
        if not piece:
            raise EOFError
        data += piece
    return data


def ws_session(conn):
    head = b""
    while b"\r\n\r\n" not in head:
        piece = conn.recv(4096)
        if not piece:
            return
        head += piece
    key = ""
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while True:
        b0, b1 = recv_exact(conn, 2)
        opcode, length = b0 & 0x0F, b1 & 0x7F
        if length == 126:
            length = struct.unpack(">H", recv_exact(conn, 2))[0]
        elif length == 127:
            length = struct.unpack(">Q", recv_exact(conn, 8))[0]
        mask = recv_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
        payload = bytearray(recv_exact(conn, length))
        for i in range(length):
            payload[i] ^= mask[i % 4]
        if opcode == 0x9:
            opcode = 0xA
        if length < 126:
            header = bytes([0x80 | opcode, length])
        elif length < 65536:
            header = bytes([0x80 | opcode, 126]) + struct.pack(">H", length)
        else:
            header = bytes([0x80 | opcode, 127]) + struct.pack(">Q", length)
        conn.sendall(header + bytes(payload))
        if opcode == 0x8:
            return


def serve_raw(port, session):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)

    def run(conn):
        try:
            session(conn)
        except (OSError, EOFError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    while True:
        conn, _ = s.accept()
        threading.Thread(target=run, args=(conn,), daemon=True).start()


def garbage(conn):
    conn.recv(65536)
    conn.sendall(b"this is not http\r\n\r\n")


def silent(conn):
    threading.Event().wait(3600)


def huge_header(conn):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
    for _ in range(1024):
        conn.sendall(b"a" * 1024)


for port, session in ((8765, ws_session), (9001, garbage), (9002, silent), (9003, huge_header)):
    threading.Thread(target=serve_raw, args=(port, session), daemon=True).start()
server = HTTPServer(("127.0.0.1", 8000), Handler)
print("ready", flush=True)
server.serve_forever()
