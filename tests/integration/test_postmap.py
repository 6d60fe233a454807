"""test_postmap.py: postmap, postalias and newaliases build, query, dump and update GDBM tables."""
import os

from conftest import run

SUPPORTED = "btree, cidr, hash, inline, lmdb, pcre, regexp, static, texthash, unix"


def test_postmap_builds_and_queries(tmp_path):
    src = tmp_path / "transport"
    src.write_text("# transport table\n"
                   "example.net   :[mail.isp.example]\n"
                   ".example.net  :[mail.isp.example]\n"
                   "Mixed.Example.COM  smtp:[relay.example]:587\n")
    os.chmod(src, 0o640)
    r = run("postmap", f"hash:{src}")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    db = tmp_path / "transport.db"
    assert db.exists()
    assert (db.stat().st_mode & 0o777) == 0o640
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]

    r = run("postmap", "-q", "example.net", f"hash:{src}")
    assert (r.returncode, r.stdout) == (0, ":[mail.isp.example]\n")
    r = run("postmap", "-q", "MIXED.example.com", f"hash:{src}")
    assert (r.returncode, r.stdout) == (0, "smtp:[relay.example]:587\n")
    r = run("postmap", "-q", "example.org", f"hash:{src}")
    assert (r.returncode, r.stdout) == (1, "")

    # a bare file name means default_database_type (hash)
    r = run("postmap", "-q", ".example.net", str(src))
    assert (r.returncode, r.stdout) == (0, ":[mail.isp.example]\n")


def test_postmap_query_stdin_and_dump(tmp_path):
    src = tmp_path / "access"
    src.write_text("a.example OK\nb.example REJECT\n")
    run("postmap", src, check=True)
    r = run("postmap", "-q", "-", f"hash:{src}", input="b.example\nnope\nA.EXAMPLE\n")
    assert r.returncode == 0
    assert r.stdout == "b.example\tREJECT\nA.EXAMPLE\tOK\n"
    r = run("postmap", "-q", "-", f"hash:{src}", input="nope\n")
    assert (r.returncode, r.stdout) == (1, "")

    r = run("postmap", "-s", f"hash:{src}")
    assert r.returncode == 0
    assert sorted(r.stdout.splitlines()) == ["a.example\tOK", "b.example\tREJECT"]


def test_postmap_rebuild_replaces_and_warns_on_duplicates(tmp_path):
    src = tmp_path / "virtual"
    src.write_text("x@example.com first\nnovalue\nX@Example.com second\n")
    r = run("postmap", src)
    assert r.returncode == 0
    assert f"postmap: warning: {src}, line 2: expected format: key whitespace value" in r.stderr
    assert f'postmap: warning: {src}, line 3: duplicate entry: "x@example.com"' in r.stderr
    assert run("postmap", "-q", "x@example.com", src).stdout == "first\n"

    src.write_text("y@example.com only\n")
    run("postmap", src, check=True)
    assert run("postmap", "-q", "x@example.com", src).returncode == 1
    assert run("postmap", "-q", "y@example.com", src).stdout == "only\n"


def test_postmap_no_fold(tmp_path):
    src = tmp_path / "t"
    src.write_text("Key value\n")
    run("postmap", "-f", src, check=True)
    r = run("postmap", "-s", src)
    assert r.stdout == "Key\tvalue\n"


def test_postmap_incremental_and_delete(tmp_path):
    src = tmp_path / "t"
    src.write_text("a 1\n")
    run("postmap", src, check=True)
    r = run("postmap", "-i", src, input="b 2\na 9\n")
    assert r.returncode == 0
    assert 'duplicate entry: "a"' in r.stderr
    assert sorted(run("postmap", "-s", src).stdout.splitlines()) == ["a\t1", "b\t2"]
    r = run("postmap", "-i", "-r", src, input="a 9\n")
    assert r.returncode == 0 and r.stderr == ""
    assert run("postmap", "-q", "a", src).stdout == "9\n"
    assert run("postmap", "-d", "a", src).returncode == 0
    assert run("postmap", "-q", "a", src).returncode == 1
    assert run("postmap", "-d", "a", src).returncode == 1
    assert run("postmap", "-q", "b", src).stdout == "2\n"


