"""dovecot.py: a private Dovecot (Debian's dovecot-core + dovecot-lmtpd) for the LMTP tests.

Everything lives under one temporary directory: its own base_dir, a passwd-file userdb, the Maildirs
and the log. It listens for LMTP on a unix socket the test names (inside the instance's spool, so
that next hops like "lmtp:unix:private/dovecot-lmtp" are tested as written) and on 127.0.0.1:PORT.
Nothing of the system's Dovecot is read or touched; the process is stopped at teardown.
"""
import os
import pathlib
import shutil
import socket
import subprocess
import time

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def available():
    return os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/lmtp")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    """users: {name: quota_rule or None}; every user gets the given uid/gid and a Maildir under mail/."""

    def __init__(self, root, unix_socket, users, uid, gid):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.mail = self.root / "mail"
        self.mail.mkdir()
        os.chown(self.mail, uid, gid)
        self.base = self.root / "run"
        self.log = self.root / "dovecot.log"
        self.unix_socket = pathlib.Path(unix_socket)
        self.port = _free_port()
        lines = []
        for name, quota in users.items():
            extra = f"userdb_quota_rule=*:storage={quota}" if quota else ""
            lines.append(f"{name}:{{PLAIN}}secret:{uid}:{gid}::{self.mail}/{name}::{extra}")
        self.users = self.root / "users"
        self.users.write_text("\n".join(lines) + "\n")
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(f"""\
base_dir = {self.base}
state_dir = {self.root}/state
instance_name = postd-test-{os.getpid()}-{self.port}
log_path = {self.log}
info_log_path = {self.log}
protocols = lmtp
ssl = no
listen = 127.0.0.1
first_valid_uid = 1
first_valid_gid = 1
auth_username_format = %Ln
mail_location = maildir:{self.mail}/%u/Maildir
mail_plugins = quota
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {self.users}
}}
userdb {{
  driver = passwd-file
  args = {self.users}
}}
service lmtp {{
  unix_listener {self.unix_socket} {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
""")
        self.proc = None

    def start(self, timeout=20.0):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dovecot exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read().decode(errors='replace')}\n{self.logtext()}")
            if self.unix_socket.exists() and self._tcp_ready():
                return
            time.sleep(0.05)
        raise AssertionError(f"dovecot did not listen within {timeout}s\n{self.logtext()}")

    def _tcp_ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(2)
                return s.recv(100).startswith(b"220")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def logtext(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def messages(self, user):
        """Contents of the user's delivered messages (Maildir new/ and cur/)."""
        found = []
        for sub in ("new", "cur"):
            d = self.mail / user / "Maildir" / sub
            if d.is_dir():
                found += [p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()]
        return found

    def doveadm_fetch(self, user, token):
        """`doveadm fetch` of the messages whose body has token: their text, through Dovecot itself."""
        r = subprocess.run(["doveadm", "-c", str(self.conf), "fetch", "-u", user, "text",
                            "mailbox", "INBOX", "body", token],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout
