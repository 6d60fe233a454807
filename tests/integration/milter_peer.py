"""milter_peer.py: a small milter for the tests, written against the Sendmail milter wire protocol (version 6)
on a loopback TCP port: it records what the MTA sends (macros, envelope, headers, body) and answers as the
test scripts it (reject at a stage, modification requests and a final answer at end of message)."""
import socket
import struct
import threading


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def cstr(*parts):
    return b"".join(p.encode() + b"\0" for p in parts)


class MilterPeer:
    """eom: packets (bytes) sent before the final answer; final: the final answer packet.
    reject_at: a command byte (b"R", b"M", ...) answered with `stage_reply` instead of continue."""

    def __init__(self, eom=(), final=None, reject_at=None, stage_reply=None, actions=0x1FF, protocol=0,
                 hang_at=None, reject_rcpt=None):
        self.eom = list(eom)
        self.final = final or packet(b"c")
        self.reject_at = reject_at
        self.stage_reply = stage_reply or packet(b"r")
        self.actions = actions
        self.protocol = protocol
        self.reject_rcpt = reject_rcpt  # answer RCPT of this address with stage_reply
        self.hang_at = hang_at  # a command byte never answered (the MTA's timeout must end the wait)
        self.seen = []  # (command byte, data) in order, every connection
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def endpoint(self):
        return f"inet:127.0.0.1:{self.port}"

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            while True:
                (length,) = struct.unpack(">I", self._read(conn, 4))
                body = self._read(conn, length)
                cmd, data = body[:1], body[1:]
                with self.lock:
                    self.seen.append((cmd, data))
                reply = self._answer(cmd, data)
                if reply is None:
                    continue
                conn.sendall(reply)
                if cmd == b"Q":
                    break
        except (EOFError, OSError, socket.timeout):
            pass
        finally:
            conn.close()

    def _answer(self, cmd, data=b""):
        if cmd == b"O":
            return packet(b"O", struct.pack(">III", 6, self.actions, self.protocol))
        if cmd in (b"D", b"A", b"Q", b"K") or cmd == self.hang_at:
            return None
        if cmd == self.reject_at:
            return self.stage_reply
        if cmd == b"R" and self.reject_rcpt and data.startswith(f"<{self.reject_rcpt}>".encode()):
            return self.stage_reply
        if cmd == b"E":
            return b"".join(self.eom) + self.final
        return packet(b"c")

    # ---- what the tests look at ----
    def offered_version(self):
        with self.lock:
            return [struct.unpack(">III", d[:12]) for c, d in self.seen if c == b"O"]

    def commands(self):
        with self.lock:
            return [c for c, _ in self.seen]

    def macros(self):
        """Every macro name -> value the MTA sent."""
        out = {}
        with self.lock:
            for c, d in self.seen:
                if c == b"D":
                    parts = d[1:].split(b"\0")
                    for i in range(0, len(parts) - 1, 2):
                        out[parts[i].decode()] = parts[i + 1].decode()
        return out

    def headers(self):
        with self.lock:
            return [tuple(p.decode() for p in d.split(b"\0")[:2]) for c, d in self.seen if c == b"L"]

    def body(self):
        with self.lock:
            return b"".join(d for c, d in self.seen if c == b"B")

    def envelope(self, cmd):
        with self.lock:
            return [d.split(b"\0")[0].decode() for c, d in self.seen if c == cmd]
