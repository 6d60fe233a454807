"""smtp_peer.py: a small scriptable SMTP server for the SMTP client tests (threads, bounded, loopback only).

It can accept, refuse (5xx), defer (4xx), drop the connection, offer STARTTLS with a certificate
made by the test, require AUTH PLAIN/LOGIN, and it records what it received and from which
client address.
"""
import base64
import socket
import ssl
import subprocess
import threading

LINE_MAX = 4096
TIMEOUT = 30


def make_cert(directory, cn="localhost"):
    """A self-signed certificate and key made with openssl req -x509; returns (cert, key) paths."""
    cert, key = directory / "peer-cert.pem", directory / "peer-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Session:
    def __init__(self, peer):
        self.peer = peer          # (address, port) of the client as this server saw it
        self.commands = []
        self.messages = []        # dicts: mail_from, rcpts, data (bytes)
        self.tls = False
        self.tls_resumed = False  # the client resumed an earlier TLS session (ticket or session id)
        self.auth_user = None
        self.done = False         # the server side finished with this connection


class SmtpPeer:
    """Behaviour knobs (set before or between deliveries):
    greeting: reply line to the connection ("220 ..." or "421 ..." / "554 ...")
    rcpt_replies: {address: reply line}; others get "250 2.1.5 Ok"
    mail_reply, data_reply (after DATA), end_reply (after the final dot)
    drop_after: a command verb ("MAIL", "DATA", ...) after which the connection is closed
    starttls: (cert, key) to offer STARTTLS; auth: {"user": "password"} to offer and require AUTH
    tls_maximum: an ssl.TLSVersion the STARTTLS side speaks at most (None: the newest)
    One server TLS context serves every connection while these stay the same, so that a client can
    resume a session (its ticket was issued under this context's keys).
    """

    def __init__(self, host="127.0.0.1", port=0):
        self.greeting = "220 peer.example.test ESMTP test peer"
        self.rcpt_replies = {}
        self.mail_reply = "250 2.1.0 Ok"
        self.data_reply = "354 End data with <CR><LF>.<CR><LF>"
        self.end_reply = "250 2.0.0 Ok: queued as PEER{n}"
        self.drop_after = None
        self.starttls = None
        self.auth = None
        self.tls_maximum = None
        self._tls_ctx = None
        self._tls_ctx_for = None
        self.sessions = []
        self.lock = threading.Lock()
        self.queued = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.host, self.port = self.sock.getsockname()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def messages(self):
        with self.lock:
            return [m for s in self.sessions for m in s.messages]

    def _accept(self):
        while not self.stopping:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True).start()

    def _serve(self, conn, addr):
        conn.settimeout(TIMEOUT)
        sess = Session(addr)
        with self.lock:
            self.sessions.append(sess)
        f = conn.makefile("rb")
        try:
            self._dialog(conn, f, sess)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
            sess.done = True

    def _server_context(self):
        with self.lock:
            wanted = (self.starttls, self.tls_maximum)
            if self._tls_ctx is None or self._tls_ctx_for != wanted:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*map(str, self.starttls))
                if self.tls_maximum is not None:
                    ctx.maximum_version = self.tls_maximum
                self._tls_ctx, self._tls_ctx_for = ctx, wanted
            return self._tls_ctx

    @staticmethod
    def _send(conn, line):
        conn.sendall(line.encode() + b"\r\n")

    def _dialog(self, conn, f, sess):
        self._send(conn, self.greeting)
        if not self.greeting.startswith("2"):
            return
        msg = None
        authed = False
        for _ in range(10000):  # bounded: commands per connection
            raw = f.readline(LINE_MAX)
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            sess.commands.append(line)
            if verb == "EHLO":
                caps = ["250-peer.example.test", "250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME"]
                if self.starttls and not sess.tls:
                    caps.append("250-STARTTLS")
                if self.auth:
                    caps.append("250-AUTH PLAIN LOGIN")
                caps.append("250 ENHANCEDSTATUSCODES")
                conn.sendall("\r\n".join(caps).encode() + b"\r\n")
            elif verb == "HELO":
                self._send(conn, "250 peer.example.test")
            elif verb == "STARTTLS" and self.starttls and not sess.tls:
                self._send(conn, "220 2.0.0 Ready to start TLS")
                conn = self._server_context().wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
                sess.tls = True
                sess.tls_resumed = conn.session_reused
            elif verb == "AUTH" and self.auth:
                parts = line.split()
                user = password = None
                if len(parts) >= 2 and parts[1].upper() == "PLAIN":
                    blob = parts[2] if len(parts) > 2 else None
                    if blob is None:
                        self._send(conn, "334 ")
                        blob = f.readline(LINE_MAX).decode().strip()
                    fields = base64.b64decode(blob).split(b"\0")
                    if len(fields) == 3:
                        user, password = fields[1].decode(), fields[2].decode()
                elif len(parts) >= 2 and parts[1].upper() == "LOGIN":
                    self._send(conn, "334 VXNlcm5hbWU6")
                    user = base64.b64decode(f.readline(LINE_MAX).strip()).decode()
                    self._send(conn, "334 UGFzc3dvcmQ6")
                    password = base64.b64decode(f.readline(LINE_MAX).strip()).decode()
                if user is not None and self.auth.get(user) == password:
                    authed = True
                    sess.auth_user = user
                    self._send(conn, "235 2.7.0 Authentication successful")
                else:
                    self._send(conn, "535 5.7.8 Error: authentication failed")
            elif verb == "MAIL":
                if self.auth and not authed:
                    self._send(conn, "530 5.7.0 Authentication required")
                    continue
                if self.drop_after == "MAIL":
                    return
                msg = {"mail_from": line[10:].split(">")[0].lstrip("<"), "rcpts": [], "data": b""}
                self._send(conn, self.mail_reply)
            elif verb == "RCPT":
                addr = line[8:].split(">")[0].lstrip("<")
                reply = self.rcpt_replies.get(addr, "250 2.1.5 Ok")
                if msg is not None and reply.startswith("2"):
                    msg["rcpts"].append(addr)
                self._send(conn, reply)
            elif verb == "DATA":
                if self.drop_after == "DATA":
                    return
                self._send(conn, self.data_reply)
                if not self.data_reply.startswith("3"):
                    continue
                data = b""
                ended = False
                for _ in range(1000000):  # bounded: lines per message
                    l = f.readline(LINE_MAX)
                    if l == b".\r\n":
                        ended = True
                        break
                    if not l:
                        break
                    data += l
                if not ended:
                    # Cut off by the end of the stream (or too long): a real server queues nothing.
                    return
                if msg is not None:
                    msg["data"] = data
                    with self.lock:
                        sess.messages.append(msg)
                        self.queued += 1
                        n = self.queued
                    msg = None
                    self._send(conn, self.end_reply.format(n=n))
            elif verb == "RSET":
                msg = None
                self._send(conn, "250 2.0.0 Ok")
            elif verb == "QUIT":
                self._send(conn, "221 2.0.0 Bye")
                return
            else:
                self._send(conn, "502 5.5.2 Error: command not recognized")
