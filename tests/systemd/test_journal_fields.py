"""test_journal_fields.py: postd's own journal fields, read back from a real journald (systemd in nspawn).

journald keeps a field only if its name is valid (upper case, digits, underscores; no leading
underscore) and its value arrives whole; a capture of the raw datagrams (mailinstance.JournalCapture)
would accept anything. So the fields a log reader filters on (POSTFIX_STATUS, POSTFIX_DSN,
POSTFIX_SERVICE, POSTFIX_QUEUE_ID, PRIORITY, MESSAGE_ID) are checked here as journalctl returns them.
"""
import time

import pytest

from nspawn import Box, installed_box

MASTER_CF = """\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
local     unix  -       n       n       -       -       local
bounce    unix  -       -       n       -       0       bounce
retry     unix  -       -       n       -       -       error
"""
MAIN_CF = """\
compatibility_level = 3.6
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = localhost, $myhostname
myhostname = mx.example.test
alias_maps =
alias_database =
mail_spool_directory = /var/mail
authorized_submit_users = !root, static:anyone
transport_maps = inline:{ {later.example=retry:4.4.1 deliveries paused} }
minimal_backoff_time = 1h
maximal_backoff_time = 2h
always_bcc = archive@example.org
"""
# Inside the container: one message over SMTP; prints the queue ID of the 250 reply.
CLIENT = r'''
import smtplib, sys
with smtplib.SMTP("127.0.0.1", 25, timeout=20) as s:
    s.ehlo("client.example.test")
    s.mail("sender@example.test")
    s.rcpt(sys.argv[1])
    code, msg = s.data(b"Subject: journal fields\r\n\r\nbody\r\n")
    assert code == 250, (code, msg)
    print(msg.decode().rsplit(" ", 1)[1])
'''


class JournalBox(Box):
    def wait_entry(self, pred, what, *args, limit=30):
        """The first journal entry (journalctl args) for which pred holds; journald may lag a little."""
        deadline = time.monotonic() + limit
        while True:
            found = [e for e in self.journal(*args) if pred(e)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                pytest.fail(f"no journal entry for {what} within {limit}s:\n" +
                            self("journalctl -b --no-pager -o short " + " ".join(args) + " | tail -n 40").stdout)
            time.sleep(0.2)


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with installed_box(tmp_path_factory, "journal", JournalBox) as b:
        b.write("/root/client.py", CLIENT)
        b("systemd-sysusers && systemd-tmpfiles --create postfix.conf && useradd -m mailuser"
          " && journalctl --update-catalog && mkdir -p /etc/postfix")
        b.write("/etc/postfix/main.cf", MAIN_CF)
        b.write("/etc/postfix/master.cf", MASTER_CF)
        # The generator reads main.cf at daemon-reload (mail_spool_directory becomes writable to the unit).
        b("systemctl daemon-reload && systemctl start postfix@-.service")
        yield b


UNIT = "-u postfix@-.service"


def test_delivery_fields(box):
    qid = box("python3 /root/client.py mailuser@localhost").stdout.strip()
    e = box.wait_entry(lambda e: "status=sent" in str(e.get("MESSAGE", "")), "the delivery line",
                       UNIT, f"POSTFIX_QUEUE_ID={qid}")
    assert e["MESSAGE"].startswith(f"{qid}: to=<mailuser@localhost>, relay=local"), e
    assert e["POSTFIX_STATUS"] == "sent" and e["POSTFIX_DSN"] == "2.0.0", e
    assert e["POSTFIX_SERVICE"] == "local" and e["SYSLOG_IDENTIFIER"] == "postfix/local", e
    assert e["PRIORITY"] == "6" and e["SYSLOG_FACILITY"] == "2", e
    assert e["POSTFIX_INSTANCE"] == "postfix" and e["POSTFIX_RELAY"] == "local", e
    assert e["_SYSTEMD_UNIT"] == "postfix@-.service", e
    # journalctl matches on the fields themselves: they are indexed, not just present in a blob.
    [m] = [x for x in box.journal(UNIT, f"POSTFIX_QUEUE_ID={qid}", "POSTFIX_STATUS=sent", "POSTFIX_DSN=2.0.0")]
    assert m["__CURSOR"] == e["__CURSOR"]


def test_deferral_fields(box):
    qid = box("python3 /root/client.py someone@later.example").stdout.strip()
    e = box.wait_entry(lambda e: "status=deferred" in str(e.get("MESSAGE", "")), "the deferral line",
                       UNIT, f"POSTFIX_QUEUE_ID={qid}")
    assert e["POSTFIX_STATUS"] == "deferred" and e["POSTFIX_DSN"] == "4.4.1", e
    # The program's name (the master.cf service is "retry"), as in SYSLOG_IDENTIFIER.
    assert e["POSTFIX_SERVICE"] == "error" and e["SYSLOG_IDENTIFIER"] == "postfix/error", e
    assert e["PRIORITY"] == "6", e
    assert "(deliveries paused)" in e["MESSAGE"], e
    assert [x["__CURSOR"] for x in box.journal(UNIT, "POSTFIX_STATUS=deferred", "POSTFIX_DSN=4.4.1")] == \
        [e["__CURSOR"]]


def test_warning_priority_and_service(box):
    e = box.wait_entry(lambda e: "always_bcc is not implemented" in str(e.get("MESSAGE", "")),
                       "the master's warning", UNIT, "PRIORITY=4")
    assert e["POSTFIX_SERVICE"] == "master" and e["SYSLOG_IDENTIFIER"] == "postfix/master", e
    assert e["MESSAGE"].startswith("warning: "), e


def test_refused_submission_fields(box):
    proc = box("printf 'Subject: x\\n\\nbody\\n' | sendmail mailuser", check=False)
    assert proc.returncode == 75, (proc.returncode, proc.stderr)
    e = box.wait_entry(lambda e: "is not allowed to submit mail" in str(e.get("MESSAGE", "")),
                       "sendmail's refusal", "POSTFIX_SERVICE=sendmail")
    assert e["MESSAGE"] == "fatal: User root(0) is not allowed to submit mail", e
    assert e["PRIORITY"] == "2" and e["SYSLOG_IDENTIFIER"] == "postfix/sendmail", e
    # The MESSAGE_ID is one the installed catalog explains.
    text = box(f"journalctl -b --no-pager -x MESSAGE_ID={e['MESSAGE_ID']}").stdout
    assert "is not allowed to submit mail" in text and "authorized_submit_users" in text, text
