"""test_install.py: a clean container, `meson install`, `postfix post-install`, then the guides' five commands deliver mail.

The container starts from the cached debootstrap rootfs, which has no /etc/postfix at all: everything the
instances need comes from the install (default main.cf/master.cf) and the post-install step (accounts via
systemd-sysusers, directories, /etc/aliases and its database). The tests run in file order and build on
each other, as an administrator's session would. Own network namespace: port 2525 stays inside.
"""
import os
import pathlib
import re
import time

import pytest

from nspawn import installed_box, wait_for
from test_scenario import CATALOG_INET_DISABLED

CACHE = pathlib.Path(os.environ.get("POSTD_NSPAWN_CACHE", "/var/cache/postd-test"))

# Runs inside the container: one message over SMTP to port 2525.
CLIENT = r'''
import smtplib, sys
port, rcpt, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.sendmail("sender@example.test", [rcpt], f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")
print("sent")
'''


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    def clean_rootfs():
        # The clean system has no Postfix configuration at all: the install must bring it.
        assert not (CACHE / "rootfs/etc/postfix").exists()

    with installed_box(tmp_path_factory, "install", before_install=clean_rootfs) as b:
        b.write("/root/client.py", CLIENT)
        yield b


def test_install_brings_the_default_configuration(box):
    assert "compatibility_level = 3.6" in box.out("cat /etc/postfix/main.cf")
    assert re.search(r"^smtp\s+inet\s+n\s+-\s+n\s+-\s+-\s+smtpd$", box.out("cat /etc/postfix/master.cf"), re.M)
    # Nothing else exists yet: no accounts, no queue, no aliases.
    assert box("getent passwd postfix", check=False).returncode != 0
    assert box("test -e /etc/aliases", check=False).returncode != 0


def test_post_install_sets_up_the_system(box):
    # What a package's scriptlets do: accounts (sysusers), directories (tmpfiles), then post-install.
    box("systemd-sysusers && systemd-tmpfiles --create postfix.conf")
    proc = box("postfix post-install")
    assert "created /etc/aliases" in proc.stderr, proc.stderr
    bindir = box.out("postconf -h command_directory").strip()
    assert box.out(f"stat -c '%a %U %G' /var/spool/postfix/maildrop /var/spool/postfix/public "
                   f"{bindir}/postdrop {bindir}/postqueue").split("\n")[:4] == \
        ["1730 postfix postdrop", "710 postfix postdrop", "2755 root postdrop", "2755 root postdrop"]
    assert box.out("postalias -q postmaster hash:/etc/aliases").strip() == "root"
    # Again: nothing changes, nothing fails.
    before = box.out("stat -c '%i %Y' /etc/aliases")
    proc = box("postfix set-permissions")
    assert "created" not in proc.stderr
    assert box.out("stat -c '%i %Y' /etc/aliases") == before


def test_the_five_commands_verbatim(box):
    t0 = time.monotonic()
    box("postmulti -e init")
    box("postmulti -I postfix-dept1 -e create")
    # vi /etc/postfix-dept1/master.cf: the smtp line replaced by "2525 inet n - n - - smtpd".
    box("sed -i 's/^smtp      inet  n       -       n       -       -       smtpd$/"
        "2525 inet n - n - - smtpd/' /etc/postfix-dept1/master.cf")
    assert re.search(r"^2525 inet n - n - - smtpd$", box.out("cat /etc/postfix-dept1/master.cf"), re.M)
    box("postmulti -i postfix-dept1 -e enable")
    box("systemctl start postfix@dept1")
    wait_for(lambda: box.active("postfix@dept1.service") == "active", "postfix@dept1 to be active")
    box.times["five commands"] = time.monotonic() - t0
    # The spool, config and data directories the guides expect, with Postfix's owners and modes.
    assert box.out("stat -c '%a %U %G' /var/spool/postfix-dept1/maildrop /var/lib/postfix-dept1").split("\n")[:2] \
        == ["1730 postfix postdrop", "700 postfix postfix"]


def test_the_trap_is_named_then_fixed_as_the_catalog_says(box):
    """As in Postfix, a new instance keeps master_service_disable = inet: the log says so, with the fix."""
    entries = wait_for(lambda: [e for e in box.journal("-u postfix@dept1.service")
                                if e.get("MESSAGE_ID") == CATALOG_INET_DISABLED],
                       "the MESSAGE_ID of the disabled 2525/inet service")
    assert "2525/inet" in entries[0]["MESSAGE"], entries
    # The fix, verbatim from the catalog entry (journalctl -x shows it).
    box("postconf -c /etc/postfix-dept1 -X master_service_disable")
    box("postfix -c /etc/postfix-dept1 reload")
    wait_for(lambda: box("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 2525), 2)'",
                         check=False).returncode == 0, "port 2525 to open after the reload")
    assert box.out("systemctl is-active postfix@dept1.socket").strip() == "active"


def test_mail_reaches_the_alias_from_post_install(box):
    """postmaster@localhost -> /etc/aliases (postmaster: root) -> /var/mail/root."""
    t0 = time.monotonic()
    proc = box("python3 /root/client.py 2525 postmaster@localhost installed-by-meson", check=False)
    if proc.stdout.strip() != "sent":
        log = box.out("journalctl -b --no-pager -o short -u postfix@dept1 | tail -n 30")
        pytest.fail(f"mail to postfix@dept1 refused:\n{proc.stderr}\n{log}")
    wait_for(lambda: "Subject: installed-by-meson" in box("cat /var/mail/root", check=False).stdout,
             "the mail in /var/mail/root")
    box.times["mail delivered"] = time.monotonic() - t0
    sent = wait_for(lambda: [e for e in box.journal("-u postfix@dept1.service")
                             if "status=sent" in str(e.get("MESSAGE", ""))], "the delivery line")
    assert "orig_to=<postmaster@localhost>" in sent[0]["MESSAGE"], sent[0]["MESSAGE"]
    assert sent[0]["SYSLOG_IDENTIFIER"] == "postfix-dept1/local"


def test_every_role_runs_under_its_own_seccomp_filter(box):
    """Under the real unit (NoNewPrivileges, the bounding set): each role stacked its allow-list on the
    baseline, and none was killed by it while the mail above went through."""
    script = ("for p in $(pgrep -x 'smtpd|cleanup|qmgr|local|local-spawner|pickup'); do "
              "echo \"$(cat /proc/$p/comm) $(grep -E '^Seccomp(_filters)?:' /proc/$p/status | tr -s '\\t\\n' '  ')\"; done")
    lines = box.out(script).splitlines()
    seen = {}
    for line in lines:
        m = re.match(r"(\S+) Seccomp: (\d+)(?: Seccomp_filters: (\d+))?", line.strip())
        assert m, line
        seen[m.group(1)] = (int(m.group(2)), int(m.group(3)) if m.group(3) else None)
    assert {"smtpd", "cleanup", "qmgr", "local", "local-spawner"} <= set(seen), lines
    for role, (mode, n) in seen.items():
        assert mode == 2 and (n is None or n >= 2), f"{role}: Seccomp {mode}, filters {n}"
    # local's command spawner keeps the baseline alone (the |command deliveries it starts run arbitrary
    # programs): one filter fewer than local, which stacked its allow-list (the unit adds its own to both).
    spawner, local = seen["local-spawner"][1], seen["local"][1]
    assert spawner is None or spawner == local - 1, f"local-spawner: {spawner} filters, local: {local}"
    killed = [e for e in box.journal("-u postfix@dept1.service")
              if "killed by its seccomp filter" in str(e.get("MESSAGE", ""))]
    assert not killed, killed
