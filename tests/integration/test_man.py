"""test_man.py: the manual pages: one per installed command, every parameter in postconf(5), catalog links, clean roff."""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, tool

# Pages of other projects our pages and the catalog may point at (systemd's, shipped by the system).
SYSTEM_PAGES = {("systemctl", "1"), ("journalctl", "1"), ("systemd.generator", "7"), ("systemd.unit", "5")}


@pytest.fixture(scope="module")
def dest(tmp_path_factory):
    """The tree `meson install` lays out, as a package or an administrator gets it."""
    d = tmp_path_factory.mktemp("destdir")
    proc = subprocess.run(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--quiet", "--destdir", str(d)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d


def mandir(dest):
    found = [p for p in dest.rglob("man1") if p.parent.name == "man"]
    assert len(found) == 1, found
    return found[0].parent


def shipped(dest):
    """{(name, section)} of every installed page."""
    out = set()
    for p in mandir(dest).glob("man*/*"):
        name, _, sec = p.name.rpartition(".")
        out.add((name, sec))
    return out


def installed_commands(dest):
    """Every program a user or systemd runs: sbin's, and the generator."""
    cmds = [p.name for p in dest.rglob("sbin/*") if p.is_file()]
    cmds += [("postfix-generator", "8") for p in dest.rglob("system-generators/postfix-generator")]
    return cmds


def test_every_installed_command_has_a_page(dest):
    pages = shipped(dest)
    cmds = installed_commands(dest)
    names = [c for c in cmds if isinstance(c, str)]
    # The ten commands of the brief, at least: a missing install would make this test vacuous.
    for must in ("postfix", "postmulti", "postconf", "postqueue", "postsuper", "postmap", "postalias",
                 "sendmail", "postdrop", "newaliases", "mailq"):
        assert must in names, f"{must} not installed"
    assert ("postfix-generator", "8") in cmds
    missing = [c for c in names if (c, "1") not in pages and (c, "8") not in pages]
    assert not missing, f"commands without a manual page: {missing}"
    assert ("postfix-generator", "8") in pages
    assert ("postd-instances", "7") in pages
    assert ("postconf", "5") in pages


def table_entries():
    """(name, flags text) of each entry of src/lib/config/params.c, the one parameter table."""
    s = (ROOT / "src/lib/config/params.c").read_text()
    body = s[s.index("static const struct param_def params[] = {"):]
    body = body[:body.index("\n};") + 1]
    return re.findall(r'\{"(\w+)",\s*PARAM_\w+,(.*?)\},?\n', body, re.S)


def page_entries(text):
    """Parameter name -> its roff paragraph in postconf.5."""
    out = {}
    for chunk in text.split(".TP\n")[1:]:
        m = re.match(r"\.B (\S+)\n", chunk)
        if m:
            out[m.group(1).replace("\\-", "-")] = chunk
    return out


def test_postconf5_has_every_parameter_and_says_which_are_inert(dest):
    entries = table_entries()
    defaults = subprocess.run([tool("postconf"), "-d"], capture_output=True, text=True, check=True,
                              env={**os.environ, "MAIL_CONFIG": str(ROOT / "conf")}).stdout
    names_d = {line.split(" = ", 1)[0] for line in defaults.splitlines()}
    assert {n for n, _ in entries} == names_d  # the parse of the table is complete
    page = (mandir(dest) / "man5/postconf.5").read_text()
    para = page_entries(page)
    assert set(para) == names_d
    inert = [n for n, flags in entries if "PARAM_F_INERT" in flags]
    assert len(inert) >= 10
    for name, flags in entries:
        says_inert = "Not acted on by postd yet" in para[name]
        assert says_inert == ("PARAM_F_INERT" in flags), name
        assert "Default:" in para[name], name
    assert f"{len(inert)} of them are known to Postfix users" in page
    # A default is shown as postconf -d shows it (paths from the build, escapes made roff-safe).
    d = dict(line.split(" = ", 1) for line in defaults.splitlines() if " = " in line)
    assert "Default: \\fBhash:/etc/aliases\\fR" in para["alias_database"]
    assert d["alias_database"] == "hash:/etc/aliases"


def test_catalog_and_see_also_links_resolve(dest):
    pages = shipped(dest)
    catalog = next(dest.rglob("catalog/postfix.catalog")).read_text()
    links = re.findall(r"man:([\w.-]+)\((\d)\)", catalog)
    assert len(links) >= 5
    for link in links:
        assert link in pages or link in SYSTEM_PAGES, f"catalog link man:{link[0]}({link[1]}) resolves to no page"
    # The cross references of our own pages too.
    for p in mandir(dest).glob("man*/*"):
        text = p.read_text()
        for name, sec in re.findall(r"^\.BR ([\w.\\-]+) \((\d)\)", text, re.M):
            ref = (name.replace("\\-", "-"), sec)
            assert ref in pages or ref in SYSTEM_PAGES, f"{p.name} refers to {ref}, which nobody ships"


def test_every_page_renders_without_warnings(dest):
    if not shutil.which("groff") or not shutil.which("man"):
        pytest.fail("groff and man are needed (apt-get install groff-base man-db)")
    root = mandir(dest)
    pages = sorted(root.glob("man*/*"))
    assert len(pages) >= 16
    for p in pages:
        # -ww: every warning; -z: no output, only diagnostics. cwd = the man root, for ".so man1/x.1".
        proc = subprocess.run(["groff", "-man", "-t", "-Tutf8", "-ww", "-z", str(p)], cwd=root,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and proc.stderr == "", f"{p.name}: {proc.stderr}"
        proc = subprocess.run(["man", "-l", str(p)], cwd=root, capture_output=True, text=True, timeout=30,
                              env={**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"})
        assert proc.returncode == 0, f"man -l {p.name}: {proc.stderr}"
        assert "NAME" in proc.stdout and len(proc.stdout.splitlines()) > 5, p.name
