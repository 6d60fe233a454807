"""test_post_install.py: postfix set-permissions / post-install creates and repairs an instance, and re-runs safely."""
import grp
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import BIN, run, tool

MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"


@pytest.fixture
def inst(tmp_path):
    """A default instance whose every path (queue, data, commands, aliases) is under tmp_path."""
    try:
        pwd.getpwnam(MAIL_OWNER)
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        pytest.fail(f"accounts {MAIL_OWNER}/{SETGID_GROUP} missing (dev.sh creates them)")
    if os.geteuid() != 0:
        pytest.skip("set-permissions changes owners: needs root")
    etc, bin_ = tmp_path / "etc", tmp_path / "bin"
    for d in (etc, bin_, tmp_path / "spool", tmp_path / "lib"):
        d.mkdir()
    # Copies: set-permissions changes owner and mode of postdrop/postqueue, never those of the build.
    for name in ("postdrop", "postqueue", "postalias"):
        shutil.copy2(tool(name), bin_ / name)
    (etc / "main.cf").write_text(
        f"queue_directory = {tmp_path}/spool/postfix\n"
        f"data_directory = {tmp_path}/lib/postfix\n"
        f"command_directory = {bin_}\n"
        f"alias_database = hash:{etc}/aliases\n"
        f"alias_maps = hash:{etc}/aliases\n")
    (etc / "master.cf").write_text("")
    inst = type("Inst", (), {})()
    inst.root, inst.etc, inst.bin = tmp_path, etc, bin_
    inst.queue = tmp_path / "spool/postfix"
    inst.data = tmp_path / "lib/postfix"
    return inst


def mode_owner(path):
    st = os.lstat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)


def alias_lookup(inst, key):
    return run("postalias", "-q", key, f"hash:{inst.etc}/aliases").stdout.strip()


def assert_installed(inst):
    assert mode_owner(inst.queue) == (0o755, "root", "root")
    assert mode_owner(inst.queue / "maildrop") == (0o1730, MAIL_OWNER, SETGID_GROUP)
    assert mode_owner(inst.queue / "public") == (0o710, MAIL_OWNER, SETGID_GROUP)
    assert mode_owner(inst.queue / "pid") == (0o755, "root", "root")
    for d in ("incoming", "active", "deferred", "hold", "corrupt", "bounce", "defer", "trace", "private",
              "saved", "flush"):
        mode, owner, _ = mode_owner(inst.queue / d)
        assert (mode, owner) == (0o700, MAIL_OWNER), d
    assert mode_owner(inst.data)[:2] == (0o700, MAIL_OWNER)
    for prog in ("postdrop", "postqueue"):
        assert mode_owner(inst.bin / prog) == (0o2755, "root", SETGID_GROUP), prog
    assert alias_lookup(inst, "postmaster") == "root"
    assert alias_lookup(inst, "mailer-daemon") == "postmaster"


def test_fresh_instance_is_created(inst):
    r = run("postfix", "-c", inst.etc, "set-permissions")
    assert r.returncode == 0, r.stderr
    assert f"created {inst.etc}/aliases" in r.stderr
    assert_installed(inst)


def test_rerun_repairs_and_keeps_what_exists(inst):
    r = run("postfix", "post-install", env={"MAIL_CONFIG": str(inst.etc)})
    assert r.returncode == 0, r.stderr
    # The operator edits the aliases, mail is queued, someone breaks modes and owners.
    aliases = inst.etc / "aliases"
    aliases.write_text("postmaster: alice\nalice: /dev/null\n")
    run("newaliases", "-C", inst.etc, check=True)
    queued = inst.queue / "deferred" / "ABC123"
    queued.write_bytes(b"a queued message")
    os.chmod(inst.queue / "maildrop", 0o777)
    os.chown(inst.queue / "public", 0, 0)
    os.chmod(inst.bin / "postdrop", 0o755)
    shutil.rmtree(inst.queue / "hold")
    before = aliases.stat()

    for form in (("-c", str(inst.etc), "set-permissions"), ("-c", str(inst.etc), "post-install", "create-missing")):
        r = run("postfix", *form)
        assert r.returncode == 0, (form, r.stderr)
        assert "created" not in r.stderr
        after = aliases.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert aliases.read_text() == "postmaster: alice\nalice: /dev/null\n"
        assert alias_lookup(inst, "postmaster") == "alice"  # the database follows the operator's file
        assert queued.read_bytes() == b"a queued message"
        assert mode_owner(inst.queue / "maildrop") == (0o1730, MAIL_OWNER, SETGID_GROUP)
        assert mode_owner(inst.queue / "public") == (0o710, MAIL_OWNER, SETGID_GROUP)
        assert mode_owner(inst.bin / "postdrop") == (0o2755, "root", SETGID_GROUP)
        assert (inst.queue / "hold").is_dir()


