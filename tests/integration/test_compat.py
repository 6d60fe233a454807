"""test_compat.py: behaviours a Postfix operator's setup relies on: unqualified senders, postconf's
listing options, and roles that keep serving when a lookup table cannot be opened."""
import os
import re
import smtplib
import socket
import subprocess
import uuid

import pytest

from conftest import BIN, run
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, wait_for, wake_pickup

RCPT = f"{TEST_USER}@localhost"
MASTER_CF = DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n"


def instance(mail_instance, extra=""):
    return mail_instance(master_cf=MASTER_CF, main_extra="mynetworks = 127.0.0.1/32\n" + extra)


def banner(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return s.recv(512).decode()


# ---- MAIL FROM:<user> ----

def send_from_alice(inst):
    """A message with the unqualified sender MAIL FROM:<alice>, accepted."""
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.docmd("MAIL FROM:<alice>") == (250, b"2.1.0 Ok")
        assert c.docmd(f"RCPT TO:<{RCPT}>")[0] == 250
        assert c.docmd("DATA")[0] == 354
        c.send(b"Subject: unqualified\r\n\r\nbody\r\n.\r\n")
        assert c.getreply()[0] == 250


def test_unqualified_sender_gets_myorigin(mail_instance):
    inst = instance(mail_instance, "myorigin = origin.example\n")
    inst.start()
    send_from_alice(inst)
    m = inst.wait_log(r"qmgr\[\d+\]: ([0-9A-F]+): from=<alice@origin\.example>, size=")
    wait_for(lambda: b"Return-Path: <alice@origin.example>" in inst.mbox(TEST_USER), 20, "delivery")
    inst.wait_log(m.group(1) + r": to=<" + RCPT + r">, relay=local, .*status=sent")


def test_unqualified_sender_kept_without_append_at_myorigin(mail_instance):
    inst = instance(mail_instance, "append_at_myorigin = no\n")
    inst.start()
    send_from_alice(inst)
    inst.wait_log(r"qmgr\[\d+\]: [0-9A-F]+: from=<alice>, size=")


def test_strict_rfc821_refuses_unqualified_sender(mail_instance):
    inst = instance(mail_instance, "strict_rfc821_envelopes = yes\n")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.docmd("MAIL FROM:<alice>") == (501, b"5.1.7 Bad sender address syntax")


# ---- postconf -m, -l, -a, -A ----

def test_postconf_lists_table_types():
    r = run("postconf", "-m")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["btree", "cidr", "hash", "inline", "lmdb", "pcre", "regexp", "static", "texthash",
                                     "unix"]


def test_postconf_lists_lock_methods():
    r = run("postconf", "-l")
    assert r.returncode == 0 and r.stdout.splitlines() == ["fcntl", "dotlock"]


def test_postconf_sasl_types_are_honest():
    server = run("postconf", "-a")
    client = run("postconf", "-A")
    assert server.returncode == 0 and server.stdout == ""
    assert "no SASL authentication yet" in server.stderr
    assert client.returncode == 0 and client.stdout == ""
    assert "built-in PLAIN and LOGIN" in client.stderr


def test_postconf_listing_modes_exclude_each_other():
    r = run("postconf", "-m", "-l")
    assert r.returncode != 0
    assert "specify only one of" in r.stderr


# ---- tables that cannot be opened ----

def test_missing_access_table_defers_and_recovers(mail_instance):
    """smtpd greets, answers 451 4.3.0 while the .db is missing, and takes mail once postmap ran."""
    inst = instance(mail_instance)
    access = inst.etc / "rcpt_access"
    access.write_text(f"{RCPT} OK\n")
    inst.postconf(f"smtpd_recipient_restrictions = check_recipient_access hash:{access}, "
                  "permit_mynetworks, reject_unauth_destination")
    inst.start()
    assert banner(inst.port).startswith("220 ")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.docmd("MAIL FROM:<a@example.org>")[0] == 250
        assert c.docmd(f"RCPT TO:<{RCPT}>") == (451, f"4.3.0 <{RCPT}>: Temporary lookup failure".encode())
    inst.wait_log(rf"warning: hash:{access} is unavailable: open database {access}\.db: No such file "
                  rf"or directory; .*run \"postmap hash:{access}\"")
    # The listener still works: no crash loop, the same smtpd keeps serving.
    assert "fatal" not in inst.logtext()
    r = run("postmap", f"hash:{access}")
    assert r.returncode == 0, r.stderr

    def accepted():
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
            c.ehlo("client.example")
            c.docmd("MAIL FROM:<a@example.org>")
            return c.docmd(f"RCPT TO:<{RCPT}>")[0] == 250

    wait_for(accepted, 30, "the table to be reopened after postmap", interval=1)
    inst.wait_log(rf"hash:{access} is available again")


def test_missing_alias_database_defers_then_delivers(mail_instance):
    """local defers (4.3.0) while aliases.db is missing; newaliases lets the queued mail through."""
    inst = instance(mail_instance, "local_recipient_maps =\n")
    (inst.etc / "aliases.db").unlink()
    inst.start()
    token = uuid.uuid4().hex
    r = run("sendmail", "-C", inst.etc, "-f", "a@example.org", TEST_USER,
            input=f"Subject: {token}\n\nbody\n", env=inst.env)
    assert r.returncode == 0, r.stderr
    wake_pickup(inst)
    inst.wait_log(rf"to=<{TEST_USER}@mx\.example\.test>, orig_to=<{TEST_USER}>, relay=local, .*dsn=4\.3\.0, "
                  r"status=deferred \(alias database lookup failure\)")
    inst.wait_log(rf"warning: hash:{inst.aliases} is unavailable: .*postalias")
    assert "status=bounced" not in inst.logtext()
    inst.newaliases()
    r = inst.cmd("postqueue", "-f")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: token.encode() in inst.mbox(TEST_USER), 40, "delivery after newaliases", interval=0.5)


