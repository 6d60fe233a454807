#!/usr/bin/env bash
# run.sh: builds packaging/rpm/postd.spec with rpmbuild on Debian, installs the RPMs into a scratch root and
# checks that units, generator, binaries, module, catalog and man pages are where the units and the catalog
# expect them, that the scriptlets do the systemd/alternatives/semodule steps, and that rpmlint finds no error.
#
# Usage: tests/rpm/run.sh            (as root; Debian packages: rpm rpmlint pkg-config meson gcc, the build
#                                    dependencies of postd, and selinux-policy-dev for the -selinux package)
# Environment: POSTD_RPM_KEEP=1 keeps the scratch directory; POSTD_RPM_CHECK=1 also runs %check (unit tests).
# Output ends with "N passed, N failed"; exit status 0 only when nothing failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SPEC=$ROOT/packaging/rpm/postd.spec
MACROS=$ROOT/tests/rpm/macros.debian
SELINUX_DEVEL=/usr/share/selinux/devel/Makefile
export LC_ALL=C

npass=0
nfail=0
ok() {
        npass=$((npass + 1))
        echo "ok   $*"
}
fail() {
        nfail=$((nfail + 1))
        echo "FAIL $*"
}
# check DESCRIPTION CMD...: one counted check.
check() {
        local what=$1
        shift
        if "$@"; then ok "$what"; else fail "$what"; fi
}
finish() {
        echo "$npass passed, $nfail failed"
        [ "$nfail" -eq 0 ]
        exit
}

missing=()
for t in rpmbuild rpm rpmlint pkg-config meson gcc; do
        command -v "$t" >/dev/null || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
        fail "tools missing: ${missing[*]} (apt-get install rpm rpmlint pkg-config meson gcc)"
        finish
fi