def test_missing_alias_file_only_is_recreated(inst):
    run("postfix", "-c", inst.etc, "set-permissions", check=True)
    (inst.etc / "aliases").unlink()
    (inst.etc / "aliases.db").unlink()
    r = run("postfix", "-c", inst.etc, "set-permissions")
    assert r.returncode == 0, r.stderr
    assert alias_lookup(inst, "postmaster") == "root"


def test_no_alias_database_means_no_alias_file(inst):
    with open(inst.etc / "main.cf", "a") as f:
        f.write("alias_database =\n")
    r = run("postfix", "-c", inst.etc, "set-permissions")
    assert r.returncode == 0, r.stderr
    assert not (inst.etc / "aliases").exists()
    assert (inst.queue / "maildrop").is_dir()


def test_unknown_mail_owner_is_named(inst):
    with open(inst.etc / "main.cf", "a") as f:
        f.write("mail_owner = no-such-postd-user\n")
    r = run("postfix", "-c", inst.etc, "set-permissions")
    assert r.returncode != 0
    assert "unknown mail_owner account: no-such-postd-user" in r.stderr
    assert f"{inst.etc}/main.cf" in r.stderr
    assert not inst.queue.exists()


def test_bad_argument_and_non_root_are_refused(inst):
    r = run("postfix", "-c", inst.etc, "post-install", "frobnicate")
    assert r.returncode != 0 and 'unknown argument "frobnicate"' in r.stderr
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp_path is under a 0700 directory: nobody must be able to read this main.cf.
    etc = pathlib.Path(tempfile.mkdtemp(prefix="postd-post-install-", dir="/tmp"))
    try:
        os.chmod(etc, 0o755)
        shutil.copy(inst.etc / "main.cf", etc / "main.cf")
        os.chmod(etc / "main.cf", 0o644)
        proc = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                               str(BIN / "postfix"), "-c", str(etc), "set-permissions"],
                              capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(etc)
    assert proc.returncode != 0
    assert "must run as root" in proc.stderr, proc.stderr
    assert not inst.queue.exists()


def test_missing_setgid_program_is_an_error(inst):
    (inst.bin / "postqueue").unlink()
    r = run("postfix", "-c", inst.etc, "set-permissions")
    assert r.returncode != 0
    assert f"set-gid {inst.bin}/postqueue" in r.stderr and "command_directory" in r.stderr
    # Everything else is still done.
    assert mode_owner(inst.bin / "postdrop") == (0o2755, "root", SETGID_GROUP)
    assert (inst.queue / "maildrop").is_dir()


def test_alternatives_names_work(inst):
    """A package installs sendmail, mailq and newaliases as NAME.postd behind alternatives(8) links."""
    run("postfix", "-c", inst.etc, "set-permissions", check=True)
    for name in ("sendmail", "newaliases"):
        shutil.copy2(tool(name), inst.bin / f"{name}.postd")
    shutil.copy2(tool("sendmail"), inst.bin / "mailq.postd")
    (inst.etc / "aliases").write_text("postmaster: bob\n")
    # sendmail -bi rebuilds through postalias: there is no command_directory/newaliases in a package.
    assert not (inst.bin / "newaliases").exists()
    r = subprocess.run([str(inst.bin / "sendmail.postd"), "-C", str(inst.etc), "-bi"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert alias_lookup(inst, "postmaster") == "bob"
    (inst.etc / "aliases").write_text("postmaster: carol\n")
    r = subprocess.run([str(inst.bin / "newaliases.postd"), "-C", str(inst.etc)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert alias_lookup(inst, "postmaster") == "carol"
    r = subprocess.run([str(inst.bin / "mailq.postd"), "-C", str(inst.etc)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and r.stdout == "Mail queue is empty\n", (r.stdout, r.stderr)
