"""test_faults.py: fault injection: SIGKILL of each daemon, and power cuts, under load through two instances.

Instance A relays everything to instance B over SMTP (A's relayhost = [127.0.0.1]:B), B delivers
to an mbox. A load generator sends messages with unique tokens to A and records which got 250;
meanwhile one kind of process (master, smtpd, cleanup, qmgr, smtp, local) is SIGKILLed at random
points. Then both queues are drained (bounded) and every token is counted in B's mailbox:

  acknowledged  messages that got 250 from A
  delivered     acknowledged messages found in B's mailbox
  lost          acknowledged but never delivered: must be 0
  duplicated    delivered more than once

A duplicate is allowed in one case only, which SMTP itself forces (RFC 1047): the A -> B
conversation breaks after B queued the message and before A recorded B's 250. That happens when A's
smtp client is killed after B answered the DATA but before it marked the recipient delivered in its
queue file, or when B's smtpd is killed after its cleanup committed the message but before the 250
reached A (the reply is lost). A cannot know that B took the message, so it sends it again: B queues
a second copy with its own queue ID. Such a copy carries one A queue ID with two different B queue
IDs, which is how the test tells it apart from every other duplicate (the same B queue ID delivered
twice, or two A queue IDs for one token, are bugs). These "smtp_resends" are counted separately and
allowed only for kills that can cut that conversation (A's smtp, B's smtpd, either master, whose
children go with it); for cleanup, qmgr and local kills they must be 0. One kill can cause many: an
smtp process runs many deliveries at once, and B's group commit answers a batch of DATAs at the same
moment, so a kill while A records those 250s one fdatasync after the other catches all the rest of
the batch. So instead of a count per kill the test checks each resend against A's log: A logged the
message "sent" exactly once, after at least one attempt per extra copy that ended "deferred" (the
agent died, or the connection broke): A never sends again what it recorded as taken.

One more kind is counted apart: local_redeliveries, one B message appended to the mailbox twice. It
used to follow a kill of local (or of its master, or a power cut) between the append and the record of
it in the queue file; local now records the attempt before the append and a retry finds the copy
(docs/QUEUE_FORMAT.md, "Local delivery exactly once"), so it must be 0 after every fault
(LOCAL_REDELIVERY below says what one means).

Also counted, never failing a test: unknown_outcome (the connection broke before the client read the
answer to its DATA: not acknowledged), delivered_unacked (such messages that were delivered anyway, as
SMTP allows), refused (4xx answers and refused connections while a master was down).

The power-cut test (below) does the same with every process of both instances killed at once and the
queues and mailbox rebuilt from what fsync made durable.

Figures: each test prints its row (pytest -s) and adds it to $POSTD_FAULTS_FIGURES (emptied when the
file starts), by default
/tmp/postd-faults-figures.txt; the assertion messages carry the same row. 400 messages per fault type
keep the file at about two minutes on two busy cores; POSTD_SOAK=1 sends ten times as many
(POSTD_FAULTS_MESSAGES sets the count directly, POSTD_FAULTS_SEED the random choices).
"""
import fcntl
import os
import pathlib
import pwd
import random
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from conftest import BUILD
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, pid_alive, wait_for

MASTER_CF = DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n"
SOAK = os.environ.get("POSTD_SOAK") == "1"
MESSAGES = int(os.environ.get("POSTD_FAULTS_MESSAGES", "4000" if SOAK else "400"))
SENDERS = 4  # concurrent SMTP clients of the load generator
PER_SESSION = 10  # messages per SMTP session before the client reconnects
LOAD_SECONDS = 400 if SOAK else 60  # the load stops at this deadline even if not all were sent
DRAIN_SECONDS = 120
MIN_KILLS = 6
# B's local deliveries in flight at once: every message goes to one mailbox, one destination, so
# local_destination_concurrency_limit (set in relay_pair) bounds them (more would only wait for its lock).
LOCAL_IN_FLIGHT = 2
KILL_AFTER_LOAD = 10
FIGURES = pathlib.Path(os.environ.get("POSTD_FAULTS_FIGURES", "/tmp/postd-faults-figures.txt"))
LOGS = pathlib.Path("/tmp/postd-faults-logs")  # maillogs of a failed run
SEED = int(os.environ.get("POSTD_FAULTS_SEED", "20261206"))
SUBJECT_RX = re.compile(rb"^Subject: fault ([0-9a-f]{32})$", re.M)


def message(token):
    return (f"From: <alice@example.org>\r\nTo: <{TEST_USER}@localhost>\r\nSubject: fault {token}\r\n"
            f"Message-ID: <{token}@client.example.org>\r\n\r\nbody of {token}\r\n")


