#!/bin/bash
# run.sh: offline tests of postd's SELinux policy module (selinux/postfix_instances.*): no SELinux
# kernel needed. Compiles the module with the refpolicy devel Makefile (also in the RHEL 8 module
# format), builds a reference policy store from Debian's selinux-policy-default package (downloaded,
# unpacked, never installed) with and without the module, then checks with setools/libselinux:
# label parity instance vs default instance, run-time labels of what the master creates, access
# parity per role, the rules postd's own behaviour needs (cases.txt), setfiles -n on a real tree,
# and the seed 001 AVCs replayed with audit2why. The store WITHOUT the module must fail the same
# checks (negative control). Ends with "N passed, N failed"; exit status 0 only if all passed.
#
# Packages (Debian 12): checkpolicy semodule-utils selinux-utils policycoreutils policycoreutils-python-utils
#   selinux-policy-dev setools python3-setools python3-selinux
# Downloads and the reference store are cached in $POSTD_SELINUX_CACHE
# (default /var/cache/postd-test/selinux); the first run builds the store (about 90 s).
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../../selinux" && pwd)
MOD=postfix_instances
INSTANCE=dept1
CACHE=${POSTD_SELINUX_CACHE:-/var/cache/postd-test/selinux}
PY=/usr/bin/python3 # the distribution's python: setools and the selinux bindings live there
DEVEL=/usr/share/selinux/devel

T0=$(date +%s)
npass=0
nfail=0
ok() { npass=$((npass + 1)); echo "  ok:   $*"; }
bad() { nfail=$((nfail + 1)); echo "  FAIL: $*"; }
step() { echo "== $* [$(($(date +%s) - T0)) s]"; }


missing=""
for c in checkmodule semodule semodule_unpackage setfiles matchpathcon audit2why sesearch make m4 dpkg-deb apt-get timeout; do
        command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
[ -x /usr/libexec/selinux/hll/pp ] || missing="$missing /usr/libexec/selinux/hll/pp"
[ -f $DEVEL/Makefile ] || missing="$missing $DEVEL/Makefile"
$PY -c 'import setools, selinux' 2>/dev/null || missing="$missing python3-setools/python3-selinux"
if [ -n "$missing" ]; then
        echo "missing:$missing"
        echo "install: apt-get install -y --no-install-recommends checkpolicy semodule-utils selinux-utils" \
                "policycoreutils policycoreutils-python-utils selinux-policy-dev setools python3-setools python3-selinux"
        echo "0 passed, 1 failed"
        exit 1
fi

