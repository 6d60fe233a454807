"""test_listen_address.py: an inet_interfaces address no interface has is refused, as Postfix's fatal bind.

192.0.2.48 is TEST-NET-1 (RFC 5737): no interface of a test host has it. Nothing is ever sent
there: postd only tries a local bind(), which the kernel refuses with EADDRNOTAVAIL.
"""
import re
import socket
import subprocess

from conftest import BIN
from mailinstance import pid_alive, wait_for

FOREIGN = "192.0.2.48"


def refused(port):
    """True when nothing listens on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def test_postfix_check_names_address_and_parameter(mail_instance):
    inst = mail_instance()
    inst.spool.mkdir()  # (postfix start creates it; check wants it)
    r = inst.postfix("check")
    assert r.returncode == 0, r.stderr  # the control: the same instance on 127.0.0.1 is fine
    inst.postconf(f"inet_interfaces = 127.0.0.1, {FOREIGN}")
    r = inst.postfix("check")
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert any(f"inet_interfaces names {FOREIGN}, an address no network interface of this host has" in e
               and f"fix inet_interfaces in {inst.main_cf}" in e for e in errors), r.stderr
    # One line for the address, however many inet services use inet_interfaces.
    assert sum(FOREIGN in e for e in errors) == 1, errors


def test_master_cf_service_address_names_its_line(mail_instance):
    inst = mail_instance()
    (inst.etc / "master.cf").write_text((inst.etc / "master.cf").read_text() +
                                        f"{FOREIGN}:{inst.port} inet n - n - - smtpd\n")
    r = inst.postfix("check")
    assert r.returncode == 1, r.stderr
    assert re.search(rf'master\.cf line \d+: service "{re.escape(FOREIGN)}:{inst.port}/inet" listens on '
                     rf'{re.escape(FOREIGN)}, an address no network interface', r.stderr), r.stderr


def test_start_refuses_and_master_dies_on_the_bind(mail_instance):
    inst = mail_instance()
    # Once with a usable address: creates the queue, proves the instance itself starts.
    inst.start()
    assert not refused(inst.port)
    inst.stop()
    wait_for(lambda: refused(inst.port), 15, "the port to close after postfix stop")

    inst.postconf(f"inet_interfaces = {FOREIGN}")
    r = inst.postfix("start")
    assert r.returncode == 1, r.stderr
    assert f"inet_interfaces names {FOREIGN}" in r.stderr, r.stderr
    assert "not starting" in r.stderr, r.stderr
    pid = inst.master_pid()
    assert not (pid and pid_alive(pid)), "a master runs although start was refused"

    # The master alone (as Postfix's master, without the postfix command's check) dies on the bind
    # error, with the address and what to fix; it never runs listening nowhere.
    proc = subprocess.run([str(BIN / "master"), "-c", str(inst.etc), "-d"], env={"POSTD_LOG": f"file:{inst.log}"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    m = inst.wait_log(rf"fatal: bind {re.escape(FOREIGN)} port {inst.port}: Cannot assign requested address "
                      r"\(service \"\d+/inet\", master\.cf line 1\): no network interface of this host has this "
                      r"address; fix inet_interfaces")
    assert m
    assert refused(inst.port)


def test_reload_onto_a_foreign_address_keeps_the_instance(mail_instance):
    inst = mail_instance()
    inst.start()
    pid = inst.master_pid()
    inst.postconf(f"inet_interfaces = {FOREIGN}")
    r = inst.postfix("reload")
    assert r.returncode == 1, r.stderr
    assert f"inet_interfaces names {FOREIGN}" in r.stderr and "not reloading" in r.stderr, r.stderr
    # The master got no SIGHUP: it runs and answers on its old address.
    assert inst.master_pid() == pid and pid_alive(pid)
    assert "reload --" not in inst.logtext()
    with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as c:
        c.settimeout(10)
        assert c.recv(200).startswith(b"220 ")