class Load:
    """SENDERS threads sending up to `total` messages to port; records the tokens that got 250."""

    def __init__(self, port, total):
        self.port = port
        self.left = total
        self.acked, self.unknown, self.errors = [], [], []
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + LOAD_SECONDS
        self.threads = [threading.Thread(target=self.run) for _ in range(SENDERS)]

    def stop(self):
        with self.lock:
            self.left = 0

    def take(self):
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline:
                return None
            self.left -= 1
            return uuid.uuid4().hex

    def session(self):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            for _ in range(PER_SESSION):
                token = self.take()
                if token is None:
                    return False
                try:
                    s.sendmail("alice@example.org", [f"{TEST_USER}@localhost"], message(token))
                except smtplib.SMTPResponseException as e:
                    # A definite refusal (4xx/5xx): not acknowledged, and never to be delivered.
                    self.errors.append(f"{e.smtp_code} {e.smtp_error!r}")
                    return True
                except (smtplib.SMTPException, OSError):
                    # The connection broke during the transaction: the outcome is unknown to the
                    # client (a 250 may have been lost). Not acknowledged; may be delivered.
                    self.unknown.append(token)
                    raise
                self.acked.append(token)
        return True

    def run(self):
        for _ in range(MESSAGES * 2):  # bounded: at most one session per message, and the deadline
            with self.lock:
                if self.left <= 0 or time.monotonic() > self.deadline:
                    return
            try:
                if not self.session():
                    return
            except (smtplib.SMTPException, OSError) as e:
                self.errors.append(repr(e))
                time.sleep(0.05)

    def start(self):
        for t in self.threads:
            t.start()

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def join(self):
        for t in self.threads:
            t.join(timeout=LOAD_SECONDS + 60)
        assert not self.running(), "the load generator did not stop"


def relay_pair(mail_instance, tag, prepare=None):
    """B delivers locally; A relays everything to B. Both started (after prepare(inst), if given);
    returns (a, b)."""
    # fcntl locks only: a dotlock left by a killed local keeps the mailbox locked for 500 s (stale lock
    # time, as Postfix's), deferring every delivery meanwhile; that is slowness, not loss.
    b = mail_instance(f"postfix-{tag}-b", master_cf=MASTER_CF,
                      main_extra="in_flow_delay = 0\nmailbox_delivery_lock = fcntl\n"
                                 f"local_destination_concurrency_limit = {LOCAL_IN_FLIGHT}\n")
    b.postconf("myhostname = mx-b.example.test")
    a = mail_instance(f"postfix-{tag}-a", master_cf=MASTER_CF,
                      main_extra="mynetworks = 127.0.0.1/32\n"
                                 f"relayhost = [127.0.0.1]:{b.port}\n"
                                 "in_flow_delay = 0\n")
    # Nothing is local to A: every recipient goes to the relayhost.
    a.postconf("myhostname = mx-a.example.test", "mydestination =")
    for inst in (a, b):
        if prepare:
            prepare(inst)
    b.start()
    a.start()
    return a, b


def ensure_running(inst):
    pid = inst.master_pid()
    if not pid or not pid_alive(pid):
        # The master's children follow it (PDEATHSIG); then the operator starts it again.
        wait_for(lambda: not any(inst.daemon_pids(d) for d in ("smtpd", "cleanup", "qmgr", "smtp", "local")),
                 20, f"{inst.name}'s children to exit after its master")
        inst.start()


def kill_one(rng, insts, daemon):
    """SIGKILL one random process running daemon in one of insts; returns its instance, or None."""
    found = [(inst, pid) for inst in insts for pid in inst.daemon_pids(daemon)]
    if not found:
        return None
    inst, pid = rng.choice(found)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    if daemon == "master":
        wait_for(lambda: not pid_alive(pid), 10, "the killed master to be gone")
        ensure_running(inst)
    return inst


def queue_empty(inst):
    r = inst.cmd("postqueue", "-p", timeout=30)
    return r.returncode == 0 and "Mail queue is empty" in r.stdout


def drain(insts):
    """Wait (bounded) until every queue is empty, flushing the deferred mail now and then."""
    deadline = time.monotonic() + DRAIN_SECONDS
    last_flush = 0.0
    while time.monotonic() < deadline:
        for inst in insts:
            ensure_running(inst)
        if all(queue_empty(inst) for inst in insts):
            return
        if time.monotonic() - last_flush > 3:
            for inst in insts:
                inst.cmd("postqueue", "-f", timeout=30)
            last_flush = time.monotonic()
        time.sleep(0.5)
    queues = {inst.name: inst.cmd("postqueue", "-p").stdout[-1000:] for inst in insts}
    raise AssertionError(f"queues not empty after {DRAIN_SECONDS}s: {queues}; logs: {keep_logs(insts)}")


