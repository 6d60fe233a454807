"""test_disk_full.py: a queue on a small tmpfs the test mounts: queue_minfree at MAIL FROM (Postfix's 452 4.3.1
and its 1.5 x message_size_limit floor), postdrop's refusal, recovery when space returns, and a message
that meets ENOSPC while cleanup writes it leaves nothing that could ever be delivered."""
import os
import re
import smtplib
import subprocess

import pytest

from conftest import run
from mailinstance import TEST_USER, wait_for

SMTPD_CLEANUP = ("{port}    inet  n       -       n       -       -       smtpd\n"
                 "cleanup   unix  n       -       n       -       0       cleanup\n")
BASE = "mynetworks = 127.0.0.1/32\n"
QUEUE_FS = 4 * 1024 * 1024
MIB = 1024 * 1024


@pytest.fixture
def small_queue(mail_instance):
    """make(main_extra): an instance whose queue_directory is a QUEUE_FS-byte tmpfs mounted for the test,
    started; stopped and unmounted at teardown."""
    made = []

    def make(main_extra, master_cf=SMTPD_CLEANUP):
        inst = mail_instance(master_cf=master_cf, main_extra=BASE + main_extra)
        inst.spool.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={QUEUE_FS},mode=0755", "tmpfs", str(inst.spool)],
                       check=True)
        made.append(inst)
        inst.start()
        return inst

    yield make
    for inst in made:
        inst.stop()
        if subprocess.run(["umount", str(inst.spool)]).returncode != 0:
            subprocess.run(["umount", "-l", str(inst.spool)], check=False)


def avail(inst):
    st = os.statvfs(inst.spool)
    return st.f_bavail * st.f_frsize


def fill(inst, leave):
    """Take the queue file system's free space down to about `leave` bytes with a file of the test."""
    path = inst.spool / "filler"
    size = avail(inst) - leave
    with open(path, "ab") as f:
        f.write(b"\0" * max(size, 0))
    return path


def mail_from(inst, size=None):
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=20) as s:
        s.ehlo("client.example")
        return s.mail("sender@example.org", [f"SIZE={size}"] if size else [])


def send(inst, body):
    """A whole transaction; the reply to the final dot (or to the first refused command)."""
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
        s.ehlo("client.example")
        code, text = s.mail("sender@example.org")
        if code != 250:
            return code, text
        code, text = s.rcpt(f"{TEST_USER}@localhost")
        assert code == 250, text
        return s.data(body)


def incoming(inst):
    """Every name in incoming/, temporary ones included."""
    return sorted(os.listdir(inst.spool / "incoming"))


def test_minfree_refuses_mail_from_and_recovers(small_queue):
    inst = small_queue("queue_minfree = 1048576\nmessage_size_limit = 0\n")
    assert mail_from(inst)[0] == 250
    # SIZE: 1.5 x the announced size must fit above queue_minfree (about 3 MiB are left above it).
    assert mail_from(inst, size=3 * MIB) == (452, b"4.3.1 Insufficient system storage")
    assert mail_from(inst, size=MIB)[0] == 250

    filler = fill(inst, MIB // 2)
    assert mail_from(inst) == (452, b"4.3.1 Insufficient system storage")
    inst.wait_log(r"warning: not enough free space in the mail queue .*: \d+ bytes free, 1048576 required")
    inst.wait_log(r"NOQUEUE: reject: MAIL from .*: 452 4\.3\.1 Insufficient system storage; "
                  r"from=<sender@example\.org>")
    # Space returns: the next transaction goes through, nothing to restart.
    filler.unlink()
    code, text = send(inst, b"Subject: back\r\n\r\nspace is back\r\n")
    assert code == 250, text
    qid = re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode()
    assert incoming(inst) == [qid]


def test_minfree_is_at_least_one_and_a_half_message_size_limit(small_queue):
    # 1.5 x 3 MB is more than the whole queue file system: no mail at all, although queue_minfree is 0.
    inst = small_queue("queue_minfree = 0\nmessage_size_limit = 3000000\n")
    assert mail_from(inst) == (452, b"4.3.1 Insufficient system storage")
    inst.wait_log(r"\d+ bytes free, 4500000 required")


def test_postdrop_refuses_below_minfree(small_queue):
    inst = small_queue("queue_minfree = 1048576\nmessage_size_limit = 0\n")
    filler = fill(inst, MIB // 2)
    r = run("sendmail", "-C", inst.etc, "-f", "alice@example.test", TEST_USER,
            input="Subject: x\n\nhello\n", env=inst.env)
    assert r.returncode == 75, r.stderr  # EX_TEMPFAIL: the caller keeps the message and retries
    assert re.search(r"postdrop: fatal: uid=0: not enough free space in the mail queue \S+: \d+ bytes free, "
                     r"1048576 required .*; try again later", r.stderr), r.stderr
    assert os.listdir(inst.spool / "maildrop") == []
    filler.unlink()
    r = run("sendmail", "-C", inst.etc, "-f", "alice@example.test", TEST_USER,
            input="Subject: x\n\nhello\n", env=inst.env)
    assert r.returncode == 0, r.stderr
    assert len(inst.queue_files("maildrop")) == 1


def test_enospc_while_writing_leaves_nothing_behind(small_queue):
    # No queue_minfree and no size limit: the only guard left is the write itself.
    inst = small_queue("queue_minfree = 0\nmessage_size_limit = 0\n")
    body = b"Subject: too big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (5 * 1024)  # 5 MiB > the file system
    code, text = send(inst, body)
    assert code == 451, (code, text)
    inst.wait_log(r"warning: \w+: write queue file: No space left on device")
    assert incoming(inst) == []  # neither a temporary nor a named file
    # A restart (queue recovery) finds nothing to deliver either, and the next message is queued.
    inst.stop()
    inst.start()
    assert incoming(inst) == [] and inst.queue_files("active") == []
    code, text = send(inst, b"Subject: small\r\n\r\nfits\r\n")
    assert code == 250, text
    wait_for(lambda: len(incoming(inst)) == 1, 10, "the small message in incoming/")
