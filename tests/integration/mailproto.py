"""mailproto.py: a small Python client of postd's ipc.h frames and of the submission protocol.

Frames (src/lib/proto/ipc.h): u32 big-endian body length, then attributes, each u8 name length, name,
u32 big-endian value length, value. The submission protocol (src/lib/proto/mail_proto.h, part 1):
{req=open} -> {status, queue_id}; {req=envelope, sender, rcpt...}; {req=content, data}...;
{req=end} -> {status=0, queue_id} once the message is durably queued, else {status, dsn, reason}.
"""
import socket
import struct

IPC_BODY_MAX = 4 * 1024 * 1024
IPC_NAME_MAX = 64
CHUNK_MAX = 64 * 1024  # MAIL_PROTO_CHUNK_MAX
DEFAULT_TIMEOUT = 120.0  # MAIL_PROTO_CLEANUP_TIMEOUT_USEC: covers the group commit's fsyncs


def _bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return str(value).encode()
    return str(value).encode("utf-8", "surrogateescape")


def encode(attrs):
    """One frame from a list of (name, value) pairs; values may be str, bytes or int."""
    body = bytearray()
    for name, value in attrs:
        n = name.encode("ascii")
        if not 1 <= len(n) <= IPC_NAME_MAX:
            raise ValueError(f"bad attribute name {name!r}")
        v = _bytes(value)
        body += struct.pack(">B", len(n)) + n + struct.pack(">I", len(v)) + v
    if len(body) > IPC_BODY_MAX:
        raise ValueError("frame body too long")
    return struct.pack(">I", len(body)) + bytes(body)


class Msg:
    """A decoded frame: ordered (name, bytes) pairs; get() returns the first value as str."""

    def __init__(self, attrs):
        self.attrs = attrs

    def get(self, name, default=None):
        for n, v in self.attrs:
            if n == name:
                return v.decode("utf-8", "replace")
        return default

    def getall(self, name):
        return [v.decode("utf-8", "replace") for n, v in self.attrs if n == name]

    def __repr__(self):
        return f"Msg({self.attrs!r})"


def decode_body(body):
    attrs, off = [], 0
    while off < len(body):
        nlen = body[off]
        off += 1
        if nlen == 0 or off + nlen + 4 > len(body):
            raise ValueError("malformed frame")
        name = body[off:off + nlen].decode("ascii")
        off += nlen
        (vlen,) = struct.unpack_from(">I", body, off)
        off += 4
        if off + vlen > len(body):
            raise ValueError("malformed frame")
        attrs.append((name, body[off:off + vlen]))
        off += vlen
    return Msg(attrs)


class Conn:
    """A blocking connection to a postd unix socket speaking ipc.h frames."""

    def __init__(self, path, timeout=DEFAULT_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))

    def send(self, attrs):
        self.sock.sendall(encode(attrs))

    def send_raw(self, data):
        self.sock.sendall(data)

    def _read(self, n):
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("peer closed the connection")
            data += chunk
        return bytes(data)

    def recv(self):
        (length,) = struct.unpack(">I", self._read(4))
        if length > IPC_BODY_MAX:
            raise ValueError("frame too long")
        return decode_body(self._read(length))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def envelope_attrs(sender, rcpts, **attrs):
    """The {req=envelope} attributes; rcpts are addresses or (address, {"orcpt":..,"notify":..})."""
    out = [("req", "envelope"), ("sender", sender)]
    for r in rcpts:
        if isinstance(r, tuple):
            addr, extra = r
            out.append(("rcpt", addr))
            out += [(k, v) for k, v in extra.items()]
        else:
            out.append(("rcpt", r))
    out += [(k, v) for k, v in attrs.items() if v is not None]
    return out


class Submission:
    """One submission, step by step (tests that stop half way use this directly)."""

    def __init__(self, socket_path, origin="smtpd", timeout=DEFAULT_TIMEOUT):
        self.conn = Conn(socket_path, timeout)
        self.conn.send([("req", "open"), ("origin", origin)])
        reply = self.conn.recv()
        self.open_reply = reply
        self.status = int(reply.get("status", "-1"))
        self.queue_id = reply.get("queue_id")

    def envelope(self, sender, rcpts, **attrs):
        self.conn.send(envelope_attrs(sender, rcpts, **attrs))

    def content(self, data):
        data = _bytes(data)
        for off in range(0, len(data), CHUNK_MAX):
            self.conn.send([("req", "content"), ("data", data[off:off + CHUNK_MAX])])

    def end(self):
        self.conn.send([("req", "end")])
        return self.conn.recv()

    def close(self):
        self.conn.close()


def submit_full(socket_path, sender, rcpts, content, origin="smtpd", timeout=DEFAULT_TIMEOUT, **attrs):
    """Submit one message; returns the final reply (Msg), or the open reply when that failed."""
    s = Submission(socket_path, origin, timeout)
    try:
        if s.status != 0:
            return s.open_reply
        s.envelope(sender, rcpts, **attrs)
        s.content(content)
        return s.end()
    finally:
        s.close()


def submit(socket_path, sender, rcpts, content, **attrs):
    """Submit one message: (0, queue_id) when durably queued, else (status, reason)."""
    reply = submit_full(socket_path, sender, rcpts, content, **attrs)
    status = int(reply.get("status", "-1"))
    if status == 0:
        return status, reply.get("queue_id")
    return status, reply.get("reason")