def keep_logs(insts):
    """Copies of the instances' maillogs that outlive the test (the instances are removed)."""
    LOGS.mkdir(exist_ok=True)
    kept = []
    for inst in insts:
        dst = LOGS / f"{inst.name}.maillog"
        dst.write_bytes(inst.log.read_bytes() if inst.log.exists() else b"")
        kept.append(str(dst))
        if inst.mbox(TEST_USER):
            (LOGS / f"{inst.name}.mbox").write_bytes(inst.mbox(TEST_USER))
    return kept


def mbox_messages(box):
    """Split an mbox into messages (each starts with a "From " line at the start of the file or after LF)."""
    return [m for m in re.split(rb"(?:^|\n)(?=From \S+ )", box) if m.startswith(b"From ")]


def queue_ids(msg, host):
    """Queue IDs of the Received: headers added by host (folded lines joined)."""
    head = msg.split(b"\n\n", 1)[0].replace(b"\n\t", b" ").replace(b"\n ", b" ")
    return re.findall(rb"by " + re.escape(host) + rb" \(Postfix\) with E?SMTPS?A? id ([0-9A-F]+)", head)


def count(box, load):
    """The figures of one run, from B's mailbox and what the load generator recorded."""
    copies = {}
    for msg in mbox_messages(box):
        m = SUBJECT_RX.search(msg)
        if m:
            copies.setdefault(m.group(1).decode(), []).append(msg)
    acked = set(load.acked)
    fig = {"acknowledged": len(acked), "delivered": len(acked & copies.keys()),
           "lost": len(acked - copies.keys()), "duplicated": 0, "smtp_resends": 0, "local_redeliveries": 0,
           "unknown_outcome": len(load.unknown), "delivered_unacked": len(copies.keys() - acked),
           "refused": len(load.errors)}
    bad, resent = [], {}
    for token, msgs in copies.items():
        if len(msgs) == 1:
            continue
        a_ids = [tuple(queue_ids(x, b"mx-a.example.test")) for x in msgs]
        b_ids = [tuple(queue_ids(x, b"mx-b.example.test")) for x in msgs]
        if len(set(a_ids)) == 1 and len(set(b_ids)) == len(msgs):
            # One A message, sent to B more than once: A's smtp died after B's 250.
            fig["smtp_resends"] += len(msgs) - 1
            resent[a_ids[0][-1].decode() if a_ids[0] else token] = len(msgs)
        elif len(set(a_ids)) == 1 and len(set(b_ids)) == 1:
            # One B message appended twice by local: see LOCAL_REDELIVERY.
            fig["local_redeliveries"] += len(msgs) - 1
        else:
            fig["duplicated"] += len(msgs) - 1
            bad.append(f"{token}: A ids {a_ids}, B ids {b_ids}")
    return fig, bad, resent


def row(fault, kills, fig, what="kills"):
    return (f"{fault:8} {what}={kills:<3} acknowledged={fig['acknowledged']:<5} delivered={fig['delivered']:<5} "
            f"lost={fig['lost']:<3} duplicated={fig['duplicated']:<3} smtp_resends={fig['smtp_resends']:<3} "
            f"local_redeliveries={fig['local_redeliveries']:<3} "
            f"unknown_outcome={fig['unknown_outcome']} delivered_unacked={fig['delivered_unacked']} "
            f"refused={fig['refused']}")


@pytest.fixture(scope="module", autouse=True)
def fresh_figures():
    """The figures file holds one run: the lead copies it whole."""
    FIGURES.write_text("")
    yield
    print("\n" + FIGURES.read_text(), end="")


def report(line):
    print("\n" + line)
    with FIGURES.open("a") as f:
        f.write(line + "\n")


