"""test_postmulti.py: postmulti outside systemd, on temporary directories (POSTD_DEFAULT_CONFIG_DIR)."""
import os
import pathlib

import pytest

from conftest import run


@pytest.fixture
def multi(tmp_path):
    """A default instance in tmp_path/etc/postfix whose queue/data live under tmp_path too."""
    etc = tmp_path / "etc"
    d = etc / "postfix"
    d.mkdir(parents=True)
    (tmp_path / "spool").mkdir()
    (tmp_path / "lib").mkdir()
    (d / "main.cf").write_text(
        f"queue_directory = {tmp_path}/spool/postfix\ndata_directory = {tmp_path}/lib/postfix\n")
    (d / "master.cf").write_text("smtp inet n - n - - smtpd\npickup unix n - n 60 1 pickup\n")
    env = {"POSTD_DEFAULT_CONFIG_DIR": str(d)}

    def pm(*args, check=True):
        proc = run("postmulti", *args, env=env)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    pm.dir = d
    pm.root = tmp_path
    pm.env = env
    return pm


def maincf(path):
    """main.cf as a dict (last setting wins)."""
    out = {}
    for line in pathlib.Path(path, "main.cf").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def test_init_create_enable_list(multi):
    multi("-e", "init")
    m = maincf(multi.dir)
    assert m["multi_instance_enable"] == "yes"
    assert m["multi_instance_wrapper"] == "${command_directory}/postmulti -p --"

    multi("-I", "postfix-dept1", "-e", "create")
    inst = multi.root / "etc/postfix-dept1"
    m = maincf(inst)
    assert m["queue_directory"] == f"{multi.root}/spool/postfix-dept1"
    assert m["data_directory"] == f"{multi.root}/lib/postfix-dept1"
    assert m["multi_instance_name"] == "postfix-dept1"
    assert m["master_service_disable"] == "inet"
    assert m["authorized_submit_users"] == ""
    assert "multi_instance_enable" not in m  # created disabled
    assert "multi_instance_group" not in m
    assert (inst / "master.cf").read_text() == (multi.dir / "master.cf").read_text()
    assert maincf(multi.dir)["multi_instance_directories"] == str(inst)
    # The queue layout exists with Postfix's modes; the data directory belongs to the mail owner.
    assert (multi.root / "spool/postfix-dept1/maildrop").is_dir()
    assert oct((multi.root / "spool/postfix-dept1/maildrop").stat().st_mode & 0o7777) == "0o1730"
    assert (multi.root / "lib/postfix-dept1").stat().st_mode & 0o777 == 0o700

    # Postfix's column format: name, group, enabled, config directory.
    out = multi("-l").stdout
    assert out == (f"{'-':<15} {'-':<15} {'y':<9} {multi.dir}\n"
                   f"{'postfix-dept1':<15} {'-':<15} {'n':<9} {inst}\n")
    multi("-i", "postfix-dept1", "-e", "enable")
    assert maincf(inst)["multi_instance_enable"] == "yes"
    assert multi("-l", "-i", "postfix-dept1").stdout == f"{'postfix-dept1':<15} {'-':<15} {'y':<9} {inst}\n"
    multi("-i", "postfix-dept1", "-e", "disable")
    assert maincf(inst)["multi_instance_enable"] == "no"


