"""test_postfix_check.py: `postfix check` finds configuration problems before start, one line each."""
import os
import pwd

from conftest import run

SUPPORTED = "btree, cidr, hash, inline, lmdb, pcre, regexp, static, texthash, unix"


MAIL_OWNER = "postfix"  # the account dev.sh creates, as Postfix packages do


def instance(tmp_path, confdir, extra=""):
    """A self-contained instance with its directories under tmp_path (data_directory owned by
    the mail owner, as postfix check requires)."""
    dirs = {}
    for name in ("queue", "data", "daemon", "command"):
        d = tmp_path / name
        d.mkdir()
        dirs[name] = d
    owner = pwd.getpwnam(MAIL_OWNER)
    os.chown(dirs["data"], owner.pw_uid, owner.pw_gid)
    (confdir / "main.cf").write_text(
        f"queue_directory = {dirs['queue']}\n"
        f"data_directory = {dirs['data']}\n"
        f"daemon_directory = {dirs['daemon']}\n"
        f"command_directory = {dirs['command']}\n"
        f"mail_owner = {MAIL_OWNER}\n"
        "setgid_group = postdrop\n"
        "alias_maps = inline:{ postmaster=root }\n"
        "alias_database =\n"
        "local_recipient_maps =\n"
        + extra)
    return dirs


def test_clean_instance_passes(tmp_path, confdir):
    instance(tmp_path, confdir)
    r = run("postfix", "-c", confdir, "check")
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr


def test_sdbm_table_names_type_parameter_and_supported_types(tmp_path, confdir):
    table = tmp_path / "transport"
    table.write_text("example.net smtp:[127.0.0.1]:2526\n")
    instance(tmp_path, confdir, f"transport_maps = sdbm:{table}\n")
    r = run("postfix", "-c", confdir, "check")
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert errors == [
        f"postfix: error: {confdir}/main.cf: transport_maps = sdbm:{table}: "
        f"unsupported dictionary type: sdbm (supported types: {SUPPORTED})"
    ]


def test_hash_table_without_db_then_postmap_fixes_it(tmp_path, confdir):
    table = tmp_path / "transport"
    table.write_text("example.net smtp:[127.0.0.1]:2526\n")
    instance(tmp_path, confdir, f"transport_maps = hash:{table}\n")
    r = run("postfix", "-c", confdir, "check")
    assert r.returncode != 0
    assert f"transport_maps = hash:{table}: open database {table}.db" in r.stderr
    assert "postmap" in r.stderr  # the line names the fix
    run("postmap", f"hash:{table}", check=True)
    r = run("postfix", "-c", confdir, "check")
    assert r.returncode == 0, r.stderr


def test_bad_master_cf_override_table_is_reported_with_its_line(tmp_path, confdir):
    instance(tmp_path, confdir)
    (confdir / "master.cf").write_text(
        "smtp      inet  n       -       n       -       -       smtpd\n"
        "2525      inet  n       -       n       -       -       smtpd\n"
        "  -o smtpd_client_restrictions=check_client_access,sdbm:/etc/postfix/access\n")
    r = run("postfix", "-c", confdir, "check")
    assert r.returncode != 0
    assert "master.cf line 2 (service 2525/inet)" in r.stderr
    assert "unsupported dictionary type: sdbm" in r.stderr


def test_missing_directory_and_account_each_get_one_line(tmp_path, confdir):
    dirs = instance(tmp_path, confdir)
    dirs["queue"].rmdir()
    with open(confdir / "main.cf", "a") as f:
        f.write("mail_owner = no-such-user-postd\n")
    r = run("postfix", "-c", confdir, "check")
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 2, r.stderr
    assert any(f"queue_directory = {dirs['queue']}: No such file or directory" in e for e in errors)
    assert any("mail_owner = no-such-user-postd: no such user account" in e for e in errors)


def test_start_refuses_unsupported_table_type(mail_instance):
    """Seed 004's trap: an sdbm: table must stop the start, not surprise at mail time."""
    inst = mail_instance(master_cf="{port} inet n - n - - smtpd\n")
    inst.postconf("transport_maps = sdbm:/etc/postfix/transport")
    r = inst.postfix("start")
    assert r.returncode != 0
    assert "transport_maps = sdbm:/etc/postfix/transport: unsupported dictionary type: sdbm" in r.stderr
    assert "not starting" in r.stderr
    assert inst.master_pid() is None


def test_master_refuses_unsupported_table_type_in_master_cf(mail_instance):
    """The master itself checks (under systemd nobody runs postfix start): -o tables included."""
    inst = mail_instance(master_cf="{port} inet n - n - - smtpd\n"
                         "  -o smtpd_client_restrictions=check_client_access,sdbm:/etc/postfix/access\n")
    r = inst.postfix("start")
    assert r.returncode != 0
    # The config never loaded, so the master reports on stderr (the journal, under systemd).
    assert "master.cf line 1 (service " in r.stderr
    assert "smtpd_client_restrictions = sdbm:/etc/postfix/access: unsupported dictionary type" in r.stderr
    assert "not using this configuration" in r.stderr
    assert inst.master_pid() is None


