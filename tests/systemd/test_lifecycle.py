"""test_lifecycle.py: issue 11: an instance's socket units stay up and own its listeners, whatever started it.

One container (its own network namespace: only loopback) with a real `meson install`. The
invariant checked after every step: while postfix@dept1 runs, postfix@dept1.socket is active and
systemd lists it on 127.0.0.1:2525; `systemctl start` of a running instance returns 0 and changes
nothing; after `systemctl stop postfix@dept1.service` the socket stays, and the next connection
starts the instance and gets its banner; `postfix stop` / `postmulti -p stop` close the port.
Then inet_interfaces naming an address no interface has (192.0.2.48, TEST-NET-1: configured,
never reached; the container has only loopback) is refused by the generator and at start.
"""
import re

import pytest

from nspawn import Box, installed_box, wait_for

PORT = 2525
FOREIGN = "192.0.2.48"

MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
local     unix  -       n       n       -       -       local
bounce    unix  -       -       n       -       0       bounce
"""
SETTINGS = ["compatibility_level=3.6", "inet_interfaces=127.0.0.1", "inet_protocols=ipv4",
            "mydestination=localhost", "alias_maps=", "alias_database=", "mail_spool_directory=/var/mail"]

# Runs in the container: the banner of one connection, or a client that keeps connecting.
CLIENT = r'''
import socket, sys, time
port = int(sys.argv[2])
if sys.argv[1] == "banner":
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    try:
        with socket.create_connection((host, port), timeout=20) as c:
            c.settimeout(20)
            print(c.recv(200).decode(errors="replace").strip())
    except OSError as e:
        print(f"error: {e}")
elif sys.argv[1] == "hammer":
    ok = bad = 0
    end = time.monotonic() + float(sys.argv[3])
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
                c.settimeout(20)
                if c.recv(200).startswith(b"220"):
                    ok += 1
                else:
                    bad += 1
        except OSError as e:
            bad += 1
            print("error:", e, flush=True)
        time.sleep(0.02)
    print(f"ok={ok} bad={bad}")
'''


class LifecycleBox(Box):
    def banner(self, port=PORT, host="127.0.0.1"):
        return self.out(f"python3 /root/client.py banner {port} {host}").strip()


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with installed_box(tmp_path_factory, "lifecycle", LifecycleBox) as b:
        b.write("/root/client.py", CLIENT)
        b("systemd-sysusers && systemd-tmpfiles --create postfix.conf")
        # The guides' steps: init, create (disabled, master_service_disable = inet), master.cf, enable.
        settings = " ".join(f"'{s}'" for s in SETTINGS)
        b("mkdir -p /etc/postfix && printf '%s\\n' " + settings.replace("=", " = ") + " >/etc/postfix/main.cf")
        b(": >/etc/postfix/master.cf")  # the default instance listens nowhere here
        b("postmulti -e init")
        b(f"postmulti -I postfix-dept1 -e create {settings} myhostname=dept1.example.test")
        b(f"cat >/etc/postfix-dept1/master.cf <<'EOF'\n{MASTER_CF.format(port=PORT)}EOF")
        b("postconf -c /etc/postfix-dept1 -X master_service_disable")
        b("postmulti -i postfix-dept1 -e enable")
        yield b


def assert_running_with_socket(box, unit="postfix@dept1"):
    """The invariant: the service runs and its socket unit is active and holds 127.0.0.1:2525."""
    wait_for(lambda: box.active(f"{unit}.service") == "active", f"{unit}.service to be active")
    assert box.active(f"{unit}.socket") == "active", box.out(f"systemctl status --no-pager {unit}.socket || true")
    out = box.out("systemctl list-sockets --no-legend --no-pager")
    assert re.search(rf"127\.0\.0\.1:{PORT}\s+{re.escape(unit)}\.socket\s+{re.escape(unit)}\.service", out), out


def assert_start_is_idempotent(box, unit="postfix@dept1"):
    pid = box.main_pid(f"{unit}.service")
    proc = box(f"systemctl start {unit}", check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    assert box.main_pid(f"{unit}.service") == pid  # nothing changed
    assert_running_with_socket(box, unit)


def assert_stop_service_then_connect(box, unit="postfix@dept1"):
    box(f"systemctl stop {unit}.service")
    assert box.active(f"{unit}.service") == "inactive"
    assert box.active(f"{unit}.socket") == "active"  # the listeners outlive the service
    assert box.banner().startswith("220 dept1.example.test ESMTP"), "no banner from the socket-activated start"
    assert_running_with_socket(box, unit)


def assert_stopped_and_closed(box, unit="postfix@dept1"):
    for u in (f"{unit}.service", f"{unit}.socket"):
        assert box.active(u) in ("inactive", "failed"), (u, box.active(u))
    assert box.banner().startswith("error:"), "something still answers on the stopped instance's port"
    assert box.active(f"{unit}.service") == "inactive"  # and the connection did not start it


def test_systemctl_start_path(box):
    box("systemctl start postfix@dept1")
    assert_running_with_socket(box)
    assert_start_is_idempotent(box)
    assert box.banner().startswith("220 dept1.example.test ESMTP")
    assert_stop_service_then_connect(box)
    # restart never refuses a connection: clients wait in the socket's backlog.
    proc = box(f"python3 /root/client.py hammer {PORT} 5 & sleep 0.5; "
               "for i in 1 2; do systemctl restart postfix@dept1 || exit 1; sleep 1; done; wait")
    m = re.search(r"ok=(\d+) bad=(\d+)", proc.stdout)
    assert m and int(m.group(1)) > 10 and int(m.group(2)) == 0, proc.stdout
    assert_running_with_socket(box)
    box("systemctl reload postfix@dept1")
    assert_start_is_idempotent(box)
    box("postfix -c /etc/postfix-dept1 reload")
    assert_start_is_idempotent(box)
    box("postfix -c /etc/postfix-dept1 stop")
    assert_stopped_and_closed(box)


def test_postmulti_path(box):
    box("postmulti -i postfix-dept1 -p start")
    assert_running_with_socket(box)
    assert_start_is_idempotent(box)
    assert_stop_service_then_connect(box)
    box("postmulti -i postfix-dept1 -p reload")
    assert_start_is_idempotent(box)
    box("postmulti -i postfix-dept1 -p stop")
    assert_stopped_and_closed(box)


def test_postfix_c_start_path(box):
    box("postfix -c /etc/postfix-dept1 start")
    assert_running_with_socket(box)
    box("systemctl restart postfix@dept1")
    assert_start_is_idempotent(box)
    assert_stop_service_then_connect(box)
    box("postfix -c /etc/postfix-dept1 stop")
    assert_stopped_and_closed(box)
    # postfix stop of a stopped instance says so, as Postfix does.
    proc = box("postfix -c /etc/postfix-dept1 stop", check=False)
    assert proc.returncode == 1 and "not running" in proc.stderr, proc.stderr


def test_target_path(box):
    box("systemctl start postfix.target")
    assert_running_with_socket(box)
    assert_start_is_idempotent(box)
    assert_stop_service_then_connect(box)
    box("systemctl restart postfix.target")
    assert_running_with_socket(box)
    box("systemctl stop postfix.target")
    assert_stopped_and_closed(box)


def test_socket_stop_stops_the_instance(box):
    """The master holds copies of the listeners: stopping the socket alone must stop it too."""
    box("systemctl start postfix@dept1")
    assert_running_with_socket(box)
    box("systemctl stop postfix@dept1.socket")
    assert_stopped_and_closed(box)
    box("systemctl start postfix@dept1")
    assert_running_with_socket(box)
    box("systemctl restart postfix@dept1.socket")  # restarts the master with it
    assert_running_with_socket(box)
    assert_start_is_idempotent(box)
    box("postfix -c /etc/postfix-dept1 stop")
    assert_stopped_and_closed(box)


def test_listeners_added_while_running(box):
    """The trap of today: started while master_service_disable = inet (postmulti's default), then enabled.

    The master used to bind 2525 itself on reload; the socket unit could never start after that and
    `systemctl start` failed with "A dependency job ... failed"."""
    box("postconf -c /etc/postfix-dept1 -e master_service_disable=inet && systemctl daemon-reload")
    box("systemctl start postfix@dept1")
    assert box.active("postfix@dept1.service") == "active"
    assert box.banner().startswith("error:")  # nothing listens: the inet service is disabled
    box("postconf -c /etc/postfix-dept1 -X master_service_disable")
    proc = box("postfix -c /etc/postfix-dept1 reload")
    assert "listeners of postfix@dept1.service changed: restarting" in proc.stderr, proc.stderr
    assert_running_with_socket(box)
    assert_start_is_idempotent(box)
    assert box.banner().startswith("220 dept1.example.test ESMTP")

    # The same change through systemctl only: the master does not take the port from systemd.
    box("postfix -c /etc/postfix-dept1 stop")
    box("postconf -c /etc/postfix-dept1 -e master_service_disable=inet && systemctl daemon-reload")
    box("systemctl start postfix@dept1")
    box("postconf -c /etc/postfix-dept1 -X master_service_disable && systemctl daemon-reload")
    box("systemctl reload postfix@dept1")
    wait_for(lambda: "not started until its socket unit listens" in
             box.out("journalctl -b --no-pager -o cat -u postfix@dept1.service"), "the master's warning")
    assert "master" not in box.out(f"ss -ltnpH 'sport = :{PORT}'")  # the master bound nothing itself
    proc = box("systemctl start postfix@dept1", check=False)
    assert proc.returncode == 0, proc.stderr  # a running instance: start changes nothing, fails nothing
    box("systemctl restart postfix@dept1")
    assert_running_with_socket(box)
    assert box.banner().startswith("220 dept1.example.test ESMTP")
    box("postfix -c /etc/postfix-dept1 stop")
    assert_stopped_and_closed(box)


def test_address_of_an_interface(box):
    """A specific non-loopback address (added to lo of the container's own namespace): its socket waits
    for the network (no FreeBind=), binds it and hands it over; once the address is gone the generator
    skips the instance, naming it."""
    addr = "10.199.0.1"  # only ever on the container's loopback device: nothing leaves the namespace
    box(f"ip addr add {addr}/32 dev lo")
    box(f"postconf -c /etc/postfix-dept1 -e 'inet_interfaces = {addr}' && systemctl daemon-reload")
    sock = box.out("systemctl cat postfix@dept1.socket")
    assert f"ListenStream={addr}:{PORT}" in sock and "After=sysinit.target network-online.target" in sock, sock
    assert "FreeBind" not in sock
    proc = box("systemd-analyze --generators=yes verify postfix@dept1.socket postfix@dept1.service 2>&1",
               check=False)
    findings = [l for l in proc.stdout.splitlines() if not l.startswith("postfix-generator: ")]
    assert proc.returncode == 0 and findings == [], proc.stdout
    box("systemctl start postfix@dept1")
    wait_for(lambda: box.active("postfix@dept1.service") == "active", "postfix@dept1 on " + addr)
    assert box.active("postfix@dept1.socket") == "active"
    assert box.banner(PORT, addr).startswith("220 dept1.example.test ESMTP")
    box("postfix -c /etc/postfix-dept1 stop")
    assert box.banner(PORT, addr).startswith("error:")
    box(f"ip addr del {addr}/32 dev lo && systemctl daemon-reload")
    wait_for(lambda: f"inet_interfaces names {addr}, an address no network interface" in
             box.out("journalctl -b --no-pager -o cat -t postfix-generator"), "the generator's message")


def test_address_on_no_interface(box):
    """inet_interfaces = 192.0.2.48 on a host without it: skipped by the generator, refused at start."""
    box(f"postconf -c /etc/postfix-dept1 -e 'inet_interfaces = {FOREIGN}'")
    box("systemctl daemon-reload")
    why = f"inet_interfaces names {FOREIGN}, an address no network interface of this host has"
    wait_for(lambda: why in box.out("journalctl -b --no-pager -o cat -t postfix-generator"),
             "the generator's message naming the address and the parameter")
    assert "Wants=postfix@dept1.socket" not in box.out("systemctl cat postfix@dept1.service")
    assert box.out("systemctl show -P Wants postfix.target").split().count("postfix@dept1.service") == 0
    proc = box("systemctl start postfix@dept1", check=False)
    assert proc.returncode != 0
    wait_for(lambda: box.active("postfix@dept1.service") == "failed", "postfix@dept1 to fail", 60)
    status = box("systemctl status --no-pager -n 20 postfix@dept1.service", check=False).stdout
    assert why in status, status

    # As at boot (the network may not be up when generators run): the unit is generated; its socket
    # fails on the bind, and the master's unit fails naming the address.
    box("systemctl reset-failed postfix@dept1.service; rm -f /run/postd-generator.stamp; systemctl daemon-reload")
    assert f"ListenStream={FOREIGN}:{PORT}" in box.out("systemctl cat postfix@dept1.socket")
    proc = box("systemctl start postfix@dept1", check=False)
    assert proc.returncode != 0
    wait_for(lambda: box.active("postfix@dept1.service") == "failed", "postfix@dept1 to fail", 60)
    assert box.active("postfix@dept1.socket") == "failed"
    status = box("systemctl status --no-pager -n 20 postfix@dept1.service", check=False).stdout
    assert why in status, status
    sock = box("systemctl status --no-pager -n 20 postfix@dept1.socket", check=False).stdout
    assert "Cannot assign requested address" in sock, sock
