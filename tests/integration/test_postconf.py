"""test_postconf.py: postconf against real main.cf/master.cf files in temporary directories."""
import os
import shutil
import stat

from conftest import ROOT, run

MASTER_CF = """\
# comment
smtp      inet  n       -       n       -       -       smtpd
submission inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=$my_submit_restrictions
127.0.0.1:10025 inet n - n - 10 smtpd
pickup    unix  n       -       n       60      1       pickup
relay     unix  -       -       n       -       -       smtp
"""


def write(confdir, main_cf, master_cf=MASTER_CF):
    (confdir / "main.cf").write_text(main_cf)
    (confdir / "master.cf").write_text(master_cf)


def lines(text):
    return [line for line in text.splitlines() if line]


def test_edit_then_show_relayhost(confdir):
    write(confdir, "# keep me\nmyhostname = host.example.com\n")
    r = run("postconf", "-c", confdir, "-e", "relayhost = [127.0.0.1]:2526")
    assert r.returncode == 0, r.stderr
    r = run("postconf", "-c", confdir, "-h", "relayhost")
    assert r.returncode == 0
    assert r.stdout == "[127.0.0.1]:2526\n"
    assert (confdir / "main.cf").read_text() == (
        "# keep me\nmyhostname = host.example.com\nrelayhost = [127.0.0.1]:2526\n")


def test_edit_forms_keep_comments_order_and_mode(confdir):
    write(confdir, "# top\n\nmydestination = a,\n   b\n# middle\nrelayhost = old\ntail = x  \n")
    os.chmod(confdir / "main.cf", 0o640)
    r = run("postconf", "-c", confdir, "-e", "authorized_submit_users=static:anyone",
            "mydestination = localhost", "relayhost=")
    assert r.returncode == 0, r.stderr
    assert (confdir / "main.cf").read_text() == (
        "# top\n\nmydestination = localhost\n# middle\nrelayhost =\ntail = x  \n"
        "authorized_submit_users = static:anyone\n")
    assert stat.S_IMODE(os.stat(confdir / "main.cf").st_mode) == 0o640
    assert not [p for p in os.listdir(confdir) if ".tmp" in p]


def test_edit_rejects_bad_assignment(confdir):
    write(confdir, "a = 1\n")
    r = run("postconf", "-c", confdir, "-e", "no_equals_sign")
    assert r.returncode == 1
    assert "postconf: fatal: bad parameter assignment" in r.stderr
    assert (confdir / "main.cf").read_text() == "a = 1\n"


def test_expand_myorigin(confdir):
    write(confdir, "myhostname = mx.dept.example.org\nmydomain = dept.example.org\nmyorigin = $mydomain\n")
    r = run("postconf", "-c", confdir, "-x", "-h", "myorigin")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "dept.example.org\n"
    r = run("postconf", "-c", confdir, "-h", "myorigin")
    assert r.stdout == "$mydomain\n"
    r = run("postconf", "-c", confdir, "-x", "mydestination", "smtpd_banner")
    assert r.stdout == ("mydestination = mx.dept.example.org, localhost.dept.example.org, localhost\n"
                        "smtpd_banner = mx.dept.example.org ESMTP Postfix\n")


def test_mydomain_derived_from_myhostname(confdir):
    write(confdir, "myhostname = smtp.sales.example.com\n")
    r = run("postconf", "-c", confdir, "-h", "-x", "mydomain", "myorigin")
    assert r.stdout == "sales.example.com\nsmtp.sales.example.com\n"


def test_n_lists_only_main_cf_sorted(confdir):
    write(confdir, "relayhost = [172.16.1.11]\ninet_interfaces = all\n"
                   "mynetworks = 127.0.0.1, 172.16.10.5,\n  172.16.10.6\n")
    r = run("postconf", "-c", confdir, "-n")
    assert r.returncode == 0
    assert r.stderr == ""
    assert r.stdout == ("inet_interfaces = all\n"
                        "mynetworks = 127.0.0.1, 172.16.10.5, 172.16.10.6\n"
                        "relayhost = [172.16.1.11]\n")


def test_all_parameters_sorted_with_values(confdir):
    write(confdir, "relayhost = x\n")
    r = run("postconf", "-c", confdir)
    assert r.returncode == 0
    out = lines(r.stdout)
    names = [line.split(" = ")[0].rstrip(" =") for line in out]
    assert names == sorted(names)
    assert len(out) > 200
    assert "relayhost = x" in out
    assert "relay_domains = " in r.stdout.splitlines()
    assert "myorigin = $myhostname" in out
    assert f"config_directory = {confdir}" in out


def test_d_shows_documented_defaults(confdir):
    write(confdir, "myorigin = changed\nmaximal_queue_lifetime = 1d\n")
    r = run("postconf", "-c", confdir, "-d", "myorigin", "mydestination", "smtpd_banner", "syslog_name",
            "maximal_queue_lifetime", "queue_run_delay", "message_size_limit", "smtpd_relay_restrictions",
            "mynetworks")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "myorigin = $myhostname\n"
        "mydestination = $myhostname, localhost.$mydomain, localhost\n"
        "smtpd_banner = $myhostname ESMTP $mail_name\n"
        "syslog_name = ${multi_instance_name?{$multi_instance_name}:{postfix}}\n"
        "maximal_queue_lifetime = 5d\n"
        "queue_run_delay = 300s\n"
        "message_size_limit = 10240000\n"
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination\n"
        "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n")
    r = run("postconf", "-c", confdir, "-d", "-x", "-h", "syslog_name")
    assert r.stdout == "postfix\n"


def test_syslog_name_follows_instance_name(confdir):
    write(confdir, "multi_instance_name = postfix-dept1\n")
    r = run("postconf", "-c", confdir, "-x", "-h", "syslog_name")
    assert r.stdout == "postfix-dept1\n"