def test_postfix_check_reports_missing_table_at_once(mail_instance):
    inst = instance(mail_instance)
    (inst.etc / "aliases.db").unlink()
    r = inst.postfix("check")
    assert r.returncode != 0
    assert (f"alias_maps = hash:{inst.aliases}: open database {inst.aliases}.db: No such file or directory "
            f"(build it with \"postmap hash:{inst.aliases}\", or \"postalias hash:{inst.aliases}\" for an "
            "aliases file)") in r.stderr


# ---- hosts without DNS ----

def start_without_dns(inst, tmp_path):
    """Start the instance in a mount namespace whose resolv.conf names a DNS server that is not
    there (127.0.0.254 refuses port 53): any DNS query fails; /etc/hosts still answers."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.254\noptions timeout:1 attempts:1\n")
    script = (f"mount --make-rprivate / && mount --bind {resolv} /etc/resolv.conf && "
              f"exec {BIN}/postfix -c {inst.etc} start")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, **inst.env), timeout=60)
    assert r.returncode == 0, r.stderr + inst.logtext()


@pytest.mark.parametrize("setting", ["disable_dns_lookups = yes", "smtp_dns_support_level = disabled",
                                     "smtp_host_lookup = native", "smtp_host_lookup = dns, native"])
def test_relayhost_localhost_without_dns_is_a_loop_not_a_dns_error(mail_instance, tmp_path, setting):
    """Seed 001's trap on a host without DNS: relayhost = localhost comes back to this instance."""
    inst = instance(mail_instance)
    inst.postconf(f"relayhost = localhost:{inst.port}")
    with open(inst.main_cf, "a") as f:
        f.write(setting + "\n")
    start_without_dns(inst, tmp_path)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        assert c.sendmail("a@example.org", ["user@elsewhere.example"], b"Subject: loop\r\n\r\nx\r\n") == {}
    m = inst.wait_log(r"(?m)to=<user@elsewhere\.example>, relay=none, .*dsn=(\S+), status=deferred \((.*)\)$")
    assert m.group(1) == "4.3.5", m.group(0)
    assert m.group(2).startswith("mail for localhost loops back to myself"), m.group(0)
    assert "mydestination" in m.group(2)
    assert "Name service error" not in inst.logtext()
    inst.wait_log(r"warning: [0-9A-F]+: next hop localhost resolves to localhost, an address of this instance "
                  r"\(inet_interfaces\): relayhost or transport_maps configuration problem")