def test_traps_are_warned_about(tmp_path, confdir):
    """SCENARIOS A, B, G: inet disabled by master_service_disable, a single public inet_interfaces
    address without smtp_bind_address, and two instances on one port."""
    instance(tmp_path, confdir, "master_service_disable = inet\ninet_interfaces = 192.0.2.10\n")
    (confdir / "master.cf").write_text("2525      inet  n       -       n       -       -       smtpd\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.cf").write_text("multi_instance_enable = yes\ninet_interfaces = all\n")
    (other / "master.cf").write_text("2525      inet  n       -       n       -       -       smtpd\n")
    default = tmp_path / "default"
    default.mkdir()
    (default / "main.cf").write_text(f"multi_instance_directories = {other} {confdir}\n"
                                     "inet_interfaces = loopback-only\n")
    (default / "master.cf").write_text("smtp      inet  n       -       n       -       -       smtpd\n")
    env = {"POSTD_DEFAULT_CONFIG_DIR": str(default)}

    r = run("postfix", "-c", confdir, "check", env=env)
    assert r.returncode == 0, r.stderr  # warnings only
    warnings = [line for line in r.stderr.splitlines() if ": warning: " in line]
    assert any("service 2525/inet is disabled by master_service_disable = inet" in w for w in warnings), r.stderr
    assert any("inet_interfaces = 192.0.2.10 is a single non-loopback address" in w and "smtp_bind_address" in w
               for w in warnings), r.stderr
    # disabled: no port clash reported yet; enabling inet makes 192.0.2.10:2525 clash with 0.0.0.0:2525
    assert not any("listens on 192.0.2.10:2525" in w for w in warnings)
    run("postconf", "-c", confdir, "-e", "master_service_disable =", check=True)
    r = run("postfix", "-c", confdir, "check", env=env)
    assert any(f"service 2525/inet listens on 192.0.2.10:2525, and so does service 2525/inet of the instance "
               f"in {other} (0.0.0.0:2525)" in line for line in r.stderr.splitlines()), r.stderr
    # smtp_bind_address answers the source address warning
    run("postconf", "-c", confdir, "-e", "smtp_bind_address = 192.0.2.10", check=True)
    r = run("postfix", "-c", confdir, "check", env=env)
    assert "single non-loopback address" not in r.stderr


# Outside systemd (no /run/systemd/system) the port must be free; under systemd it belongs to the
# instance's socket unit, so it is not probed. POSTD_SYSTEMD_BOOTED makes both hosts run both cases.
OUTSIDE_SYSTEMD = {"POSTD_SYSTEMD_BOOTED": "0"}
UNDER_SYSTEMD = {"POSTD_SYSTEMD_BOOTED": "1"}


def test_port_taken_by_another_process_is_warned_about(tmp_path, confdir):
    import socket
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        instance(tmp_path, confdir, "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n")
        (confdir / "master.cf").write_text(f"{port}     inet  n       -       n       -       -       smtpd\n")
        r = run("postfix", "-c", confdir, "check", env=OUTSIDE_SYSTEMD)
        assert f"master.cf service {port}/inet: 127.0.0.1:{port} is in use by another process" in r.stderr, r.stderr
        # Under systemd the listener is the socket unit's: no probe, no warning.
        r = run("postfix", "-c", confdir, "check", env=UNDER_SYSTEMD)
        assert "in use by another process" not in r.stderr, r.stderr
    # once the other process is gone, the warning is too
    r = run("postfix", "-c", confdir, "check", env=OUTSIDE_SYSTEMD)
    assert "in use by another process" not in r.stderr, r.stderr


def test_settings_postd_does_not_act_on_are_named(mail_instance):
    # A copy postd would not make, next to settings that only turn features off (what postd does anyway).
    inst = mail_instance(main_extra="always_bcc = archive@example.org\nbiff = no\nmailbox_size_limit = 0\n")
    r = inst.cmd("postfix", "check")
    assert ("parameter always_bcc is not implemented by postd yet: the setting "
            "\"archive@example.org\" has no effect") in r.stderr, r.stderr
    assert "biff" not in r.stderr and "mailbox_size_limit" not in r.stderr, r.stderr
    # The master says it too at every start, for instances nobody runs postfix check on.
    inst.start()
    inst.wait_log(r"warning: .*main\.cf: parameter always_bcc is not implemented by postd yet")


def test_bad_milter_settings_are_named(mail_instance):
    inst = mail_instance(main_extra="smtpd_milters = inet:127.0.0.1, { unix:/run/ok.sock, default_action=maybe }\n"
                                    "milter_default_action = panic\n")
    r = inst.cmd("postfix", "check")
    assert "smtpd_milters: bad milter \"inet:127.0.0.1\": \"inet:127.0.0.1\" is not inet:host:port" in r.stderr, \
        r.stderr
    assert "default_action=maybe: expected accept, tempfail, reject or quarantine" in r.stderr, r.stderr
    assert "milter_default_action = panic: expected accept, tempfail, reject or quarantine" in r.stderr, r.stderr
    inst.postconf("smtpd_milters = inet:127.0.0.1:8891, unix:/run/f.sock", "milter_default_action = accept")
    r = inst.cmd("postfix", "check")
    assert "milter" not in r.stderr, r.stderr
