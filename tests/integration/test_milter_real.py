"""test_milter_real.py: smtpd_milters with real milters from Debian, started by the test on loopback:
OpenDKIM signs mail relayed through postd (the delivered copy verifies with python3-dkim against the key
opendkim-genkey made), and rspamd's milter proxy (its own config, no redis) rejects a test pattern and adds
a header to other mail."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import uuid

import pytest

from conftest import require
import mailinstance
from mailinstance import TEST_USER, free_port, wait_for

try:
    import dkim
except ImportError:  # python3-dkim
    dkim = None

RCPT = f"{TEST_USER}@localhost"
SENDER = "sender@client.example"
STARTED = []

no_daemon_crash = mailinstance.no_crash_guard(STARTED)


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def daemon():
    """Start a foreground daemon; stopped (by its pid) at teardown."""
    procs = []

    def start(argv, port, log, timeout=60):
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)

        def up():
            assert p.poll() is None, f"{argv[0]} exited with {p.returncode}"
            return listening(port)
        wait_for(up, timeout, f"{argv[0]} listening on 127.0.0.1:{port}", interval=0.2)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def make(mail_instance, milter):
    inst = mail_instance(main_extra=f"mynetworks = 127.0.0.0/8\nsmtpd_milters = {milter}\n")
    STARTED.append(inst)
    inst.start()
    return inst


def send(inst, subject, body="hello dkim\r\nsecond line\r\n"):
    msg = (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: {subject}\r\n"
           f"Date: Mon, 7 Dec 2026 04:00:00 +0000\r\n\r\n{body}").encode()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
        s.ehlo("client.example")
        s.sendmail(SENDER, [RCPT], msg)


def delivered(inst, marker, timeout=30):
    def find():
        for m in re.split(r"(?m)^(?=From )", inst.mbox(TEST_USER).decode(errors="replace")):
            if marker in m:
                return m
        return None
    return wait_for(find, timeout, f"a delivered message with {marker!r}")


def txt_record(path):
    """The TXT record text of opendkim-genkey's .txt file: its quoted strings joined."""
    return "".join(re.findall(r'"([^"]*)"', open(path).read())).encode()


def test_opendkim_signs_relayed_mail(mail_instance, daemon, tmp_path):
    require(shutil.which("opendkim") and shutil.which("opendkim-genkey") and dkim,
            "opendkim opendkim-tools python3-dkim")
    d = tmp_path / "dkim"
    d.mkdir()
    subprocess.run(["opendkim-genkey", "-D", str(d), "-d", "client.example", "-s", "sel"], check=True)
    port = free_port()
    conf = d / "opendkim.conf"
    conf.write_text(f"""Syslog no
Domain client.example
KeyFile {d}/sel.private
Selector sel
Mode s
Canonicalization relaxed/simple
Socket inet:{port}@127.0.0.1
PidFile {d}/opendkim.pid
InternalHosts 127.0.0.1
RequireSafeKeys no
SignHeaders From,To,Subject,Date
""")
    with open(d / "opendkim.out", "w") as log:
        daemon(["opendkim", "-f", "-x", str(conf)], port, log)
    inst = make(mail_instance, f"inet:127.0.0.1:{port}")
    token = uuid.uuid4().hex
    send(inst, f"dkim {token}")
    msg = delivered(inst, token)
    assert "DKIM-Signature:" in msg and "d=client.example" in msg and "s=sel" in msg, msg
    raw = msg.split("\n", 1)[1]  # without the mbox From_ line
    raw = raw.replace("\n", "\r\n").encode()
    record = txt_record(d / "sel.txt")

    def dns(name, timeout=5):
        return record if name == b"sel._domainkey.client.example." else None
    assert dkim.verify(raw, dnsfunc=dns)
    # and the check can fail: a changed body does not verify
    assert not dkim.verify(raw.replace(b"hello dkim", b"hello DKIM"), dnsfunc=dns)


RSPAMD_LUA = r"""
rspamd_config.POSTD_TEST_REJECT = {
  callback = function(task)
    local s = task:get_header('Subject')
    return s ~= nil and s:find('rspamd%-reject%-me') ~= nil
  end,
  score = 100.0,
  description = 'the test pattern',
}
rspamd_config.POSTD_TEST_TAG = {
  callback = function(task)
    task:set_milter_reply({add_headers = {['X-Postd-Rspamd'] = 'scanned'}})
    return false
  end,
  score = 0.0,
}
"""


def rspamd_conf(d, port):
    return f"""options {{
  pidfile = "{d}/rspamd.pid";
  dbdir = "{d}/db";
  filters = "";
  dns {{ nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "{d}/rspamd.log"; level = "info"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
lua = "{d}/test.lua";
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{port}";
  milter = yes;
  timeout = 120s;
  count = 1;
  upstream "local" {{ default = yes; self_scan = yes; }}
}}
"""


def test_rspamd_rejects_pattern_and_tags_others(mail_instance, daemon, tmp_path):
    require(shutil.which("rspamd"), "rspamd")
    d = tmp_path / "rspamd"
    (d / "db").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    port = free_port()
    (d / "test.lua").write_text(RSPAMD_LUA)
    (d / "rspamd.conf").write_text(rspamd_conf(d, port))
    with open(d / "rspamd.out", "w") as log:
        daemon(["rspamd", "-f", "-i", "-u", "root", "-g", "root", "-c", str(d / "rspamd.conf")], port, log,
               timeout=120)
    inst = make(mail_instance, f"inet:127.0.0.1:{port}")
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(inst, "please rspamd-reject-me now")
    assert e.value.smtp_code in (550, 554) and e.value.smtp_error.startswith(b"5.7.1"), e.value
    inst.wait_log(r"milter-reject: END-OF-MESSAGE from \S+\[127\.0\.0\.1\]: 5\.7\.1 ")
    token = uuid.uuid4().hex
    send(inst, f"clean {token}")
    msg = delivered(inst, token)
    assert "X-Postd-Rspamd: scanned" in msg.split("\n\n", 1)[0], msg