WORK=$(mktemp -d /tmp/postd-rpm.XXXXXX)
cleanup() {
        if [ -n "${POSTD_RPM_KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
TOP=$WORK/rpmbuild
SCRATCH=$WORK/root
mkdir -p "$TOP"/{SOURCES,SPECS,BUILD,RPMS,SRPMS} "$SCRATCH"

VERSION=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$ROOT/meson.build" | head -n1)
SPEC_VERSION=$(sed -n 's/^Version: *//p' "$SPEC")
check "spec Version ($SPEC_VERSION) is meson.build's ($VERSION)" test "$VERSION" = "$SPEC_VERSION"

# ---- the source tarball: the working tree as git sees it (tracked and new files, never build directories).
STAGE=$WORK/stage/postd-$VERSION
mkdir -p "$STAGE"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --no-recursion) | tar -C "$STAGE" -xf -
NOTE=
with=(--with selinux)
if [ ! -f "$SELINUX_DEVEL" ]; then
        with=(--without selinux)
        NOTE="no $SELINUX_DEVEL (apt-get install selinux-policy-dev): built --without selinux"
elif [ ! -f "$STAGE/selinux/postfix_instances.te" ]; then
        # The policy module is its own piece of work; until selinux/ is in the tree the sub-package is built
        # from an empty module of the same name, so that its packaging and scriptlets are still checked.
        mkdir -p "$STAGE/selinux"
        printf 'policy_module(postfix_instances, 0.0.1)\n' >"$STAGE/selinux/postfix_instances.te"
        : >"$STAGE/selinux/postfix_instances.fc"
        : >"$STAGE/selinux/postfix_instances.if"
        NOTE="selinux/postfix_instances.te not in this tree: postd-selinux packaged from an empty module"
fi
[ -n "$NOTE" ] && echo "NOTE $NOTE"
tar -C "$WORK/stage" -czf "$TOP/SOURCES/postd-$VERSION.tar.gz" "postd-$VERSION"
cp "$ROOT/units/postfix.sysusers" "$TOP/SOURCES/postd.sysusers"
cp "$SPEC" "$TOP/SPECS/"

# ---- rpmbuild -bb (Debian has no RPM build dependencies installed as RPMs: --nodeps).
checkopt=(--nocheck)
[ -n "${POSTD_RPM_CHECK:-}" ] && checkopt=()
start=$(date +%s)
if rpmbuild -bb --nodeps "${checkopt[@]}" "${with[@]}" --load "$MACROS" --define "_topdir $TOP" \
        "$TOP/SPECS/postd.spec" >"$WORK/rpmbuild.log" 2>&1; then
        ok "rpmbuild -bb ${with[*]} ($(($(date +%s) - start)) s)"
else
        tail -n 40 "$WORK/rpmbuild.log"
        fail "rpmbuild -bb (log above)"
        finish
fi
MAIN='' SEL=''
for f in "$TOP"/RPMS/*/postd-"$VERSION"-*.rpm; do [ -e "$f" ] && MAIN=$f; done
for f in "$TOP"/RPMS/noarch/postd-selinux-"$VERSION"-*.noarch.rpm; do [ -e "$f" ] && SEL=$f; done
check "main package built ($(basename "${MAIN:-none}"))" test -n "$MAIN"
if [ "${with[0]}" = --with ]; then
        check "postd-selinux built ($(basename "${SEL:-none}"))" test -n "$SEL"
fi
[ -n "$MAIN" ] || finish
RPMS=("$MAIN")
[ -n "$SEL" ] && RPMS+=("$SEL")

# ---- metadata
q() { rpm -qp "$@" 2>/dev/null; }
provides=$(q --provides "$MAIN")
for p in MTA smtpdaemon 'server(smtp)'; do
        check "Provides: $p" grep -qxF "$p" <<<"$(sed 's/ *=.*//' <<<"$provides")"
done
check "Conflicts: postfix" grep -qx 'postfix' <<<"$(q --conflicts "$MAIN")"
flags=$(q --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$MAIN")
for f in /etc/postfix/main.cf /etc/postfix/master.cf; do
        check "$f is %config(noreplace)" grep -qE "^[a-z]*c[a-z]*n[a-z]* $f\$|^[a-z]*n[a-z]*c[a-z]* $f\$" <<<"$flags"
done
modes=$(q --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]' "$MAIN")
for f in postdrop postqueue; do
        check "/usr/sbin/$f is set-gid postdrop" grep -qx -- "-rwxr-sr-x root postdrop /usr/sbin/$f" <<<"$modes"
done
check "/var/lib/postfix belongs to postfix, 0700" grep -qx 'drwx------ postfix postfix /var/lib/postfix' <<<"$modes"

# ---- scriptlets
scripts=$(q --scripts "$MAIN")
for pat in 'systemctl --no-reload preset postfix@-.service postfix.target' \
        'systemctl --no-reload disable --now postfix@-.service postfix.target' \
        'systemctl try-restart postfix@-.service postfix.target' \
        'systemd-sysusers --replace=' 'u postfix' 'systemd-tmpfiles --create' 'journalctl --update-catalog' \
        'alternatives --install /usr/sbin/sendmail mta /usr/sbin/sendmail.postd' \
        '--slave /usr/bin/mailq mta-mailq /usr/sbin/mailq.postd' \
        '--slave /usr/bin/newaliases mta-newaliases /usr/sbin/newaliases.postd' \
        'alternatives --remove mta /usr/sbin/sendmail.postd' \
        '/usr/sbin/postfix post-install' 'openssl req -x509'; do
        check "scriptlets of postd: $pat" grep -qF -- "$pat" <<<"$scripts"
done
# The certificate is made only when none exists.
check "scriptlets of postd: certificate only if none exists" \
        grep -qF '[ ! -e /etc/pki/tls/certs/postfix.pem ] && [ ! -e /etc/pki/tls/private/postfix.key ]' <<<"$scripts"
if [ -n "$SEL" ]; then
        sscripts=$(q --scripts "$SEL")
        for pat in 'semodule -n -s targeted -X 200 -i /usr/share/selinux/packages/postd/postfix_instances.pp' \
                'semodule -n -s targeted -X 200 -r postfix_instances' 'load_policy' 'fixfiles' \
                'restorecon -R /etc/postfix* /var/spool/postfix* /var/lib/postfix*'; do
                check "scriptlets of postd-selinux: $pat" grep -qF -- "$pat" <<<"$sscripts"
        done
fi

# ---- install into a scratch root, files only
rpm --root "$SCRATCH" --initdb
if rpm --root "$SCRATCH" --nodeps --noscripts -i "${RPMS[@]}" >"$WORK/install.log" 2>&1; then
        ok "rpm --root --nodeps --noscripts -i"
else
        cat "$WORK/install.log"
        fail "rpm -i into the scratch root"
        finish
fi
check "rpm -V finds the installed files intact" sh -c \
        "rpm --root '$SCRATCH' -V --nodeps --nouser --nogroup postd >'$WORK/verify.log' 2>&1 || { cat '$WORK/verify.log'; false; }"

# The packages' file list, read once: `rpm -qlp | grep -q` under pipefail failed now and then, when
# grep found the path and quit before rpm had written the rest (SIGPIPE).
PKG_FILES=$(q -l "${RPMS[@]}")
in_pkg() { # is PATH (as seen by the installed system) a file of the packages?
        grep -qxF "$1" <<<"$PKG_FILES"
}
# exists PATH: the file is in the scratch root (from our packages), or, for a path outside the
# packages (/bin/kill), on this system.
exists() {
        if in_pkg "$1"; then [ -e "$SCRATCH$1" ]; else [ -e "$1" ]; fi
}

unitdir=$(pkg-config --variable=systemdsystemunitdir systemd)
gendir=$(pkg-config --variable=systemdsystemgeneratordir systemd)
catdir=$(pkg-config --variable=catalogdir systemd)
for u in postfix@.service postfix@.socket postfix.target postfix@-.service.d/default-instance.conf; do
        check "unit $unitdir/$u installed" test -f "$SCRATCH$unitdir/$u"
done
# Every Exec*= program of every unit and drop-in.
nexec=0
while IFS= read -r line; do
        prog=${line#*=}
        prog=${prog#[-@:+!]}
        prog=${prog%% *}
        nexec=$((nexec + 1))
        check "unit command $prog (${line%%=*}) exists" exists "$prog"
done < <(cat "$SCRATCH$unitdir"/postfix* "$SCRATCH$unitdir"/postfix@-.service.d/* 2>/dev/null | grep -E '^Exec[A-Za-z]*=')
check "units have Exec lines ($nexec)" test "$nexec" -ge 2
# The configuration directories the units name.
while IFS= read -r dir; do
        check "MAIL_CONFIG=$dir of the default instance has main.cf and master.cf" \
                test -f "$SCRATCH$dir/main.cf" -a -f "$SCRATCH$dir/master.cf"
done < <(sed -n 's/^Environment=MAIL_CONFIG=//p' "$SCRATCH$unitdir"/postfix@-.service.d/*.conf)
check "generator $gendir/postfix-generator is executable" test -x "$SCRATCH$gendir/postfix-generator"
check "the generator writes for the unit directory the units are in ($unitdir)" \
        grep -qF "$unitdir" <(strings "$SCRATCH$gendir/postfix-generator")

# The binaries: the commands, and each daemon of master.cf in daemon_directory (what postconf says).
postconf=$SCRATCH/usr/sbin/postconf
daemon_dir=$("$postconf" -c "$SCRATCH/etc/postfix" -h daemon_directory 2>/dev/null)
command_dir=$("$postconf" -c "$SCRATCH/etc/postfix" -h command_directory 2>/dev/null)
check "daemon_directory is /usr/libexec/postfix ($daemon_dir)" test "$daemon_dir" = /usr/libexec/postfix
check "command_directory is /usr/sbin ($command_dir)" test "$command_dir" = /usr/sbin
while read -r cmd; do
        check "master.cf command $daemon_dir/$cmd exists" test -x "$SCRATCH$daemon_dir/$cmd"
done < <(grep -vE '^[[:space:]]*(#|$)' "$SCRATCH/etc/postfix/master.cf" | grep -vE '^[[:space:]]' | awk '{print $8}' | sort -u)
check "master (ExecStart's master) is in daemon_directory" test -x "$SCRATCH$daemon_dir/master"
for c in postfix postconf postmap postalias postmulti postqueue postsuper postdrop sendmail.postd mailq.postd \
        newaliases.postd; do
        check "command $command_dir/$c exists" test -x "$SCRATCH$command_dir/$c"
done
# post-install runs postalias as newaliases, and sendmail runs postdrop/postqueue: all in command_directory.
check "no unrenamed sendmail/mailq/newaliases (alternatives own those names)" \
        test ! -e "$SCRATCH/usr/sbin/sendmail" -a ! -e "$SCRATCH/usr/sbin/mailq" -a ! -e "$SCRATCH/usr/sbin/newaliases"
# Every alternatives target of %post is a file of the package.
while read -r target; do
        check "alternatives target $target is installed" test -e "$SCRATCH$target"
done < <(grep -oE '(mta|mta-[a-z]+) /[^ ]+' <<<"$scripts" | awk '{print $2}' | sort -u)

# sysusers, tmpfiles and catalog.
sysusers=$SCRATCH$(pkg-config --variable=sysusersdir systemd)/postfix.conf
tmpfiles=$SCRATCH$(pkg-config --variable=tmpfilesdir systemd)/postfix.conf
check "sysusers.d/postfix.conf creates postfix and postdrop" \
        sh -c "grep -qE '^u postfix ' '$sysusers' && grep -qE '^g postdrop ' '$sysusers'"
check "tmpfiles.d/postfix.conf makes the queue and data directories of the units" \
        sh -c "grep -qE '^d /var/spool/postfix ' '$tmpfiles' && grep -qE '^d /var/lib/postfix 0700 postfix postfix' '$tmpfiles'"
catalog=$SCRATCH$catdir/postfix.catalog
check "catalog $catdir/postfix.catalog installed" test -f "$catalog"
mandir=$SCRATCH/usr/share/man
nlinks=0
while read -r name sec; do
        nlinks=$((nlinks + 1))
        page=$(ls "$mandir/man$sec/$name.$sec"* 2>/dev/null | head -n1)
        if [ -z "$page" ]; then
                # sendmail(1): behind alternatives; the slave link must lead to our page.
                grep -qF -- "--slave /usr/share/man/man$sec/$name.$sec.gz" <<<"$scripts" &&
                        page=$(ls "$mandir/man$sec/$name.postd.$sec"* 2>/dev/null | head -n1)
        fi
        check "catalog link man:$name($sec) resolves (${page#"$SCRATCH"})" test -n "$page"
done < <(grep -oE 'man:[A-Za-z0-9._-]+\([0-9]\)' "$catalog" | sed 's/man:\(.*\)(\(.\))/\1 \2/' | sort -u)
check "catalog has man: links ($nlinks)" test "$nlinks" -ge 3
if [ -n "$SEL" ]; then
        pp=$SCRATCH/usr/share/selinux/packages/postd/postfix_instances.pp
        # A policy package starts with the SELinux module package magic 0xf97cff8f (little endian).
        check "policy module $pp is a module package" \
                test "$(od -An -tx4 -N4 "$pp" 2>/dev/null | tr -d ' ')" = f97cff8f
fi

# ---- rpmlint: warnings are shown, errors fail.
lint=$(rpmlint -r "$ROOT/packaging/rpm/postd.rpmlintrc" "${RPMS[@]}" "$SPEC" 2>&1)
echo "$lint" | grep -E ' (E|W): ' | sed 's/^/     /'
summary=$(echo "$lint" | tail -n1)
nerr=$(sed -n 's/.* \([0-9][0-9]*\) errors.*/\1/p' <<<"$summary")
check "rpmlint: no errors ($summary)" test "${nerr:-1}" -eq 0

finish
