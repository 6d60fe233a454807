"""test_scenario.py: issue 5's scenario in a real systemd: meson install, postmulti, three instances, mail, journal.

One container for the module; the tests run in file order and build on each other (the state of a
mail system after each step), as an administrator's session would. The container has its own
network namespace (only loopback), so ports 25, 2525 and 10025 never touch the host's.
"""
import re
import time

import pytest

from nspawn import installed_box, wait_for

# Must equal src/lib/util/catalog.h and the "-- ID" lines of units/postfix.catalog.
CATALOG_INET_DISABLED = "9dfda8f456ee4f09b81dcfd031582f6b"
PORTS = {"dept1": 2525, "dept2": 10025, "-": 25}
USER = "mailuser"

MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
local     unix  -       n       n       -       -       local
bounce    unix  -       -       n       -       0       bounce
"""
# Settings of every instance: loopback IPv4 only, local delivery to /var/mail, fast retries.
MAIN_SETTINGS = ["compatibility_level=3.6", "inet_interfaces=127.0.0.1", "inet_protocols=ipv4",
                 "mydestination=localhost,$myhostname", "alias_maps=", "alias_database=",
                 "mail_spool_directory=/var/mail"]

# Runs inside the container: a client that sends one message, or that keeps connecting and counts failures.
CLIENT = r'''
import smtplib, socket, sys, time
if sys.argv[1] == "send":
    port, subject = int(sys.argv[2]), sys.argv[3]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("sender@example.test", ["mailuser@localhost"],
                   f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")
    print("sent")
elif sys.argv[1] == "hammer":
    port, seconds = int(sys.argv[2]), float(sys.argv[3])
    ok = bad = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.settimeout(5)
                line = c.recv(200)
                if line.startswith(b"220"):
                    ok += 1
                else:
                    bad += 1
        except OSError as e:
            bad += 1
            print("error:", e, flush=True)
        time.sleep(0.02)
    print(f"ok={ok} bad={bad}")
'''


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    t0 = time.monotonic()
    with installed_box(tmp_path_factory, "scenario") as b:
        b.write("/root/client.py", CLIENT)
        b("systemd-sysusers && systemd-tmpfiles --create postfix.conf && useradd -m " + USER +
          " && journalctl --update-catalog")
        yield b
    print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in b.times.items()) +
          f", module {time.monotonic() - t0:.2f}s")


def postmulti(box, *args, check=True):
    return box("postmulti " + " ".join(args), check=check)


def test_init_create_enable(box):
    settings = " ".join(f"'{s}'" for s in MAIN_SETTINGS)
    box("mkdir -p /etc/postfix && printf '%s\\n' " + settings.replace("=", " = ") +
        " >/etc/postfix/main.cf")
    box(f"cat >/etc/postfix/master.cf <<'EOF'\n{MASTER_CF.format(port='smtp')}EOF")
    postmulti(box, "-e init")
    assert "multi_instance_enable = yes" in box.out("cat /etc/postfix/main.cf")
    for name in ("dept1", "dept2", "dept3", "dept4", "dept5"):
        postmulti(box, f"-I postfix-{name} -e create", settings, f"myhostname={name}.example.test")
        port = PORTS.get(name, 10100 + int(name[-1]))
        box(f"cat >/etc/postfix-{name}/master.cf <<'EOF'\n{MASTER_CF.format(port=port)}EOF")
    # Created disabled, inet services off: the trap postmulti sets on purpose.
    assert "master_service_disable = inet" in box.out("cat /etc/postfix-dept1/main.cf")
    # dept3 stays disabled (and keeps master_service_disable = inet); dept4/dept5 get broken configs.
    for name in ("dept1", "dept2", "dept4", "dept5"):
        box(f"sed -i '/^master_service_disable/d' /etc/postfix-{name}/main.cf")
    box("echo 'this line has no equals sign' >>/etc/postfix-dept4/main.cf")
    box("printf 'alias_maps = sdbm:/etc/postfix-dept5/aliases\\n' >>/etc/postfix-dept5/main.cf")
    for name in ("dept1", "dept2", "dept4", "dept5"):
        postmulti(box, f"-i postfix-{name} -e enable")
    listing = box.out("postmulti -l -a")
    assert re.search(r"^-\s+-\s+y\s+/etc/postfix$", listing, re.M), listing
    assert re.search(r"^postfix-dept1\s+-\s+y\s+/etc/postfix-dept1$", listing, re.M), listing
    assert re.search(r"^postfix-dept3\s+-\s+n\s+/etc/postfix-dept3$", listing, re.M), listing
    box("systemctl daemon-reload")
    wants = box.show("postfix.target", "Wants")["Wants"].split()
    assert sorted(w for w in wants if w.startswith("postfix@")) == \
        ["postfix@-.service", "postfix@dept1.service", "postfix@dept2.service"], wants


def test_generator_skips_broken_instances(box):
    """A bad main.cf line or an sdbm: table: that instance is skipped, with a message, never the boot."""
    proc = box("mkdir -p /tmp/gen && /lib/systemd/system-generators/postfix-generator /tmp/gen "
               "|| /usr/lib/systemd/system-generators/postfix-generator /tmp/gen")
    assert re.search(r"/etc/postfix-dept4: skipped: .*line", proc.stderr), proc.stderr
    assert re.search(r"/etc/postfix-dept5: skipped: .*sdbm", proc.stderr), proc.stderr
    files = box.out("find /tmp/gen -name '*dept*' | sort")
    assert "dept1" in files and "dept2" in files
    assert "dept4" not in files and "dept5" not in files, files
    # At daemon-reload the same lines reach the journal (through /dev/kmsg) for the administrator.
    wait_for(lambda: "postfix-dept4: skipped" in box.out("journalctl -b --no-pager -o cat | grep postfix-generator"
                                                         " || true"), "the generator's message in the journal")


def test_first_connection_activates(box):
    box("systemctl start postfix@dept2.socket")
    assert box.active("postfix@dept2.service") == "inactive"
    out = box.out("systemctl list-sockets --no-legend --no-pager")
    assert re.search(r"127\.0\.0\.1:10025\s+postfix@dept2\.socket\s+postfix@dept2\.service", out), out
    box("python3 /root/client.py hammer 10025 0.01")
    wait_for(lambda: box.active("postfix@dept2.service") == "active", "the connection to activate postfix@dept2")


def test_target_starts_enabled_instances(box):
    t0 = time.monotonic()
    box("systemctl start postfix.target")
    for inst in ("-", "dept1", "dept2"):
        wait_for(lambda: box.active(f"postfix@{inst}.service") == "active", f"postfix@{inst} to be active")
    box.times["target start"] = time.monotonic() - t0
    out = box.out("systemctl list-sockets --no-legend --no-pager")
    for inst, port in PORTS.items():
        assert re.search(rf"127\.0\.0\.1:{port}\s+postfix@{re.escape(inst)}\.socket\s+postfix@{re.escape(inst)}"
                         rf"\.service", out), out
    # Disabled and broken instances are not started with the target.
    for inst in ("dept3", "dept4", "dept5"):
        assert box.active(f"postfix@{inst}.service") == "inactive", inst


def test_show_notify_status(box):
    for inst, port in PORTS.items():
        def ready():
            p = box.show(f"postfix@{inst}.service", "Type", "ActiveState", "StatusText", "MainPID", "WatchdogUSec")
            return p if p["StatusText"].startswith("accepting") else None
        p = wait_for(ready, f"the STATUS= of postfix@{inst}")
        assert p["Type"] == "notify" and p["ActiveState"] == "active", p
        assert re.fullmatch(rf"accepting on 127\.0\.0\.1:{port}; queue: \d+ active, \d+ deferred; \d+ processes",
                            p["StatusText"]), p
        assert p["WatchdogUSec"] not in ("0", "infinity", ""), p
        pid = int(p["MainPID"])
        assert pid > 0
        # MainPID is the master itself (postfix start-fg execs it), in the unit's cgroup.
        cmd = box.out(f"tr '\\0' ' ' </proc/{pid}/cmdline")
        assert "/master" in cmd, cmd
        assert f"postfix@{inst}.service" in box.out(f"cat /proc/{pid}/cgroup")


def mbox_has(box, subject):
    return f"Subject: {subject}" in box(f"cat /var/mail/{USER}", check=False).stdout


def test_mail_to_each_instance_and_journal(box):
    t0 = time.monotonic()
    for inst, port in PORTS.items():
        proc = box(f"python3 /root/client.py send {port} scenario-{inst}", check=False)
        if proc.stdout.strip() != "sent":
            log = box.out(f"journalctl -b --no-pager -o short -u postfix@{inst} | tail -n 30")
            pytest.fail(f"mail to postfix@{inst} refused:\n{proc.stderr}\n{log}")
    for inst in PORTS:
        wait_for(lambda: mbox_has(box, f"scenario-{inst}"), f"the mail through postfix@{inst} in /var/mail/{USER}")
    box.times["3 mails delivered"] = time.monotonic() - t0

    tags = {"dept1": "postfix-dept1/", "dept2": "postfix-dept2/", "-": "postfix/"}
    for inst, tag in tags.items():
        entries = wait_for(lambda: [e for e in box.journal(f"-u postfix@{inst}.service")
                                    if "status=sent" in str(e.get("MESSAGE", ""))],
                           f"the delivery line of postfix@{inst}")
        assert all(e["SYSLOG_IDENTIFIER"].startswith(tag) for e in entries), entries
        # Every daemon line of this unit carries this instance's tag, none another's.
        idents = {e.get("SYSLOG_IDENTIFIER", "") for e in box.journal(f"-u postfix@{inst}.service")}
        for other, other_tag in tags.items():
            if other != inst:
                assert not any(i.startswith(other_tag) for i in idents), (inst, idents)
        assert {f"{tag}smtpd", f"{tag}cleanup", f"{tag}qmgr", f"{tag}local"} <= idents, idents

    # journalctl POSTFIX_QUEUE_ID= finds the lines of one message, and only under its instance.
    sent = [e for e in box.journal("-u postfix@dept1.service") if "status=sent" in str(e.get("MESSAGE", ""))]
    qid = sent[0]["POSTFIX_QUEUE_ID"]
    lines = box.journal(f"POSTFIX_QUEUE_ID={qid}")
    assert len(lines) >= 3, lines
    assert all(e["_SYSTEMD_UNIT"] == "postfix@dept1.service" for e in lines), lines
    assert {e["SYSLOG_IDENTIFIER"] for e in lines} >= {"postfix-dept1/cleanup", "postfix-dept1/qmgr",
                                                      "postfix-dept1/local"}
    assert all(e.get("POSTFIX_INSTANCE") == "postfix-dept1" for e in lines), lines
    assert not box.journal(f"-u postfix@dept2.service POSTFIX_QUEUE_ID={qid}")


def test_reload_keeps_accepting(box):
    pid = box.show("postfix@dept1.service", "MainPID")["MainPID"]
    t0 = time.monotonic()
    # The client keeps connecting for 4 s while the instance reloads three times.
    proc = box("python3 /root/client.py hammer 2525 4 & sleep 0.5; "
               "for i in 1 2 3; do systemctl reload postfix@dept1.service || exit 1; sleep 0.7; done; wait")
    box.times["reload under load"] = time.monotonic() - t0
    m = re.search(r"ok=(\d+) bad=(\d+)", proc.stdout)
    assert m and int(m.group(1)) > 20 and int(m.group(2)) == 0, proc.stdout
    p = box.show("postfix@dept1.service", "MainPID", "ActiveState", "StatusText")
    assert p["MainPID"] == pid and p["ActiveState"] == "active", p
    wait_for(lambda: box.show("postfix@dept1.service", "StatusText")["StatusText"].startswith("accepting"),
             "READY=1 and STATUS= after the reload")
    reloads = [e for e in box.journal("-u postfix@dept1.service", "-t postfix-dept1/master")
               if str(e.get("MESSAGE", "")).startswith("reload --")]
    assert len(reloads) >= 3, reloads
    # Mail still flows after the reloads.
    box("python3 /root/client.py send 2525 after-reload")
    wait_for(lambda: mbox_has(box, "after-reload"), "the mail sent after the reloads")


def test_disabled_instance_catalog(box):
    """dept3 still has master_service_disable = inet: started by hand, it says so with a catalog entry."""
    assert box.active("postfix@dept3.service") == "inactive"
    box("systemctl start postfix@dept3.service")
    entries = wait_for(lambda: [e for e in box.journal("-u postfix@dept3.service")
                                if e.get("MESSAGE_ID") == CATALOG_INET_DISABLED],
                       "the MESSAGE_ID of the disabled inet service")
    assert "master_service_disable = inet" in entries[0]["MESSAGE"], entries
    assert entries[0]["SYSLOG_IDENTIFIER"] == "postfix-dept3/master"
    # The catalog is installed: journalctl -x explains the line.
    text = box.out("journalctl -b --no-pager -x -u postfix@dept3.service")
    assert "Postfix service disabled by master_service_disable" in text, text
    assert "postconf -c /etc/postfix-NAME -X master_service_disable" in text, text
    box("systemctl stop postfix@dept3.service")


def test_stop_leaves_nothing(box):
    t0 = time.monotonic()
    box("systemctl stop postfix.target")
    box.times["target stop"] = time.monotonic() - t0
    for inst in PORTS:
        assert box.active(f"postfix@{inst}.service") == "inactive"
        assert box.active(f"postfix@{inst}.socket") == "inactive"
    # (the bracket keeps pgrep from matching the sh -c running it)
    box("! pgrep -a -f '/usr/libexec/postfix/[a-z]'")
    out = box.out("systemctl list-sockets --no-legend --no-pager")
    assert "postfix@" not in out, out
    # Stopped means stopped: nothing answers on the instances' ports.
    proc = box("python3 /root/client.py hammer 2525 0.01", check=False)
    assert "ok=0 bad=1" in proc.stdout, proc.stdout
