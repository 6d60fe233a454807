"""test_header_checks.py: cleanup's content inspection with real smtplib clients: header_checks (pcre:
and regexp:), mime_header_checks, nested_header_checks and body_checks with Postfix's actions, the
body_checks_size_limit, a 20 MiB message streamed through body_checks (cleanup's peak RSS measured), and
lmdb: tables built by postmap and used by a running instance."""
import re
import smtplib
import subprocess

import pytest

from conftest import run, tool
import mailinstance
from mailinstance import TEST_USER, wait_for

RCPT = f"{TEST_USER}@localhost"
SENDER = "sender@client.example"
# A recipient that disappears without a trace: the discard transport (header REDIRECT/BCC tests).
SINK = "sink@discard.test"

HEADER_PCRE = r"""# header_checks as an operator writes them (pcre:)
/^Subject:\s+reject me\b/            REJECT Go away
/^Subject:\s+reject code\b/          REJECT 5.7.9 Policy says no
/^Subject:\s+discard me\b/           DISCARD spam trap
/^Subject:\s+warn me\b/              WARN looks odd
/^Subject:\s+hold me\b/              HOLD held for review
/^X-Internal:/                       IGNORE
/^Subject:\s+redirect me\b/          REDIRECT postd-test@localhost
/^Subject:\s+bcc me\b/               BCC postd-test@localhost
/^Subject:\s+prepend me\b/           PREPEND X-Tag: prepended
/^Subject:\s+replace (\w+)\b/        REPLACE Subject: replaced $1
/^Subject:\s+filter me\b/            FILTER smtp:[127.0.0.1]:10025
/^X-Hold-Too:/                       HOLD
/^Subject:\s+dunno\b/                DUNNO
/^Subject:\s+bad action\b/           FROBNICATE now
/^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\n\tby mx\.example\.test / PREPEND X-Received-Seen: yes
"""

BODY_REGEXP = r"""# body_checks (regexp:)
/^reject this line$/                 REJECT body says no
/^discard this line$/                DISCARD
/^warn this line$/                   WARN body odd
/^ignore this line$/                 IGNORE
/^replace this line$/                REPLACE replaced body line
/^prepend this line$/                PREPEND prepended body line
/^redirect this line$/               REDIRECT postd-test@localhost
/^bcc this line$/                    BCC postd-test@localhost
/^hold this line$/                   HOLD
/^far away bad word$/                REJECT found beyond the limit
"""


# Instances of the running test: none of their daemons may crash (smtpd would still answer 250 for a
# message that a dying cleanup had committed, so the client's answer alone would not show it).
STARTED = []

no_daemon_crash = mailinstance.no_crash_guard(STARTED)


def make(mail_instance, extra="", files=None):
    inst = mail_instance(main_extra="mynetworks = 127.0.0.0/8\n"
                                    "transport_maps = inline:{discard.test=discard:}\n")
    STARTED.append(inst)
    for name, text in (files or {}).items():
        (inst.etc / name).write_text(text)
    inst.postconf(*[line.replace("{etc}", str(inst.etc)) for line in extra.splitlines() if line])
    inst.start()
    return inst


def send(inst, headers, body="hello\r\n", rcpts=(RCPT,)):
    msg = ("".join(f"{h}\r\n" for h in headers) + "\r\n" + body).encode()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example")
        s.sendmail(SENDER, list(rcpts), msg)


def send_rejected(inst, headers, body="hello\r\n"):
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(inst, headers, body)
    return e.value.smtp_code, e.value.smtp_error.decode()


def delivered(inst, marker, timeout=20):
    """The mbox text of the delivered message that contains marker (bounded wait)."""
    def find():
        for m in re.split(r"(?m)^From ", inst.mbox(TEST_USER).decode(errors="replace")):
            if marker in m:
                return m
        return None
    return wait_for(find, timeout, f"a delivered message with {marker!r}")