@pytest.mark.parametrize("daemon", ["master", "smtpd", "cleanup", "qmgr", "smtp", "local"])
def test_sigkill_under_load_loses_nothing(mail_instance, daemon):
    a, b = relay_pair(mail_instance, daemon)
    insts = {"master": [a, b], "smtpd": [a, b], "cleanup": [a, b], "qmgr": [a, b], "smtp": [a],
             "local": [b]}[daemon]
    rng = random.Random(f"{SEED}-{daemon}")
    load = Load(a.port, MESSAGES)
    load.start()
    kills = {a.name: 0, b.name: 0}
    try:
        # Bounded: one kill per 0.1-0.8 s while the load runs (it has its own deadline), and while
        # mail is still moving after it, until MIN_KILLS or KILL_AFTER_LOAD seconds.
        end = None
        for _ in range((LOAD_SECONDS + KILL_AFTER_LOAD) * 10):
            if not load.running():
                end = end or time.monotonic() + KILL_AFTER_LOAD
                if sum(kills.values()) >= MIN_KILLS or time.monotonic() > end:
                    break
            time.sleep(rng.uniform(0.1, 0.8))
            inst = kill_one(rng, insts, daemon)
            if inst:
                kills[inst.name] += 1
    finally:
        load.join()
    drain([a, b])
    fig, bad, resent = count(b.mbox(TEST_USER), load)
    line = row(daemon, sum(kills.values()), fig)
    report(line)
    try:
        lost = sorted(set(load.acked) - {m.group(1).decode() for m in SUBJECT_RX.finditer(b.mbox(TEST_USER))})
        assert fig["lost"] == 0, f"acknowledged mail lost: {line}; tokens {lost[:5]}"
        assert fig["duplicated"] == 0, f"duplicates not forced by SMTP: {line}; {bad[:5]}"
        # local records each attempt before its append and checks it on a retry: no kill, of local or of
        # anything else, may make it deliver one B message twice.
        assert fig["local_redeliveries"] == 0, f"local delivered a message twice: {line}" + LOCAL_REDELIVERY
        # Only kills that can cut the A -> B conversation between B's commit and A's record of the 250.
        cuts = {"smtp": kills[a.name], "smtpd": kills[b.name], "master": kills[a.name] + kills[b.name]}.get(daemon, 0)
        assert fig["smtp_resends"] == 0 or cuts, f"resends without a kill that could explain them ({kills}): {line}"
        # And each copy but the last follows an attempt of A that did not end in "sent": A never sends a
        # message again once it recorded B's 250.
        # An attempt cut short by a master kill logs nothing (qmgr goes with it): each restart of A's
        # master may stand for one.
        log = a.logtext()
        restarts = len(re.findall(r"/master\[\d+\]: daemon started", log)) - 1
        for qid, copies in resent.items():
            sent = len(re.findall(rf"{qid}: to=<.*status=sent", log))
            deferred = len(re.findall(rf"{qid}: to=<.*status=deferred", log))
            assert sent == 1 and deferred + restarts >= copies - 1, (
                f"{qid} reached B {copies} times, A logged {sent} sent and {deferred} deferred attempts "
                f"({restarts} restarts): {line}\n" + log_of(a, qid))
        assert sum(kills.values()) >= MIN_KILLS // 2, (f"only {kills} {daemon} processes could be killed: "
                                                       f"the test proved little; {line}")
        assert fig["acknowledged"] >= MESSAGES // 2, f"too few messages accepted; {line}; {load.errors[:5]}"

    except AssertionError as e:
        raise AssertionError(f"{e}\nmaillogs and B's mailbox kept: {keep_logs([a, b])}") from None

# What one B queue ID delivered twice means: local's exactly-once delivery failed.
LOCAL_REDELIVERY = (
    "\nLOCAL REDELIVERY: a B queue ID was appended to the mailbox twice. Before its append, local records the "
    "attempt in the recipient's status slot (state attempted: the attempt's time, then the mbox's device, "
    "inode and size, fdatasync'd; src/local/request.c record_attempts(), src/local/mailbox.c "
    "record_append()), and a retry compares the bytes at that offset with the copy it would write "
    "(mbox_already_appended()). A second copy means the record was not durable before the append, the "
    "retry rendered other bytes (From_ date, headers), or the retry did not see the attempted state.")


def log_of(inst, qid):
    return "\n".join(line for line in inst.logtext().splitlines() if qid in line)


# ---- power cut ----------------------------------------------------------------------------------------
# No device-mapper here (no /dev/mapper/control, no dm-flakey/dm-log-writes in this kernel), so the cut
# is simulated: tests/faults/powercut.c, preloaded into every process of both instances, records what
# each successful fsync()/fdatasync() made durable (a file's content, a directory's entries; the model
# is described in tests/faults/shadow.c). At the cut the test takes the shim's lock, SIGKILLs every
# process of both instances, and rebuilds the queue directories and the mailbox directory from that
# record alone: every write, rename, link and unlink not covered by an fsync is dropped. Then both
# instances start again (queue recovery included) and the mail is counted as above.
SHIM = BUILD / "tests" / "faults" / "libpostd-faults.so"
SHIM_TOOL = BUILD / "tests" / "faults" / "powercut-tool"
QUEUE_DIRS = ("incoming", "active", "deferred", "hold", "corrupt", "saved", "bounce", "defer", "trace",
              "flush", "maildrop")
CUTS = 3 if SOAK else 2


