"""test_cleanup.py: the cleanup daemon under a real master: submission protocol, headers, group commit, limits."""
import os
import re
import subprocess
import threading

import pytest

from conftest import tool
from mailinstance import wait_for
from mailproto import Conn, Submission, submit, submit_full

# Only cleanup: qmgr is absent on purpose (its notification is best effort).
CLEANUP_ONLY = "cleanup   unix  n       -       n       -       0       cleanup\n"


@pytest.fixture
def inst(mail_instance):
    i = mail_instance(master_cf=CLEANUP_ONLY)
    i.start()
    return i


def sock(inst):
    """The cleanup socket. master.cf's "private" column is "n" here, as in Postfix's own master.cf, so
    the master makes it public/cleanup; mail_proto.h names private/cleanup: accept either."""
    paths = [inst.spool / "private" / "cleanup", inst.spool / "public" / "cleanup"]
    return wait_for(lambda: next((p for p in paths if p.exists()), None), 10, "the cleanup socket")


def incoming_entries(inst):
    """Every name in incoming/, temporary ones included."""
    return sorted(os.listdir(inst.spool / "incoming"))


def dump(inst, qid):
    """Decode incoming/QID with qfile-dump: (envelope lines, content bytes)."""
    r = subprocess.run([tool("qfile-dump"), str(inst.spool / "incoming" / qid)], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    head, content = r.stdout.split(b"content:\n", 1)
    return head.decode().splitlines(), content


REMOTE = dict(client_name="client.example.org", client_address="192.0.2.7", client_port="40000",
              helo_name="helo.example.org", protocol="ESMTP")


def test_submission_is_queued_with_added_headers(inst):
    status, qid = submit(sock(inst), "sender@example.org", ["user@example.test"],
                         b"Subject: test\n\nhello\n", size=21, **REMOTE)
    assert status == 0, qid
    assert re.fullmatch(r"[0-9A-F]{6,21}", qid)
    assert incoming_entries(inst) == [qid]
    env, content = dump(inst, qid)
    assert "sender=sender@example.org" in env
    assert "rcpt=user@example.test orig=user@example.test notify=0 state=pending" in env
    for want in ["attr client_name=client.example.org", "attr client_address=192.0.2.7",
                 "attr helo_name=helo.example.org", "attr protocol=ESMTP", "attr origin_queue=incoming",
                 "attr ready=1", "attr size=21", "attr client_port=40000"]:
        assert want in env, (want, env)
    text = content.decode()
    assert text.startswith(
        "Received: from helo.example.org (client.example.org [192.0.2.7])\n"
        f"\tby mx.example.test (Postfix) with ESMTP id {qid}\n"
        "\tfor <user@example.test>; "), text
    m = re.search(r"\nMessage-ID: (<\d{14}\." + qid + r"@mx\.example\.test>)\n", text)
    assert m, text
    assert re.search(r"\nDate: \w{3}, [ \d]\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.*\)\n", text), text
    # the message's own header stays, the added ones follow it, the body is unchanged
    assert "\nSubject: test\nMessage-ID: <" in text and text.endswith("\n\nhello\n"), text
    inst.wait_log(re.escape(f"cleanup[") + r"\d+\]: " + re.escape(f"{qid}: message-id={m.group(1)}"))


def test_existing_message_id_logged_and_kept(inst):
    msg = b"Message-ID: <abc.123@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nbody\n"
    status, qid = submit(sock(inst), "", ["a@example.test", "b@example.test"], msg, **REMOTE)
    assert status == 0, qid
    env, content = dump(inst, qid)
    assert "sender=" in env
    text = content.decode()
    assert text.count("Message-ID:") == 1 and text.count("Date:") == 1
    # two recipients: no "for" clause
    assert f"with ESMTP id {qid}; " in text
    inst.wait_log(re.escape(f"{qid}: message-id=<abc.123@example.org>"))


def test_local_submission_rewrites_addresses(mail_instance):
    # compatibility_level 0 (a main.cf without it): append_dot_mydomain keeps Postfix's old default, yes.
    inst = mail_instance(master_cf=CLEANUP_ONLY, main_extra="compatibility_level = 0\n")
    inst.start()
    status, qid = submit(sock(inst), "joe", ["bob", "carol@host"], b"To: bob\nSubject: s\n\nhi\n",
                         origin="pickup", uid=0)
    assert status == 0, qid
    env, content = dump(inst, qid)
    assert "sender=joe@mx.example.test" in env
    assert "rcpt=bob@mx.example.test orig=bob notify=0 state=pending" in env
    assert "rcpt=carol@host.example.test orig=carol@host notify=0 state=pending" in env
    text = content.decode()
    assert text.startswith(f"Received: by mx.example.test (Postfix, from userid 0)\n\tid {qid}; "), text
    assert "\nTo: bob@mx.example.test\n" in text
    assert "\nFrom: joe@mx.example.test\n" in text


def test_append_dot_mydomain_off_with_compatibility_level(mail_instance):
    inst = mail_instance(master_cf=CLEANUP_ONLY, main_extra="compatibility_level = 3.6\n")
    inst.start()
    status, qid = submit(sock(inst), "joe@host", ["carol@host"], b"\nhi\n", origin="pickup")
    assert status == 0, qid
    env, _ = dump(inst, qid)
    assert "sender=joe@host" in env
    assert "rcpt=carol@host orig=carol@host notify=0 state=pending" in env


def test_disconnect_mid_message_leaves_nothing(inst):
    s = Submission(sock(inst))
    assert s.status == 0 and s.queue_id
    # the file exists (under its temporary name) while the message is being received
    wait_for(lambda: incoming_entries(inst), 5, "the new queue file")
    s.envelope("sender@example.org", ["user@example.test"], **REMOTE)
    s.content(b"Subject: half\n\nnot finished\n")
    s.close()
    wait_for(lambda: incoming_entries(inst) == [], 10, "incoming/ to be empty")
    inst.wait_log(re.escape(f"{s.queue_id}: client disconnected before the end of the message"))


def test_protocol_violation_drops_client_and_file(inst):
    with Conn(sock(inst), timeout=10) as c:
        c.send([("req", "open"), ("origin", "smtpd")])
        assert c.recv().get("status") == "0"
        c.send([("req", "end")])  # no envelope
        with pytest.raises((ConnectionResetError, OSError)):
            c.recv()
    wait_for(lambda: incoming_entries(inst) == [], 10, "incoming/ to be empty")
    inst.wait_log(r'unexpected request "end"')


def test_concurrent_submissions_all_durable(inst):
    results = [None] * 20

    def one(i):
        try:
            results[i] = submit(sock(inst), f"s{i}@example.org", [f"u{i}@example.test"],
                                f"Subject: {i}\n\nmessage {i}\n".encode() * 20, **REMOTE)
        except Exception as e:  # reported below
            results[i] = (-1, repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not t.is_alive() for t in threads)
    assert all(r is not None and r[0] == 0 for r in results), results
    qids = [r[1] for r in results]
    assert len(set(qids)) == 20
    assert incoming_entries(inst) == sorted(qids)
    for i, qid in enumerate(qids):
        env, content = dump(inst, qid)
        assert f"sender=s{i}@example.org" in env
        assert content.endswith(f"message {i}\n".encode())


def test_message_size_limit(mail_instance):
    inst = mail_instance(master_cf=CLEANUP_ONLY, main_extra="message_size_limit = 10000\n")
    inst.start()
    reply = submit_full(sock(inst), "sender@example.org", ["user@example.test"],
                        b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 300, **REMOTE)
    assert reply.get("status") == "5"
    assert reply.get("dsn") == "5.3.4"
    assert reply.get("reason") == "message file too big"
    assert incoming_entries(inst) == []
    # a message under the limit still goes through
    status, qid = submit(sock(inst), "sender@example.org", ["user@example.test"], b"\nsmall\n", **REMOTE)
    assert status == 0, qid


def test_recipients_ahead_of_the_envelope(inst):
    """{req=rcpt} messages before {req=envelope} (mail_proto.h): all their recipients are queued, in order,
    with the envelope's own after them; an orcpt whose rcpt is not in the same message is refused."""
    s = Submission(sock(inst))
    try:
        assert s.status == 0
        s.conn.send([("req", "rcpt"), ("rcpt", "a@example.test"), ("orcpt", "rfc822;x@example.org"),
                     ("notify", "SUCCESS"), ("rcpt", "b@example.test")])
        s.conn.send([("req", "rcpt"), ("rcpt", "c@example.test"), ("notify", "NEVER")])
        s.envelope("sender@example.org", ["d@example.test"], **REMOTE)
        s.content(b"Subject: split\n\nbody\n")
        reply = s.end()
    finally:
        s.close()
    assert reply.get("status") == "0", reply
    env, _ = dump(inst, reply.get("queue_id"))
    rcpts = [line for line in env if line.startswith(("rcpt=", "orcpt="))]
    assert rcpts == ["rcpt=a@example.test orig=a@example.test notify=2 state=pending",
                     "orcpt=rfc822;x@example.org",
                     "rcpt=b@example.test orig=b@example.test notify=0 state=pending",
                     "rcpt=c@example.test orig=c@example.test notify=1 state=pending",
                     "rcpt=d@example.test orig=d@example.test notify=0 state=pending"], env

    s = Submission(sock(inst))
    try:
        s.conn.send([("req", "rcpt"), ("rcpt", "a@example.test")])
        s.conn.send([("req", "rcpt"), ("orcpt", "rfc822;x@example.org"), ("rcpt", "b@example.test")])
        s.envelope("sender@example.org", [], **REMOTE)
        reply = s.end()
    finally:
        s.close()
    assert (reply.get("status"), reply.get("dsn"), reply.get("reason")) == (
        "5", "5.5.4", "invalid envelope: orcpt before rcpt"), reply
    wait_for(lambda: len(incoming_entries(inst)) == 1, 10, "no second file in incoming/")


def test_hopcount_limit(inst):
    """hopcount_limit (default 50) counts the Received: headers a message arrives with: 49 pass, 50 are a
    mail loop, refused for good with 5.4.6 and no file left."""
    def with_hops(n):
        return b"".join(b"Received: from hop%d.example by hop%d.example; Mon, 1 Jan 2024 00:00:00 +0000\n"
                        % (i, i + 1) for i in range(n)) + b"Subject: hops\n\nbody\n"

    status, qid = submit(sock(inst), "sender@example.org", ["user@example.test"], with_hops(49), **REMOTE)
    assert status == 0, qid
    reply = submit_full(sock(inst), "sender@example.org", ["user@example.test"], with_hops(50), **REMOTE)
    assert (reply.get("status"), reply.get("dsn"), reply.get("reason")) == ("5", "5.4.6", "Error: too many hops")
    assert incoming_entries(inst) == [qid]
    inst.wait_log(r": reject: 50 Received: headers, hopcount_limit is 50: 5\.4\.6 too many hops \(mail loop\); "
                  r"from=<sender@example\.org> nrcpt=1")