def test_create_with_group_and_params_then_select(multi):
    multi("-I", "postfix-out", "-G", "mta", "-e", "create", "inet_interfaces=127.0.0.2")
    multi("-I", "postfix-in", "-G", "mta", "-e", "create")
    multi("-I", "postfix-other", "-e", "create")
    m = maincf(multi.root / "etc/postfix-out")
    assert m["multi_instance_group"] == "mta"
    assert m["inet_interfaces"] == "127.0.0.2"
    names = [line.split()[0] for line in multi("-l", "-g", "mta").stdout.splitlines()]
    assert names == ["postfix-out", "postfix-in"]
    names = [line.split()[0] for line in multi("-l", "-a", "-R").stdout.splitlines()]
    assert names == ["postfix-other", "postfix-in", "postfix-out", "-"]
    # -x runs a command per instance with MAIL_CONFIG pointing at it.
    out = multi("-x", "-g", "mta", "sh", "-c", 'echo "$MAIL_CONFIG"').stdout.split()
    assert out == [str(multi.root / "etc/postfix-out"), str(multi.root / "etc/postfix-in")]
    # assign: rename and regroup.
    multi("-i", "postfix-other", "-e", "assign", "-I", "postfix-renamed", "-G", "edge")
    m = maincf(multi.root / "etc/postfix-other")
    assert (m["multi_instance_name"], m["multi_instance_group"]) == ("postfix-renamed", "edge")


def test_refusals(multi):
    for bad in ("dept1", "postfix-", "postfix-a/b"):
        proc = multi("-I", bad, "-e", "create", check=False)
        assert proc.returncode != 0
        assert "postmulti: fatal:" in proc.stderr
    multi("-I", "postfix-a", "-e", "create")
    proc = multi("-I", "postfix-a", "-e", "create", check=False)
    assert proc.returncode != 0 and "already exists" in proc.stderr
    proc = multi("-i", "postfix-nosuch", "-e", "enable", check=False)
    assert proc.returncode != 0 and "no instance named postfix-nosuch" in proc.stderr
    proc = run("postmulti", "-l", env={**multi.env, "MAIL_CONFIG": "/etc/postfix-x"})
    assert proc.returncode != 0 and "MAIL_CONFIG" in proc.stderr
    # destroy: refused while enabled, refused while mail is queued, then removes everything.
    multi("-i", "postfix-a", "-e", "enable")
    proc = multi("-i", "postfix-a", "-e", "destroy", check=False)
    assert proc.returncode != 0 and "disable" in proc.stderr
    multi("-i", "postfix-a", "-e", "disable")
    queued = multi.root / "spool/postfix-a/deferred/A/ABCDEF123"
    queued.parent.mkdir(parents=True, exist_ok=True)
    queued.write_text("x")
    proc = multi("-i", "postfix-a", "-e", "destroy", check=False)
    assert proc.returncode != 0 and "still has mail" in proc.stderr
    queued.unlink()
    multi("-i", "postfix-a", "-e", "destroy")
    assert not (multi.root / "etc/postfix-a").exists()
    assert not (multi.root / "spool/postfix-a").exists()
    assert not (multi.root / "lib/postfix-a").exists()
    assert maincf(multi.dir)["multi_instance_directories"] == ""
    proc = multi("-i", "-", "-e", "destroy", check=False)
    assert proc.returncode != 0


def test_import_and_deport(multi):
    other = multi.root / "etc/postfix-old"
    other.mkdir()
    (other / "main.cf").write_text("multi_instance_name = postfix-old\n")
    (other / "master.cf").write_text("")
    multi("-e", "import", f"config_directory={other}")
    assert "postfix-old" in multi("-l").stdout
    multi("-i", "postfix-old", "-e", "deport")
    assert "postfix-old" not in multi("-l").stdout
    assert (other / "main.cf").exists()  # deport keeps the files


def test_p_runs_postfix_per_instance(multi):
    multi("-e", "init")
    multi("-I", "postfix-dept1", "-e", "create")
    # status runs for every instance (enabled or not), with each instance's own tag.
    proc = multi("-p", "status", check=False)
    assert "postfix/postfix-script: the Postfix mail system is not running" in proc.stderr
    assert "postfix-dept1/postfix-script: the Postfix mail system is not running" in proc.stderr
    assert proc.returncode == 1
    # start skips disabled instances; only the -i selection is touched.
    proc = multi("-i", "postfix-dept1", "-p", "start", check=False)
    assert proc.returncode == 0 and proc.stderr == ""
