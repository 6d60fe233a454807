"""smtpraw.py: a byte-level SMTP client for the tests, for what smtplib refuses to send (bare line
ends, pipelined bytes, a client that talks first)."""
import socket
import ssl
import time


class Raw:
    """A byte-level SMTP client, for what smtplib refuses to send."""

    def __init__(self, port, source="127.0.0.1", tls_ctx=None, timeout=10.0):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        if tls_ctx:
            sock = tls_ctx.wrap_socket(sock, server_hostname="mx.example.test")
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One complete (possibly multi-line) reply as text; "" when the server closed."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" ":
                    text = b"\r\n".join(lines[: i + 1]).decode()
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return text
            chunk = self.sock.recv(4096)
            if not chunk:
                return ""
            self.buf += chunk
        raise AssertionError(f"no reply within 10 s; have {self.buf!r}")

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def closed(self):
        """True when the server closed the connection (after any pending replies)."""
        try:
            self.sock.settimeout(5)
            return self.sock.recv(4096) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()