def test_unknown_and_unused_parameters(confdir):
    write(confdir, "foo = bar\nmy_submit_restrictions = permit_sasl_authenticated, reject\n"
                   "relay_destination_concurrency_limit = 5\nnosvc_destination_concurrency_limit = 5\n")
    r = run("postconf", "-c", confdir, "-h", "relayhost", "no_such_param")
    assert r.returncode == 0
    assert r.stdout == "\n"
    err = r.stderr.splitlines()
    assert f"postconf: warning: {confdir}/main.cf: unused parameter: foo=bar" in err
    assert f"postconf: warning: {confdir}/main.cf: unused parameter: nosvc_destination_concurrency_limit=5" in err
    assert "postconf: warning: no_such_param: unknown parameter" in err
    # Referenced from master.cf -o, and a per-service parameter of a master.cf service: both used.
    assert not any("my_submit_restrictions" in line for line in err)
    assert not any("relay_destination_concurrency_limit" in line for line in err)
    assert len(err) == 3


def test_missing_config_dir_is_fatal(tmp_path):
    r = run("postconf", "-c", tmp_path / "x", "-n")
    assert r.returncode == 1
    assert r.stderr == f"postconf: fatal: open {tmp_path}/x/main.cf: No such file or directory\n"
    r = run("postconf", "-c", tmp_path / "x", "-e", "a=b")
    assert r.returncode == 1
    assert "No such file or directory" in r.stderr


def test_mail_config_environment(confdir):
    write(confdir, "mail_name = EnvName\n")
    r = run("postconf", "-h", "mail_name", env={"MAIL_CONFIG": str(confdir)})
    assert r.stdout == "EnvName\n"


def test_remove_and_comment_out(confdir):
    write(confdir, "# c\na = 1\nrelayhost = x\nmydestination = d1,\n  d2\nb = 2\n")
    r = run("postconf", "-c", confdir, "-X", "a", "b")
    assert r.returncode == 0, r.stderr
    r = run("postconf", "-c", confdir, "-#", "mydestination")
    assert r.returncode == 0, r.stderr
    assert (confdir / "main.cf").read_text() == "# c\nrelayhost = x\n#mydestination = d1,\n#  d2\n"
    r = run("postconf", "-c", confdir, "-n")
    assert r.stdout == "relayhost = x\n"


def test_M_lists_services_in_postfix_columns(confdir):
    write(confdir, "")
    r = run("postconf", "-c", confdir, "-M")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "smtp       inet  n       -       n       -       -       smtpd"
    assert out[1] == ("submission inet  n       -       n       -       -       smtpd "
                      "-o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes "
                      "-o smtpd_client_restrictions=$my_submit_restrictions")
    assert out[2].startswith("127.0.0.1:10025 inet  n       -       n       -       10      smtpd")
    assert len(out) == 5
    r = run("postconf", "-c", confdir, "-M", "pickup/unix")
    assert r.stdout == "pickup     unix  n       -       n       60      1       pickup\n"
    r = run("postconf", "-c", confdir, "-M", "smtp")
    assert r.stdout == "smtp       inet  n       -       n       -       -       smtpd\n"
    r = run("postconf", "-c", confdir, "-M", "relay/inet")
    assert r.stdout == ""


def test_F_fields(confdir):
    write(confdir, "")
    r = run("postconf", "-c", confdir, "-F", "smtp/inet")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("smtp/inet/service = smtp\n"
                        "smtp/inet/type = inet\n"
                        "smtp/inet/private = n\n"
                        "smtp/inet/unprivileged = -\n"
                        "smtp/inet/chroot = n\n"
                        "smtp/inet/wakeup = -\n"
                        "smtp/inet/process_limit = -\n"
                        "smtp/inet/command = smtpd\n")
    r = run("postconf", "-c", confdir, "-F", "pickup/unix/wakeup", "relay/unix/command")
    assert r.stdout == "pickup/unix/wakeup = 60\nrelay/unix/command = smtp\n"


def test_P_service_parameters(confdir):
    write(confdir, "")
    r = run("postconf", "-c", confdir, "-P")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("submission/inet/smtpd_tls_security_level = encrypt\n"
                        "submission/inet/smtpd_sasl_auth_enable = yes\n"
                        "submission/inet/smtpd_client_restrictions = $my_submit_restrictions\n")
    r = run("postconf", "-c", confdir, "-P", "submission/inet/smtpd_sasl_auth_enable")
    assert r.stdout == "submission/inet/smtpd_sasl_auth_enable = yes\n"


def test_M_without_master_cf_is_fatal(confdir):
    (confdir / "master.cf").unlink()
    r = run("postconf", "-c", confdir, "-M")
    assert r.returncode == 1
    assert r.stderr == f"postconf: fatal: open {confdir}/master.cf: No such file or directory\n"


def test_syntax_errors_are_warnings_not_failures(confdir):
    write(confdir, "good = 1\nthis is wrong\nrelayhost = r\n")
    r = run("postconf", "-c", confdir, "-h", "relayhost")
    assert r.returncode == 0
    assert r.stdout == "r\n"
    assert f"{confdir}/main.cf, line 2: missing '=' after parameter name" in r.stderr


def test_shipped_main_cf_is_clean(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    shutil.copy(ROOT / "conf" / "main.cf", d / "main.cf")
    shutil.copy(ROOT / "conf" / "master.cf", d / "master.cf")
    r = run("postconf", "-c", d, "-n")
    assert r.returncode == 0
    assert r.stderr == ""
    assert "inet_interfaces = localhost" in r.stdout.splitlines()
    r = run("postconf", "-c", d, "-x", "-h", "mydestination")
    assert "localhost" in r.stdout