def test_postmap_errors(tmp_path):
    r = run("postmap", f"sdbm:{tmp_path}/transport")
    assert r.returncode == 1
    assert r.stderr == f"postmap: fatal: unsupported dictionary type: sdbm (supported types: {SUPPORTED})\n"

    r = run("postmap", "/nonexistent/dir/transport")
    assert r.returncode == 1
    assert r.stderr == "postmap: fatal: open /nonexistent/dir/transport: No such file or directory\n"

    r = run("postmap", "-q", "x", "hash:/nonexistent/dir/transport")
    assert r.returncode == 1
    assert r.stderr == ("postmap: fatal: open database /nonexistent/dir/transport.db: "
                        "No such file or directory\n")

    r = run("postmap")
    assert r.returncode == 1 and "usage" in r.stderr


def test_postmap_queries_other_table_types(tmp_path):
    cidr = tmp_path / "clients.cidr"
    cidr.write_text("192.0.2.0/24 OK\n[2001:db8::]/32 REJECT\n")
    assert run("postmap", "-q", "192.0.2.5", f"cidr:{cidr}").stdout == "OK\n"
    assert run("postmap", "-q", "2001:db8::7", f"cidr:{cidr}").stdout == "REJECT\n"
    regexp = tmp_path / "re"
    regexp.write_text("/^(.*)@old\\.example$/ $1@new.example\n")
    assert run("postmap", "-q", "joe@old.example", f"regexp:{regexp}").stdout == "joe@new.example\n"
    assert run("postmap", "-q", "b", "inline:{a=1, b=2}").stdout == "2\n"
    assert run("postmap", "-q", "anything", "static:anyone").stdout == "anyone\n"
    r = run("postmap", f"cidr:{cidr}")
    assert r.returncode == 1 and "nothing to build" in r.stderr


def test_postalias_builds_and_queries(tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("# aliases\n"
                       "postmaster: root\n"
                       "Root: linux\n"
                       "team: a,\n"
                       "  b, :include:/etc/postfix/team\n"
                       "broken line\n")
    r = run("postalias", f"hash:{aliases}")
    assert r.returncode == 0
    assert f"postalias: warning: {aliases}, line 6: need name:value pair" in r.stderr
    assert (tmp_path / "aliases.db").exists()
    assert run("postalias", "-q", "postmaster", f"hash:{aliases}").stdout == "root\n"
    assert run("postalias", "-q", "root", f"hash:{aliases}").stdout == "linux\n"
    assert run("postalias", "-q", "team", aliases).stdout == "a,  b, :include:/etc/postfix/team\n"
    assert run("postalias", "-q", "nobody", aliases).returncode == 1
    r = run("postalias", f"sdbm:{aliases}")
    assert r.stderr == f"postalias: fatal: unsupported dictionary type: sdbm (supported types: {SUPPORTED})\n"


def test_newaliases_rebuilds_alias_database(confdir, tmp_path):
    one = tmp_path / "aliases"
    two = tmp_path / "more-aliases"
    one.write_text("postmaster: root\n")
    two.write_text("abuse: root\n")
    (confdir / "main.cf").write_text(f"alias_database = hash:{one}, {two}\n")
    r = run("newaliases", "-C", confdir)
    assert r.returncode == 0, r.stderr
    assert run("postalias", "-q", "postmaster", one).stdout == "root\n"
    assert run("postalias", "-q", "abuse", two).stdout == "root\n"

    one.write_text("postmaster: admin\n")
    run("newaliases", env={"MAIL_CONFIG": str(confdir)}, check=True)
    assert run("postalias", "-q", "postmaster", one).stdout == "admin\n"