def queued_id(inst, subject):
    return inst.wait_log(r"cleanup\[\d+\]: (\w+): \w+: header Subject: %s " % re.escape(subject)).group(1)


def dump(path):
    r = subprocess.run([tool("qfile-dump"), str(path)], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode(errors="replace")


@pytest.fixture
def header_inst(mail_instance):
    return make(mail_instance, "header_checks = pcre:{etc}/header_checks\n", {"header_checks": HEADER_PCRE})


def test_header_reject_and_discard(header_inst):
    inst = header_inst
    code, text = send_rejected(inst, ["Subject: reject me now"])
    assert (code, text) == (550, "5.7.1 Go away")
    inst.wait_log(r"cleanup\[\d+\]: \w+: reject: header Subject: reject me now from unknown\[127\.0\.0\.1\]; "
                  r"from=<sender@client\.example> to=<postd-test@localhost> proto=ESMTP "
                  r"helo=<client\.example>: 5\.7\.1 Go away")
    code, text = send_rejected(inst, ["Subject: reject code"])
    assert (code, text) == (550, "5.7.9 Policy says no")

    send(inst, ["Subject: discard me", "X-Marker: discarded"])  # 250, as Postfix answers
    qid = inst.wait_log(r"cleanup\[\d+\]: (\w+): discard: header Subject: discard me from .*: spam trap").group(1)
    send(inst, ["Subject: dunno", "X-Marker: after-discard"])
    delivered(inst, "after-discard")
    assert "discarded" not in inst.mbox(TEST_USER).decode()
    assert not re.search(r"%s: (from=|to=)" % qid, inst.logtext())
    # Nothing of the rejected or discarded messages stays in the queue.
    assert not inst.queue_files("incoming") and not inst.queue_files("hold")


def test_header_warn_ignore_prepend_replace(header_inst):
    inst = header_inst
    send(inst, ["Subject: warn me", "X-Internal: secret", "X-Marker: m1"])
    inst.wait_log(r"\w+: warning: header Subject: warn me from unknown\[127\.0\.0\.1\]; .*: looks odd")
    m = delivered(inst, "X-Marker: m1")
    assert "Subject: warn me" in m and "X-Internal" not in m and "secret" not in m
    # The Received: header of mail from the network is a header like the others (smtpd's, in Postfix).
    assert "\nX-Received-Seen: yes\nReceived: from client.example (unknown [127.0.0.1])\n" in m

    send(inst, ["Subject: prepend me", "X-Marker: m2"])
    m = delivered(inst, "X-Marker: m2")
    assert "X-Tag: prepended\nSubject: prepend me\n" in m
    inst.wait_log(r"\w+: prepend: header Subject: prepend me from .*: X-Tag: prepended")

    send(inst, ["Subject: replace this", "X-Marker: m3"])
    m = delivered(inst, "X-Marker: m3")
    assert "Subject: replaced this\n" in m and "Subject: replace this" not in m
    inst.wait_log(r"\w+: replace: header Subject: replace this from .*: Subject: replaced this")

    # A rule with an unknown action is warned about and ignored: the message goes through.
    send(inst, ["Subject: bad action", "X-Marker: m4"])
    delivered(inst, "X-Marker: m4")
    inst.wait_log(r"warning: \w+: header_checks: bad action \"FROBNICATE now\": unknown action")


def test_header_redirect_and_bcc(header_inst):
    inst = header_inst
    send(inst, ["Subject: redirect me", "X-Marker: r1"], rcpts=(SINK,))
    delivered(inst, "X-Marker: r1")
    inst.wait_log(r"\w+: redirect: header Subject: redirect me from .* to=<sink@discard\.test> .*: "
                  r"postd-test@localhost")
    send(inst, ["Subject: bcc me", "X-Marker: b1"], rcpts=(SINK,))
    delivered(inst, "X-Marker: b1")
    qid = queued_id(inst, "bcc me")
    # The original recipient still gets it (the discard transport), the BCC address as well.
    inst.wait_log(r"%s: to=<sink@discard\.test>, relay=none, .*status=sent" % qid)
    inst.wait_log(r"%s: to=<postd-test@localhost>, .*status=sent" % qid)
    # The redirected message never reached its original recipient.
    rid = queued_id(inst, "redirect me")
    assert not re.search(r"%s: to=<sink@discard\.test>" % rid, inst.logtext())


def test_header_hold_and_filter(header_inst):
    inst = header_inst
    send(inst, ["Subject: hold me", "X-Marker: h1"])
    qid = inst.wait_log(r"cleanup\[\d+\]: (\w+): hold: header Subject: hold me from .*: held for review").group(1)
    assert inst.queue_files("hold") == [qid]
    # FILTER is recorded in the queue file for the queue manager (held too, so that it can be read here).
    send(inst, ["Subject: filter me", "X-Hold-Too: yes"])
    fid = inst.wait_log(r"(\w+): filter: header Subject: filter me from .*: smtp:\[127\.0\.0\.1\]:10025").group(1)
    wait_for(lambda: fid in inst.queue_files("hold"), 10, "the filtered message in hold/")
    assert "attr filter=smtp:[127.0.0.1]:10025" in dump(inst.spool / "hold" / fid)
    # Held mail is not delivered until postsuper -H releases it.
    assert "X-Marker: h1" not in inst.mbox(TEST_USER).decode()
    r = inst.cmd("postsuper", "-H", qid)
    assert r.returncode == 0, r.stderr
    assert qid in inst.queue_files("deferred")
    r = inst.cmd("postqueue", "-f")  # as an operator does after a release: deliver now
    assert r.returncode == 0, r.stderr
    delivered(inst, "X-Marker: h1", timeout=30)


def test_header_checks_regexp_type(mail_instance):
    inst = make(mail_instance, "header_checks = regexp:{etc}/hc\n", {"hc": "/^Subject: no entry/ REJECT regexp says no\n"})
    assert send_rejected(inst, ["Subject: no entry here"]) == (550, "5.7.1 regexp says no")
    send(inst, ["Subject: fine", "X-Marker: ok"])
    delivered(inst, "X-Marker: ok")


def test_body_actions(mail_instance):
    inst = make(mail_instance, "body_checks = regexp:{etc}/body_checks\n", {"body_checks": BODY_REGEXP})
    code, text = send_rejected(inst, ["Subject: b1"], "first\r\nreject this line\r\nlast\r\n")
    assert (code, text) == (550, "5.7.1 body says no")
    inst.wait_log(r"\w+: reject: body reject this line from unknown\[127\.0\.0\.1\]; .*: 5\.7\.1 body says no")

    send(inst, ["Subject: b2", "X-Marker: body-discard"], "discard this line\r\n")
    inst.wait_log(r"\w+: discard: body discard this line from ")

    body = ("warn this line\r\nignore this line\r\nreplace this line\r\nprepend this line\r\n"
            "X-Marker: body-edits\r\n")
    send(inst, ["Subject: b3"], body)
    m = delivered(inst, "X-Marker: body-edits")
    assert "\nwarn this line\nreplaced body line\nprepended body line\nprepend this line\n" in m
    assert "ignore this line" not in m and "replace this line" not in m
    inst.wait_log(r"\w+: warning: body warn this line from .*: body odd")

    send(inst, ["Subject: b4"], "redirect this line\r\nX-Marker: body-redirect\r\n", rcpts=(SINK,))
    delivered(inst, "X-Marker: body-redirect")
    rid = inst.wait_log(r"(\w+): redirect: body redirect this line from .*: postd-test@localhost").group(1)
    assert not re.search(r"%s: to=<sink@discard\.test>" % rid, inst.logtext())
    send(inst, ["Subject: b5"], "bcc this line\r\nX-Marker: body-bcc\r\n", rcpts=(SINK,))
    delivered(inst, "X-Marker: body-bcc")
    bid = inst.wait_log(r"(\w+): bcc: body bcc this line from .*: postd-test@localhost").group(1)
    inst.wait_log(r"%s: to=<sink@discard\.test>, relay=none, .*status=sent" % bid)
    send(inst, ["Subject: b6"], "hold this line\r\n")
    hid = inst.wait_log(r"(\w+): hold: body hold this line from ").group(1)
    wait_for(lambda: hid in inst.queue_files("hold"), 10, "the held message in hold/")
    assert "body-discard" not in inst.mbox(TEST_USER).decode()


def test_body_checks_size_limit(mail_instance):
    inst = make(mail_instance, "body_checks = regexp:{etc}/body_checks\nbody_checks_size_limit = 2000\n",
                {"body_checks": BODY_REGEXP})
    filler = "".join(f"filler line {i:04d} of text to pass the limit\r\n" for i in range(100))  # ~4.5 KB
    # Beyond the limit the rule is not applied: accepted and delivered.
    send(inst, ["Subject: late"], filler + "far away bad word\r\nX-Marker: late\r\n")
    assert "far away bad word" in delivered(inst, "X-Marker: late")
    # The same line within the limit is rejected.
    assert send_rejected(inst, ["Subject: early"], "far away bad word\r\n" + filler) == \
        (550, "5.7.1 found beyond the limit")


MIME = """MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary="outer-b"\r
\r
preamble\r
--outer-b\r
Content-Type: text/plain\r
\r
the text part {marker}\r
--outer-b\r
Content-Type: application/octet-stream;\r
 name="evil.exe"\r
Content-Disposition: attachment; filename="{attachment}"\r
\r
AAAA\r
--outer-b\r
Content-Type: message/rfc822\r
\r
Subject: {nested}\r
From: someone@example.org\r
\r
the attached message\r
--outer-b--\r
epilogue\r
"""


def mime(marker, attachment="notes.txt", nested="nested ok"):
    text = MIME.format(marker=marker, attachment=attachment, nested=nested)
    head, body = text.split("\r\n\r\n", 1)
    return head.split("\r\n"), body


def test_mime_and_nested_header_checks(mail_instance):
    files = {"mime": "/^Content-Disposition:.*filename=\"?[^\"]*\\.exe/ REJECT no executables\n",
             "nested": "/^Subject: nested bad/ REJECT nested says no\n",
             "hc": "/^Subject: top only/ WARN top header\n"}
    inst = make(mail_instance, "header_checks = pcre:{etc}/hc\nmime_header_checks = pcre:{etc}/mime\n"
                               "nested_header_checks = pcre:{etc}/nested\n", files)
    h, b = mime("m1", attachment="evil.exe")
    assert send_rejected(inst, ["Subject: with attachment"] + h, b) == (550, "5.7.1 no executables")
    inst.wait_log(r"reject: header Content-Disposition: attachment; filename=\"evil\.exe\" from ")
    h, b = mime("m2", nested="nested bad one")
    assert send_rejected(inst, ["Subject: with message"] + h, b) == (550, "5.7.1 nested says no")
    # The same header at the top is not a nested header; a nested one is not a top header.
    send(inst, ["Subject: nested bad, but at the top", "X-Marker: top"])
    delivered(inst, "X-Marker: top")
    h, b = mime("m3", nested="top only")
    send(inst, ["Subject: clean"] + h, b)
    assert "the text part m3" in delivered(inst, "the text part m3")
    assert not re.search(r"warning: header Subject: top only", inst.logtext())


def test_disable_mime_input_processing(mail_instance):
    files = {"mime": "/^Content-Disposition:.*\\.exe/ REJECT no executables\n"}
    inst = make(mail_instance, "mime_header_checks = pcre:{etc}/mime\ndisable_mime_input_processing = yes\n",
                files)
    h, b = mime("plain", attachment="evil.exe")
    send(inst, ["Subject: not parsed"] + h, b)
    assert "evil.exe" in delivered(inst, "the text part plain")


def cleanup_peak_rss_kib(inst):
    pids = inst.daemon_pids("cleanup")
    assert pids, "no cleanup process"
    peaks = []
    for pid in pids:
        status = open(f"/proc/{pid}/status").read()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)))
    return max(peaks)