WORK=$(mktemp -d /tmp/postd-selinux.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE/debs"

# ------------------------------------------------------------------ reference store (cached)
step "reference store: Debian selinux-policy-default, built with semodule -p ROOT -n"
deb=$(ls "$CACHE"/debs/selinux-policy-default_*.deb 2>/dev/null | tail -1)
if [ -z "$deb" ]; then
        (cd "$CACHE/debs" && timeout 120 apt-get download selinux-policy-default >/dev/null 2>&1)
        deb=$(ls "$CACHE"/debs/selinux-policy-default_*.deb 2>/dev/null | tail -1)
fi
if [ -z "$deb" ]; then
        bad "apt-get download selinux-policy-default (is an apt source reachable?)"
        echo "$npass passed, $nfail failed"
        exit 1
fi
REF=$CACHE/store-$(basename "$deb" .deb)
POLICY=etc/selinux/default/policy/policy.33
FCREL=etc/selinux/default/contexts/files/file_contexts
if [ ! -f "$REF/$POLICY" ]; then
        t=$(date +%s)
        TMPSTORE=$REF.tmp.$$ # private to this run: two runs may build at once
        rm -rf "$TMPSTORE"
        mkdir -p "$TMPSTORE"
        dpkg-deb -x "$deb" "$TMPSTORE"
        mods=$TMPSTORE/usr/share/selinux/default
        args=()
        for m in $(cat "$mods/.modules"); do args+=(-i "$mods/$m.pp.bz2"); done
        timeout 600 semodule -p "$TMPSTORE" -s default -n -X 100 "${args[@]}" 2>&1 | grep -v 'not in password file'
        if [ -f "$TMPSTORE/$POLICY" ]; then
                ok "built the store from $(basename "$deb") ($((${#args[@]} / 2)) modules, $(($(date +%s) - t)) s)"
                mv -T "$TMPSTORE" "$REF" 2>/dev/null || rm -rf "$TMPSTORE" # another run was faster
        else
                rm -rf "$TMPSTORE"
                bad "building the reference store from $(basename "$deb")"
                echo "$npass passed, $nfail failed"
                exit 1
        fi
else
        ok "cached store $REF"
fi

# ------------------------------------------------------------------ compile
step "compile $MOD with $DEVEL/Makefile"
modver() { # module format version of a .pp (libsepol 2.9, RHEL 8, reads up to 19)
        local d
        d=$(mktemp -d "$WORK/v.XXXX")
        semodule_unpackage "$1" "$d/m.mod" "$d/m.fc" >/dev/null 2>&1 || { echo none; return; }
        od -A n -t u4 -j 27 -N 4 "$d/m.mod" | tr -d ' '
}
B=$WORK/build
mkdir -p "$B"
cp "$SRC/$MOD.te" "$SRC/$MOD.fc" "$SRC/$MOD.if" "$B/"
if make -C "$B" -f $DEVEL/Makefile $MOD.pp >"$B/build.log" 2>&1; then
        ok "compiled $MOD.pp (module format v$(modver "$B/$MOD.pp"))"
else
        bad "compile $MOD.pp"
        sed 's/^/      /' "$B/build.log" | tail -20
        echo "$npass passed, $nfail failed"
        exit 1
fi
cp "$B/$MOD.pp" "$WORK/$MOD.pp"
rm -f "$B/$MOD.pp"
if make -C "$B" -f $DEVEL/Makefile CHECKMODULE="checkmodule -M -c 19" $MOD.pp >"$B/build19.log" 2>&1 &&
        [ "$(modver "$B/$MOD.pp")" = 19 ]; then
        mv "$B/$MOD.pp" "$WORK/$MOD-v19.pp"
        ok "compiled $MOD-v19.pp with checkmodule -M -c 19 (module format v19: RHEL 8's libsepol 2.9 loads it)"
else
        bad "checkmodule -M -c 19 build"
        sed 's/^/      /' "$B/build19.log" | tail -10
fi
# Both packages must carry the same policy: compare their CIL translations.
if [ -f "$WORK/$MOD-v19.pp" ] && /usr/libexec/selinux/hll/pp "$WORK/$MOD.pp" "$WORK/a.cil" 2>/dev/null &&
        /usr/libexec/selinux/hll/pp "$WORK/$MOD-v19.pp" "$WORK/b.cil" 2>/dev/null &&
        cmp -s "$WORK/a.cil" "$WORK/b.cil"; then
        ok "the v19 package translates to the same CIL as the current one ($(grep -c . "$WORK/a.cil") lines)"
else
        bad "the v19 package differs from the current one (or does not translate to CIL)"
fi

# ------------------------------------------------------------------ store with the module
step "store with the module: semodule -p ROOT -n -i $MOD.pp"
WITH=$WORK/with
cp -a "$REF" "$WITH"
out=$(timeout 300 semodule -p "$WITH" -s default -n -X 200 -i "$WORK/$MOD.pp" 2>&1 | grep -v 'not in password file')
# The list is read whole first: grep -q quitting early would SIGPIPE awk, a failure under pipefail.
modules=$(semodule -p "$WITH" -s default --list-modules=full 2>/dev/null | awk '{print $2}')
if grep -qx "$MOD" <<<"$modules" &&
        [ "$WITH/$POLICY" -nt "$REF/$POLICY" ]; then
        ok "installed $MOD into a copy of the store"
else
        bad "semodule -i $MOD.pp: $out"
        echo "$npass passed, $nfail failed"
        exit 1
fi

# ------------------------------------------------------------------ checks, per store
# A real instance tree next to a default instance tree: directories, a fifo, unix sockets, files.
FR=$WORK/root
mkdir -p "$FR/etc" "$FR/var/spool" "$FR/var/lib"
for sfx in "" "-$INSTANCE"; do
        sp=$FR/var/spool/postfix$sfx
        mkdir -p "$sp"/{incoming,active,deferred/4,hold,corrupt,bounce,defer/4,trace,maildrop,public,private,pid,saved,flush}
        mkfifo "$sp/public/showq.fifo"
        touch "$sp/deferred/4/4F1A2B3C" "$sp/maildrop/5E2D" "$sp/pid/master.pid"
        for s in public/pickup public/qmgr public/cleanup private/smtp private/bounce private/local; do
                $PY -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sp/$s"
        done
        mkdir -p "$FR/etc/postfix$sfx" "$FR/var/lib/postfix$sfx"
        touch "$FR/etc/postfix$sfx/main.cf" "$FR/etc/postfix$sfx/master.cf" "$FR/var/lib/postfix$sfx/master.lock"
done

# The seed 001 denials (RHEL, second instance started by systemd), with the target type that
# file_contexts gives the path in the store under test.
SEED_AVCS="master unlink fifo_file public/pickup
master create fifo_file public/pickup
master read,write fifo_file public/pickup
master open fifo_file public/pickup
master getattr fifo_file public/pickup
master setattr fifo_file public/pickup
master ioctl fifo_file public/pickup
master unlink sock_file public/cleanup
master create sock_file public/cleanup
master setattr sock_file public/cleanup
qmgr read,write fifo_file public/qmgr
pickup read,write fifo_file public/pickup"

check_store() { # check_store NAME ROOT EXPECT(pass|fail)
        local name=$1 root=$2 expect=$3 rc summary
        local P=$root/$POLICY FC=$root/$FCREL
        step "checks on the store $name (expected to $expect)"
        timeout 120 $PY "$HERE/check_policy.py" "$P" "$FC" "$HERE/cases.txt" "$INSTANCE" >"$WORK/$name.log" 2>&1
        rc=$?
        summary=$(tail -1 "$WORK/$name.log")
        if { [ "$expect" = pass ] && [ $rc -eq 0 ]; } || { [ "$expect" = fail ] && [ $rc -eq 1 ]; }; then
                ok "[$name] label/new/parity/need cases: $summary"
        else
                bad "[$name] label/new/parity/need cases (rc $rc): $summary"
        fi
        if [ "$expect" = pass ] || [ $rc -ne 1 ]; then
                grep -E '^(FAIL|Traceback|  File|[a-zA-Z]*Error)' "$WORK/$name.log" | head -20 | sed 's/^/        /'
        else
                grep '^FAIL' "$WORK/$name.log" | head -3 | sed 's/^/        /'
        fi

        # setfiles -n on the real tree: each instance path gets what its default twin gets.
        local sf diff=0 total=0 p twin a b
        sf=$(setfiles -n -v -r "$FR" "$FC" "$FR/etc" "$FR/var/spool" "$FR/var/lib" 2>&1)
        while read -r p; do
                twin=${p/postfix-$INSTANCE/postfix}
                a=$(echo "$sf" | awk -v p="$p" '$3 == p {print $NF}' | cut -d: -f3)
                b=$(echo "$sf" | awk -v p="$twin" '$3 == p {print $NF}' | cut -d: -f3)
                total=$((total + 1))
                if [ -z "$a" ] || [ "$a" != "$b" ]; then
                        diff=$((diff + 1))
                        [ "$expect" = pass ] && echo "        setfiles: $p -> ${a:-none}, default -> ${b:-none}"
                fi
        done < <(find "$FR/etc/postfix-$INSTANCE" "$FR/var/spool/postfix-$INSTANCE" "$FR/var/lib/postfix-$INSTANCE")
        if { [ "$expect" = pass ] && [ $diff -eq 0 ] && [ $total -gt 30 ]; } ||
                { [ "$expect" = fail ] && [ $diff -gt 0 ]; }; then
                ok "[$name] setfiles -n -r on a real tree: $((total - diff)) of $total instance paths labelled as their default twin"
        else
                bad "[$name] setfiles -n -r on a real tree: $diff of $total instance paths differ from their default twin"
        fi

        # audit2why replay of the seed 001 AVCs (one run: audit2why loads the policy each time)
        local comm perms cls path ty n=0 n_allowed n_denied res
        : >"$WORK/avc"
        while read -r comm perms cls path; do
                ty=$(matchpathcon -m "$cls" -f "$FC" "/var/spool/postfix-sub/$path" | awk '{print $2}' | cut -d: -f3)
                printf 'type=AVC msg=audit(1564228663.666:%d): avc:  denied  { %s } for  pid=2419 comm="%s" name="%s" scontext=system_u:system_r:postfix_%s_t:s0 tcontext=system_u:object_r:%s:s0 tclass=%s permissive=0\n' \
                        $((56 + n)) "${perms//,/ }" "$comm" "${path#*/}" "$comm" "$ty" "$cls" >>"$WORK/avc"
                n=$((n + 1))
        done <<<"$SEED_AVCS"
        res=$(timeout 60 audit2why -p "$P" -i "$WORK/avc" 2>&1)
        n_allowed=$(echo "$res" | grep -c 'would be allowed')
        n_denied=$(echo "$res" | grep -c 'Missing type enforcement')
        if { [ "$expect" = pass ] && [ "$n_allowed" -eq $n ]; } ||
                { [ "$expect" = fail ] && [ "$n_denied" -eq $n ]; }; then
                ok "[$name] audit2why -p replay of the $n seed 001 AVCs (/var/spool/postfix-sub): $n_allowed allowed, $n_denied denied"
        else
                bad "[$name] audit2why -p replay of the $n seed 001 AVCs: $n_allowed allowed, $n_denied denied"
        fi
}

check_store without "$REF" fail
check_store with "$WITH" pass

# ------------------------------------------------------------------ the default instance is untouched
step "the module changes no label of the default instance"
changed=0
while read -r path cls; do
        a=$(matchpathcon -m "$cls" -f "$REF/$FCREL" "$path" | awk '{print $2}')
        b=$(matchpathcon -m "$cls" -f "$WITH/$FCREL" "$path" | awk '{print $2}')
        [ "$a" = "$b" ] || { changed=$((changed + 1)); echo "        $path: $a -> $b"; }
done < <(awk '$1 == "label" && $2 ~ /^@/ {print $2, $3}' "$HERE/cases.txt" |
        sed 's|@SPOOL@|/var/spool/postfix|; s|@ETC@|/etc/postfix|; s|@LIB@|/var/lib/postfix|'
        printf '%s file\n' /usr/sbin/postfix /usr/sbin/postmap /usr/sbin/postdrop /usr/sbin/postqueue \
                /usr/sbin/sendmail /usr/libexec/postfix/master /usr/libexec/postfix/smtpd /usr/libexec/postfix/error \
                /usr/lib/systemd/system-generators/postfix-generator)
if [ $changed -eq 0 ]; then
        ok "every default-instance path and installed binary keeps its stock label"
else
        bad "$changed default-instance labels changed"
fi
# Booleans: the module declares none (no switch can widen the default instance).
nb_ref=$(seinfo "$REF/$POLICY" -b 2>/dev/null | awk '/Booleans:/ {print $2}')
nb_with=$(seinfo "$WITH/$POLICY" -b 2>/dev/null | awk '/Booleans:/ {print $2}')
if [ -n "$nb_ref" ] && [ "$nb_ref" = "$nb_with" ]; then
        ok "no boolean added ($nb_with in both stores)"
else
        bad "booleans: $nb_ref without the module, $nb_with with it"
fi

echo "selinux tests took $(($(date +%s) - T0)) s"
echo "$npass passed, $nfail failed"
[ $nfail -eq 0 ]