class PowerCut:
    def __init__(self, root):
        for f in (SHIM, SHIM_TOOL):
            if not f.exists():
                pytest.fail(f"{f} is not built; run ninja -C {BUILD}")
        self.root = pathlib.Path(root)
        self.shadow = pathlib.Path(tempfile.mkdtemp(prefix="postd-powercut-", dir="/tmp"))
        for d in (self.shadow, self.shadow / "data", self.shadow / "list"):
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o777)  # the daemons record as postfix, as the recipient and as root
        lock = self.shadow / "lock"
        lock.touch()
        os.chmod(lock, 0o666)
        self.keys = {}  # tracked directory -> its inode's key
        self.undone = 0  # entries the cuts removed, brought back or shortened

    def prepare(self, inst):
        inst.env.update({"LD_PRELOAD": str(SHIM), "POSTD_POWERCUT_DIR": str(self.shadow),
                         "POSTD_POWERCUT_ROOT": str(self.root)})

    def baseline(self, insts):
        """What exists now is durable (after sync): the starting state of the tracked directories."""
        dirs = [inst.spool / d for inst in insts for d in QUEUE_DIRS if (inst.spool / d).is_dir()]
        self.baseline_dirs(dirs + [inst.mail_spool for inst in insts])

    def baseline_dirs(self, dirs):
        os.sync()
        r = subprocess.run([str(SHIM_TOOL), "baseline", str(self.shadow), *map(str, dirs)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        for line in r.stdout.splitlines():
            key, path = line.split(" ", 1)
            self.keys[path] = key

    def cut(self, insts):
        """Power off: no process of the instances survives, nothing not fsync'd survives."""
        with open(self.shadow / "lock", "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # no record half made
            for _ in range(50):  # bounded: processes forked meanwhile are caught by the next round
                pids = [pid for inst in insts for pid in instance_pids(inst)]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                wait_for(lambda: not any(pid_alive(p) for p in pids), 10, "the killed processes to be gone")
            else:
                raise AssertionError("processes of the instances kept appearing after SIGKILL")
            made = {}
            for path, key in self.keys.items():
                self.undone += self.restore(pathlib.Path(path), key, made)
        # The restored files are new inodes: what survived is the new durable state.
        self.baseline_dirs(list(self.keys))

    def restore(self, d, key, made):
        """Replace d's entries with its durable listing; returns how many entries changed. A regular file
        the durable listing still has keeps its inode (its content rolled back in place), as on a real
        file system after a power cut: local's exactly-once check compares an mbox's device and inode."""
        before = {e.name: e.lstat().st_size for e in d.iterdir()}
        listing = self.shadow / "list" / key
        lines = [line.split(" ", 5) for line in (listing.read_text().splitlines() if listing.exists() else [])]
        wanted = [k for kind, k, *_ in lines if kind != "d"]
        parked = {}  # durable key -> the surviving inode, moved aside under a temporary name
        for e in list(d.iterdir()):
            if e.is_symlink() or not e.is_file():
                continue
            st = e.lstat()
            prefix = f"{os.major(st.st_dev):x}.{os.minor(st.st_dev):x}-{st.st_ino:x}-"
            k = next((k for k in wanted if k.startswith(prefix) and k not in parked), None)
            if k:
                parked[k] = d / f".powercut-restore-{len(parked)}"
                os.rename(e, parked[k])
        keep = set(parked.values())
        for e in d.iterdir():
            if e in keep:
                continue
            if e.is_dir() and not e.is_symlink():
                shutil.rmtree(e)
            else:
                e.unlink()
        after = {}
        for kind, k, uid, gid, mode, name in lines:
            target = d / name
            if kind == "d":
                target.mkdir()
                self.restore(target, k, made)
            elif k in made:
                os.link(made[k], target)  # one inode in two directories: a rename half made durable
            else:
                data = self.shadow / "data" / k
                content = data.read_bytes() if data.exists() else b""  # named durably, content never synced
                if k in parked:
                    os.rename(parked.pop(k), target)
                    with open(target, "r+b") as f:
                        f.truncate(0)
                        f.write(content)
                else:
                    target.write_bytes(content)
                made[k] = target
            os.chown(target, int(uid), int(gid), follow_symlinks=False)
            os.chmod(target, int(mode, 8))
            after[name] = target.lstat().st_size
        for leftover in parked.values():  # a durable key listed twice: the extra stays gone
            leftover.unlink()
        return sum(1 for n in before.keys() | after.keys() if before.get(n) != after.get(n))

    def unsupported(self):
        f = self.shadow / "unsupported"
        return f.read_text() if f.exists() else ""

    def close(self):
        shutil.rmtree(self.shadow, ignore_errors=True)


def instance_pids(inst):
    """Every process started for this instance (daemons and their children carry -c ETC in argv)."""
    etc = str(inst.etc).encode()
    found = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if etc in argv and pid_alive(int(d.name)):
            found.append(int(d.name))
    return found


@pytest.fixture
def power_cut(mail_instance):
    # The instances live under one base directory; the shim watches all of it.
    probe = mail_instance("postfix-probe")
    pc = PowerCut(probe.root.parent)
    yield pc
    pc.close()


def test_power_cut_model_drops_what_was_not_synced(power_cut):
    """The shim has teeth: of three files, only the one whose data and name were fsync'd survives a cut."""
    d = power_cut.root / "model"
    d.mkdir()
    script = f"""
import os
d = {str(d)!r}
def put(name, data, sync_file, sync_dir):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    if sync_file:
        os.fsync(fd)
    os.write(fd, b" and more, never synced")
    os.close(fd)
    if sync_dir:
        dfd = os.open(d, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
put("neither", b"n", False, False)
put("file-only", b"f", True, False)
dfd = os.open(d, os.O_RDONLY)
os.fsync(dfd)  # "file-only" and "neither" named durably here, before "both" exists
os.close(dfd)
put("both", b"b", True, True)
os.rename(os.path.join(d, "both"), os.path.join(d, "renamed"))  # not synced: undone
os.unlink(os.path.join(d, "neither"))  # not synced: undone
"""
    env = dict(os.environ, LD_PRELOAD=str(SHIM), POSTD_POWERCUT_DIR=str(power_cut.shadow),
               POSTD_POWERCUT_ROOT=str(power_cut.root))
    r = subprocess.run([str(SHIM_TOOL), "baseline", str(power_cut.shadow), str(d)], check=True,
                       capture_output=True, text=True, timeout=30)
    key = r.stdout.split()[0]
    r = subprocess.run(["/usr/bin/python3", "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(d)) == ["file-only", "renamed"]
    power_cut.restore(d, key, {})
    got = {p.name: p.read_bytes() for p in d.iterdir()}
    # "neither" was named durably but its data never synced: empty. "file-only": its synced data.
    # "both": data and name synced; its rename and the unlink of "neither" were not.
    assert got == {"neither": b"", "file-only": b"f", "both": b"b"}, got
    assert power_cut.unsupported() == ""


def test_power_cut_under_load_loses_nothing(mail_instance, power_cut):
    """Cut the power CUTS times while mail flows A -> B; after each, restart on what was durable."""
    a, b = relay_pair(mail_instance, "cut", prepare=power_cut.prepare)
    power_cut.baseline([a, b])
    rng = random.Random(f"{SEED}-powercut")
    acked, unknown, errors = [], [], []
    for _ in range(CUTS):
        load = Load(a.port, MESSAGES // CUTS)
        load.start()
        try:
            # Bounded: cut once some mail got in (at least 20 acknowledged, at most 60 s).
            wait_for(lambda: len(load.acked) >= 20 or not load.running(), 60, "mail to be acknowledged")
            time.sleep(rng.uniform(0.2, 2.0))
            power_cut.cut([a, b])
        finally:
            load.stop()
            load.join()
        acked += load.acked
        unknown += load.unknown
        errors += load.errors
        for inst in (a, b):
            inst.start()
    drain([a, b])
    total = Load(a.port, 0)
    total.acked, total.unknown, total.errors = acked, unknown, errors
    fig, bad, resent = count(b.mbox(TEST_USER), total)
    line = row("powercut", CUTS, fig, "cuts") + f" undone_by_cuts={power_cut.undone}"
    report(line)
    try:
        assert power_cut.unsupported() == "", f"the model missed a sync: {power_cut.unsupported()}"
        lost = sorted(set(acked) - {m.group(1).decode() for m in SUBJECT_RX.finditer(b.mbox(TEST_USER))})
        assert fig["lost"] == 0, f"acknowledged mail lost: {line}; tokens {lost[:5]}"
        assert fig["duplicated"] == 0, f"duplicates not forced by SMTP: {line}; {bad[:5]}"
        # A cut between local's append and its mark leaves the recipient attempted: the retry finds the copy.
        assert fig["local_redeliveries"] == 0, f"local delivered a message twice: {line}" + LOCAL_REDELIVERY
        # A resend means the cut took A's record of B's 250. A logs "sent" only after that record was
        # made durable (and the shim records it before fdatasync returns), so A logged it exactly once:
        # for the last copy.
        for qid, copies in resent.items():
            sent = len(re.findall(rf"{qid}: to=<.*status=sent", a.logtext()))
            assert sent == 1, f"{qid} reached B {copies} times, A logged {sent} sent: {line}\n" + log_of(a, qid)
        assert len(acked) >= 20 * CUTS, f"too few messages accepted; {line}; {errors[:5]}"
    except AssertionError as e:
        raise AssertionError(f"{e}\nmaillogs and B's mailbox kept: {keep_logs([a, b])}") from None


def test_cleanup_killed_after_commit_still_gets_250(mail_instance):
    """cleanup dies right after the directory fsync that commits a message, before it answers smtpd:
    the message is queued, so the client must get 250 (a 451 would make it send the message again:
    the duplicate the cleanup SIGKILL test above finds now and then), and it is delivered once."""
    if not SHIM.exists():
        pytest.fail(f"{SHIM} is not built; run ninja -C {BUILD}")
    inst = mail_instance("postfix-commitkill")
    inst.env.update({"LD_PRELOAD": str(SHIM), "POSTD_FAULTS_KILL_AFTER_FSYNC": "cleanup:/incoming"})
    inst.start()
    tokens = []
    for _ in range(3):  # every cleanup dies this way; the master starts the next one
        token = uuid.uuid4().hex
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
            s.ehlo("client.example")
            s.mail("alice@example.org")
            s.rcpt(f"{TEST_USER}@localhost")
            code, text = s.data(message(token))
        assert code == 250, f"{code} {text!r} for a committed message; maillog:\n{inst.logtext()[-3000:]}"
        tokens.append(token)
    inst.wait_log(r"warning: [0-9A-F]+: cleanup died after committing the message: it is queued")
    wait_for(lambda: all(f"fault {t}".encode() in inst.mbox(TEST_USER) for t in tokens), 60,
             "the three messages in the mailbox")
    box = inst.mbox(TEST_USER)
    assert [box.count(f"Subject: fault {t}".encode()) for t in tokens] == [1, 1, 1]


def test_agent_killed_after_its_record_is_logged_as_sent(mail_instance):
    """local dies right after it recorded a recipient as delivered in the queue file, before it logged and
    reported it: qmgr reads the record and logs "status=sent" (not "deferred"), and the mail is delivered
    once and removed. Without that, the maillog would say deferred for mail that is in the mailbox."""
    if not SHIM.exists():
        pytest.fail(f"{SHIM} is not built; run ninja -C {BUILD}")
    inst = mail_instance("postfix-markkill")
    inst.env.update({"LD_PRELOAD": str(SHIM), "POSTD_FAULTS_KILL_AFTER_MARK": "local"})
    inst.start()
    tokens = [uuid.uuid4().hex for _ in range(2)]
    for token in tokens:  # every local dies this way; the master starts the next one
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
            s.sendmail("alice@example.org", [f"{TEST_USER}@localhost"], message(token))
    wait_for(lambda: len(re.findall(r": removed", inst.logtext())) >= len(tokens), 60, "both messages removed")
    log = inst.logtext()
    box = inst.mbox(TEST_USER)
    assert [box.count(f"Subject: fault {t}".encode()) for t in tokens] == [1, 1], log[-3000:]
    kills = re.findall(r"warning: process \S*/local pid \d+ killed by signal 9", log)
    assert len(kills) >= len(tokens), f"the shim did not kill local after each record; maillog:\n{log[-3000:]}"
    sent = re.findall(r"to=<[^>]*>, relay=none, .*status=sent \(recorded by the delivery agent", log)
    assert len(sent) == len(tokens), f"want {len(tokens)} sent lines from qmgr's settling; maillog:\n{log[-3000:]}"
    assert "status=deferred" not in log, f"a delivered recipient was logged as deferred:\n{log[-3000:]}"


def test_smtp_killed_after_marks_resends_to_nobody(mail_instance):
    """A relays one message with four recipients to B in one transaction; A's smtp dies right after it made
    the recipients' marks durable, before it logs or reports. smtp marks every recipient that shared the
    answer to DATA and makes them durable with one fdatasync, so that one kill finds all four recorded:
    qmgr settles them as sent and B gets one copy per recipient. (One fdatasync per recipient would die
    after the first: the other three were sent to B again.)"""
    if not SHIM.exists():
        pytest.fail(f"{SHIM} is not built; run ninja -C {BUILD}")
    def prepare(inst):
        if inst.name.endswith("-a"):
            inst.env.update({"LD_PRELOAD": str(SHIM), "POSTD_FAULTS_KILL_AFTER_MARK": "smtp"})
        else:
            # every recipient lands in TEST_USER's mailbox; smtpd accepts the extensions unchecked
            inst.postconf("recipient_delimiter = +", "local_recipient_maps =")

    a, b = relay_pair(mail_instance, "smtpmark", prepare=prepare)
    token = uuid.uuid4().hex
    rcpts = [f"{TEST_USER}+{i}@localhost" for i in range(4)]
    with smtplib.SMTP("127.0.0.1", a.port, timeout=60) as s:
        s.sendmail("alice@example.org", rcpts, message(token))
    wait_for(lambda: ": removed" in a.logtext(), 60, "A to remove the message")
    log = a.logtext()
    assert re.search(r"warning: process \S*/smtp pid \d+ killed by signal 9", log), \
        f"the shim did not kill smtp after the marks; A's maillog:\n{log[-3000:]}"
    sent = re.findall(r"status=sent \(recorded by the delivery agent", log)
    assert len(sent) == len(rcpts), f"want {len(rcpts)} recorded recipients settled by qmgr:\n{log[-3000:]}"
    wait_for(lambda: b.mbox(TEST_USER).count(f"Subject: fault {token}".encode()) >= len(rcpts), 60,
             "B to deliver a copy per recipient")
    time.sleep(1)  # bounded: a late duplicate would show up by now (B delivers in milliseconds)
    copies = b.mbox(TEST_USER).count(f"Subject: fault {token}".encode())
    assert copies == len(rcpts), f"B got {copies} copies for {len(rcpts)} recipients:\n{b.logtext()[-3000:]}"


def maildir_copies(token):
    """Files of ~TEST_USER/Maildir/{new,cur} holding token (other tests may deliver there at the same time)."""
    home = pathlib.Path(pwd.getpwnam(TEST_USER).pw_dir)
    found = []
    for sub in ("new", "cur"):
        d = home / "Maildir" / sub
        for p in (d.iterdir() if d.is_dir() else []):
            try:
                if f"fault {token}".encode() in p.read_bytes():
                    found.append(p)
            except FileNotFoundError:
                pass
    return found


@pytest.mark.parametrize("box", ["mbox", "maildir"])
def test_local_killed_after_append_delivers_once(mail_instance, box):
    """local's mailbox child dies, and local with it, right after the copy is durable in the mailbox (the
    mbox append's fsync, or the fsync of Maildir/new after the rename), before the recipient is marked
    delivered. qmgr retries through a new local, which finds the copy its attempt record points to and
    marks the recipient delivered without writing it again: one copy, one "status=sent" line. Without the
    attempt record the retry appends a second copy (and is killed again, for ever)."""
    if not SHIM.exists():
        pytest.fail(f"{SHIM} is not built; run ninja -C {BUILD}")
    # fcntl locks only: the dotlock of a killed local would keep the mailbox locked for 500 s (see relay_pair).
    inst = mail_instance(f"postfix-appendkill-{box}", main_extra="mailbox_delivery_lock = fcntl\n" + (
        "home_mailbox = Maildir/\n" if box == "maildir" else ""))
    home = pathlib.Path(pwd.getpwnam(TEST_USER).pw_dir)
    prefix = home / "Maildir" / "new" if box == "maildir" else inst.mail_spool / TEST_USER
    inst.env.update({"LD_PRELOAD": str(SHIM), "POSTD_FAULTS_KILL_AFTER_APPEND": f"local:{prefix}"})
    inst.start()
    tokens, qids = [uuid.uuid4().hex for _ in range(2)], []
    for token in tokens:  # every first attempt dies this way; the master starts the next local
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
            s.ehlo("client.example")
            s.mail("alice@example.org")
            s.rcpt(f"{TEST_USER}@localhost")
            code, text = s.data(message(token))
        assert code == 250, text
        qids.append(re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode())
    try:
        done = lambda: all(re.search(rf"{q}: removed", inst.logtext()) for q in qids)  # noqa: E731
        for _ in range(600):  # bounded: 60 s
            if done():
                break
            time.sleep(0.1)
        log = inst.logtext()
        assert done(), f"the messages were not delivered and removed in 60 s; maillog:\n{log[-3000:]}"
        if box == "maildir":
            copies = [len(maildir_copies(t)) for t in tokens]
        else:
            copies = [inst.mbox(TEST_USER).count(f"Subject: fault {t}".encode()) for t in tokens]
        assert copies == [1, 1], f"copies {copies}; maillog:\n{log[-3000:]}"
        kills = re.findall(r"warning: process \S*/local pid \d+ killed by signal 9", log)
        assert len(kills) >= len(tokens), f"the shim did not kill local after each append; maillog:\n{log[-3000:]}"
        for q in qids:
            sent = re.findall(rf"{q}: to=<{TEST_USER}@localhost>, relay=local, .*status=sent", log)
            assert len(sent) == 1, f"{q}: want one sent line, got {len(sent)}; maillog:\n{log_of(inst, q)}"
    finally:
        for t in tokens:
            for p in maildir_copies(t):
                p.unlink()
