"""test_sdproto.py: src/lib/util's own implementation of systemd's daemon protocols (sd_notify.c,
listen_fds.c, journal_send.c: no libsystemd) against a real systemd and journald (PID 1 in nspawn).

The probe (tests/systemd/sdproto-probe.c) is a Type=notify service with two activated sockets and
WatchdogSec=; what it was given it reports as journal fields, so every check here reads what systemd
and journald themselves made of the datagrams: READY=1 and STATUS= (systemctl show), socket
activation with names, the watchdog (fed, and starved: systemd kills it), the plain and the binary field
framing and an entry larger than any datagram (sealed memfd), read back whole with journalctl.
"""
import json
import shutil

import pytest

from nspawn import BUILD, Box, harness, ready_container_env, wait_for

BIG_SIZE = 17 << 20  # sdproto-probe.c's PROBE_BIG_SIZE: PROBE_BIG=... as a whole field
UNITS = {
    "probe-a.socket": "[Socket]\nListenStream=/run/probe-a.sock\nFileDescriptorName=alpha\nService=probe.service\n",
    "probe-b.socket": "[Socket]\nListenDatagram=/run/probe-b.sock\nFileDescriptorName=beta\nService=probe.service\n",
    # Not root: journald takes an unsealed descriptor from root only (the seals must be checked).
    "probe.service": "[Service]\nType=notify\nExecStart=/usr/local/bin/sdproto-probe\nUser=nobody\n"
                     "Sockets=probe-a.socket probe-b.socket\nWatchdogSec=2\n",
    # The same program without its pings: the watchdog must end it, or WatchdogSec= was never armed.
    "probe-starve.service": "[Service]\nType=notify\nExecStart=/usr/local/bin/sdproto-probe\nUser=nobody\n"
                            "WatchdogSec=2\n"
                            "Environment=PROBE_NO_PING=1\n",
}


def big_value():
    """PROBE_BIG's value as the probe builds it (byte i of the field is 'a' + (i*7 + i//4096) % 26)."""
    prefix = len("PROBE_BIG=")
    return bytes(ord("a") + (i * 7 + i // 4096) % 26 for i in range(prefix, BIG_SIZE))


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    probe = BUILD / "tests/sdproto-probe"
    if not probe.exists():
        pytest.fail(f"{probe} is not built")
    env = ready_container_env("sdproto")
    dest = tmp_path_factory.mktemp("destdir")
    (dest / "usr/local/bin").mkdir(parents=True)
    shutil.copy2(probe, dest / "usr/local/bin/sdproto-probe")
    (dest / "etc/systemd/system").mkdir(parents=True)
    for name, text in UNITS.items():
        (dest / "etc/systemd/system" / name).write_text(text)
    harness("boot", "--copy", str(dest), env=env)
    b = Box(env)
    try:
        b("systemctl start probe-a.socket probe-b.socket && systemctl start probe.service")
        yield b
    finally:
        harness("stop", env=env)


def entry(box, probe, *extra):
    """The probe's journal entry PROBE=probe (all fields whole: -a), waited for."""
    def find():
        out = box.out(f"journalctl -b -a --no-pager -o json _SYSTEMD_UNIT=probe.service PROBE={probe} {' '.join(extra)}")
        found = [json.loads(line) for line in out.splitlines() if line.strip()]
        return found[0] if found else None
    return wait_for(find, f"the probe's {probe} entry")


def test_ready_and_status_reach_systemd(box):
    # Type=notify: `systemctl start` returned, so READY=1 arrived; STATUS= is the probe's own text.
    show = box.show("probe.service", "ActiveState", "SubState", "StatusText", "Result")
    assert show == {"ActiveState": "active", "SubState": "running", "StatusText": "probe ready, 2 sockets",
                    "Result": "success"}, show


def test_activated_sockets_watchdog_and_booted(box):
    e = entry(box, "start")
    assert e["PROBE_FDS"] == "2"
    assert sorted(e["PROBE_NAMES"].split(":")) == ["alpha", "beta"]
    assert e["PROBE_CLOEXEC"] == "1" and e["PROBE_ENV_LEFT"] == "0"
    assert e["PROBE_WATCHDOG_USEC"] == "2000000"
    assert e["PROBE_BOOTED"] == "1"
    # journald attributed the datagram to the service (its credentials): same process as MainPID.
    assert int(e["_PID"]) == box.main_pid("probe.service")


def test_binary_framing_and_nul_bytes(box):
    e = entry(box, "framing")
    assert e["MESSAGE"] == "first line\nsecond line=with equals\n"
    assert e["PROBE_NUL"] == [ord("a"), 0, ord("b")]  # journalctl's JSON for a value that is not text


def test_entry_larger_than_a_datagram_arrives_whole(box):
    e = entry(box, "big")
    assert e["MESSAGE"] == "sdproto-probe big entry"
    got = e["PROBE_BIG"]
    assert isinstance(got, str) and len(got) == BIG_SIZE - len("PROBE_BIG="), len(got or "")
    assert got.encode() == big_value()


def test_watchdog_pings_keep_it_and_starving_kills(box):
    pid = box.main_pid("probe.service")
    box("systemctl start probe-starve.service")

    def starved():
        s = box.show("probe-starve.service", "ActiveState", "Result")
        return s if s["ActiveState"] in ("failed", "inactive") else None
    # Killed after WatchdogSec=2 without a ping; the fed probe, started earlier, outlived that.
    assert wait_for(starved, "the watchdog to end the starving probe", limit=20)["Result"] == "watchdog"
    assert box.show("probe.service", "ActiveState", "Result", "MainPID") == {
        "ActiveState": "active", "Result": "success", "MainPID": str(pid)}
    box("systemctl stop probe.service")
    assert box.show("probe.service", "ActiveState", "Result") == {"ActiveState": "inactive", "Result": "success"}