def test_20mib_message_streams_through_body_checks(mail_instance, capsys):
    inst = make(mail_instance, "body_checks = pcre:{etc}/bc\nmessage_size_limit = 40000000\n",
                {"bc": "/^never matches (\\d+)$/ REJECT $1\n/^far away bad word$/ REJECT late\n"})
    line = "x" * 76 + "\r\n"
    body = line * (20 * 1024 * 1024 // len(line)) + "far away bad word\r\nX-Marker: big\r\n"
    send(inst, ["Subject: big"], body)
    qid = inst.wait_log(r"cleanup\[\d+\]: (\w+): message-id=").group(1)
    inst.wait_log(r"%s: to=<postd-test@localhost>, .*status=sent" % qid, timeout=120)
    peak = cleanup_peak_rss_kib(inst)
    with capsys.disabled():
        print(f"\n[figure] cleanup peak RSS (VmHWM) after a 20 MiB message with body_checks: {peak} KiB")
    # Streaming: the process never held the message (20 MiB) nor a large part of it.
    assert peak < 16 * 1024, peak


def test_20mib_message_fully_inspected_memory_bounded(mail_instance, capsys):
    """body_checks_size_limit above the message size: every line is looked at, and the envelope still
    waits for at most CLEANUP_ENVELOPE_HOLD_MAX (1 MiB) of body, so cleanup never holds the message."""
    inst = make(mail_instance, "body_checks = pcre:{etc}/bc\nmessage_size_limit = 40000000\n"
                               "body_checks_size_limit = 100000000\n",
                {"bc": "/^far away bad word$/ REJECT seen at the very end\n"})
    line = "y" * 76 + "\r\n"
    body = line * (20 * 1024 * 1024 // len(line)) + "far away bad word\r\n"
    assert send_rejected(inst, ["Subject: big2"], body) == (550, "5.7.1 seen at the very end")
    peak = cleanup_peak_rss_kib(inst)
    with capsys.disabled():
        print(f"\n[figure] cleanup peak RSS, 20 MiB message, every line inspected: {peak} KiB")
    assert peak < 16 * 1024, peak
    assert not inst.queue_files("incoming")


def test_lmdb_tables_with_postmap(mail_instance):
    inst = mail_instance(main_extra="mynetworks = 127.0.0.0/8\n")
    STARTED.append(inst)
    transport = inst.etc / "transport"
    transport.write_text("lmdb.test discard:\n")
    r = inst.cmd("postmap", f"lmdb:{transport}")
    assert r.returncode == 0, r.stderr
    assert (inst.etc / "transport.lmdb").exists() and not (inst.etc / "transport.db").exists()
    assert inst.cmd("postmap", "-q", "LMDB.test", f"lmdb:{transport}").stdout == "discard:\n"
    # -i adds, -s lists, -d deletes: each rewrites FILE.lmdb as a whole (never in place).
    assert inst.cmd("postmap", "-i", f"lmdb:{transport}", input="other.test error:\n").returncode == 0
    assert sorted(inst.cmd("postmap", "-s", f"lmdb:{transport}").stdout.splitlines()) == \
        ["lmdb.test\tdiscard:", "other.test\terror:"]
    assert inst.cmd("postmap", "-d", "other.test", f"lmdb:{transport}").returncode == 0
    assert inst.cmd("postmap", "-q", "other.test", f"lmdb:{transport}").returncode == 1
    access = inst.etc / "access"
    access.write_text("blocked@lmdb.test REJECT lmdb says no\n")
    assert inst.cmd("postmap", f"lmdb:{access}").returncode == 0
    inst.postconf(f"transport_maps = lmdb:{transport}",
                  f"smtpd_recipient_restrictions = check_recipient_access lmdb:{access}, "
                  "permit_mynetworks, reject_unauth_destination")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example")
        refused = s.sendmail(SENDER, ["blocked@lmdb.test", "ok@lmdb.test"], b"Subject: lmdb\r\n\r\nhi\r\n")
    assert refused == {"blocked@lmdb.test": (554, b"5.7.1 <blocked@lmdb.test>: Recipient address rejected: "
                                                  b"lmdb says no")}
    inst.wait_log(r"to=<ok@lmdb\.test>, relay=none, .*status=sent")
    # Rebuilding the table reaches the running instance without a reload.
    access.write_text("other@lmdb.test REJECT\n")
    assert inst.cmd("postmap", f"lmdb:{access}").returncode == 0
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example")
        assert s.sendmail(SENDER, ["blocked@lmdb.test"], b"Subject: lmdb2\r\n\r\nhi\r\n") == {}


def test_postconf_m_lists_pcre_and_lmdb():
    types = run("postconf", "-m").stdout.split()
    assert "pcre" in types and "lmdb" in types
    assert types == sorted(types)


def test_missing_table_defers_and_postfix_check_names_it(mail_instance):
    inst = mail_instance(main_extra="mynetworks = 127.0.0.0/8\n")
    STARTED.append(inst)
    inst.postconf(f"header_checks = pcre:{inst.etc}/missing")
    r = inst.postfix("check")
    assert f"{inst.etc}/missing" in r.stderr and "header_checks" in r.stderr, r.stderr
    inst.postconf(f"body_checks = pcre:{inst.etc}/missing", "header_checks =")
    inst.start()
    code, text = send_rejected(inst, ["Subject: any"])
    assert (code, text) == (451, "4.3.0 Error: temporary lookup failure in content checks")
    # Once the table exists, mail flows (the stand-in retries the open).
    (inst.etc / "missing").write_text("/^nothing here$/ REJECT\n")
    def accepted():
        try:
            send(inst, ["Subject: later", "X-Marker: fixed"])
            return True
        except smtplib.SMTPDataError:
            return False
    wait_for(accepted, 20, "the message accepted once the table exists", interval=1)
    delivered(inst, "X-Marker: fixed")


def test_local_submission_rejected_bounces_to_sender(header_inst):
    """sendmail -> pickup -> cleanup: a REJECT returns the message to its sender (Postfix's behaviour)."""
    inst = header_inst
    msg = "Subject: reject me please\nX-Marker: local-reject\n\nlocal body\n"
    r = run("sendmail", "-C", inst.etc, "-f", RCPT, SINK, input=msg, env=inst.env)
    assert r.returncode == 0, r.stderr
    qid = inst.wait_log(r"cleanup\[\d+\]: (\w+): reject: header Subject: reject me please from local; "
                        r"from=<postd-test@localhost> to=<sink@discard\.test>: 5\.7\.1 Go away").group(1)
    # The sender's notice names the recipient and the reason, and includes the message.
    notice = delivered(inst, "X-Marker: local-reject", timeout=30)
    assert "sink@discard.test" in notice and "Go away" in notice and "5.7.1" in notice
    # The recipient never got it, and nothing is left behind: maildrop, queue and bounce/ are empty.
    assert not re.search(r"%s: to=<sink@discard\.test>, relay=none, .*status=sent" % qid, inst.logtext())
    wait_for(lambda: not inst.queue_files("maildrop") and not inst.queue_files("incoming")
             and not inst.queue_files("active") and not inst.queue_files("bounce")
             and not inst.queue_files("saved"), 20, "the queue to drain")