def test_dns_setting_typo_is_warned(mail_instance):
    inst = instance(mail_instance, "smtp_dns_support_level = sometimes\n"
                    "relayhost = [127.0.0.1]:9\n")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.sendmail("a@example.org", ["user@elsewhere.example"], b"Subject: x\r\n\r\nx\r\n")
    inst.wait_log(r'smtp\[\d+\]: warning: invalid smtp_dns_support_level value "sometimes": using "enabled"')


# ---- soft_bounce in the delivery agents ----

def test_soft_bounce_keeps_agent_bounces_queued(mail_instance):
    """local's unknown user and the error transport defer with 4.x.y instead of bouncing."""
    inst = instance(mail_instance, "soft_bounce = yes\nlocal_recipient_maps =\n"
                    "transport_maps = inline:{ {gone.example=error:5.1.2 no such domain} }\n")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        assert c.sendmail("a@example.org", ["nosuch@localhost", "x@gone.example"],
                          b"Subject: soft\r\n\r\nx\r\n") == {}
    m = inst.wait_log(r"([0-9A-F]+): to=<nosuch@localhost>, relay=local, .*dsn=4\.1\.1, "
                      r"status=deferred \(unknown user: \"nosuch\"\)")
    qid = m.group(1)
    inst.wait_log(qid + r": to=<x@gone\.example>, relay=none, .*dsn=4\.1\.2, status=deferred \(no such domain\)")
    wait_for(lambda: qid in inst.queue_files("deferred"), 20, "the message in deferred/")
    assert "status=bounced" not in inst.logtext()
    assert inst.queue_files("bounce") == []


def test_without_soft_bounce_the_same_mail_bounces(mail_instance):
    inst = instance(mail_instance, "local_recipient_maps =\n")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        assert c.sendmail("a@example.org", ["nosuch@localhost"], b"Subject: hard\r\n\r\nx\r\n") == {}
    inst.wait_log(r"to=<nosuch@localhost>, relay=local, .*dsn=5\.1\.1, status=bounced \(unknown user: \"nosuch\"\)")


# ---- master.cf -o overrides are checked like main.cf settings ----

OVERRIDE_CF = DEFAULT_MASTER_CF.replace(
    "{port}    inet  n       -       n       -       -       smtpd\n",
    "{port}    inet  n       -       n       -       -       smtpd\n"
    "  -o smtpd_tls_wrapermode=yes\n"
    "  -o always_bcc=archive@example.org\n"
    "  -o smtpd_client_restrictions=$mua_client_restrictions\n")


def test_master_cf_overrides_checked_like_main_cf(mail_instance):
    inst = mail_instance(master_cf=OVERRIDE_CF, main_extra="mua_client_restrictions = permit_mynetworks, reject\n")
    where = rf"{inst.etc}/master\.cf line 1 \(service {inst.port}/inet\)"
    typo = where + r": -o smtpd_tls_wrapermode=yes: unused parameter: neither Postfix nor postd knows it \(a typo\?\)"
    inert = (where + r": -o always_bcc=archive@example\.org: parameter not implemented by postd yet: "
             r"the setting has no effect")
    inst.start()
    inst.wait_log(r"master\[\d+\]: warning: " + typo)
    inst.wait_log(r"master\[\d+\]: warning: " + inert)
    r = inst.postfix("check")
    assert r.returncode == 0, r.stderr
    assert re.search("warning: " + typo, r.stderr), r.stderr
    assert re.search("warning: " + inert, r.stderr), r.stderr
    # A user-defined parameter named by a $reference in an override is not "unused".
    assert "mua_client_restrictions" not in r.stderr + inst.logtext()
