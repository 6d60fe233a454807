#!/usr/bin/env bash
# harness.sh: boots a real systemd (PID 1 of a systemd-nspawn container) so postd's units can be tested.
# shellcheck disable=SC2016,SC2094  # single quotes are sh -c scripts run in the container, on purpose
#
# Usage: tests/systemd/harness.sh SUBCOMMAND [ARGS...]   (as root)
#   check                  can this machine run the container? exit 0, or 77 with the reason on stderr
#   setup                  install systemd-container/debootstrap if missing; build the cached rootfs once
#   boot [--bind DESTDIR | --copy DESTDIR]
#                          boot the container on a throw-away overlay of the rootfs; with --bind the files
#                          of a DESTDIR tree (meson install --destdir) are bind-mounted onto the same paths
#                          (read-only, a rebuild on the host is seen at once); with --copy they are copied in
#   exec CMD [ARGS...]     run CMD in the container (clean environment); stdin/stdout/exit status pass through
#   copy-in SRC DST        copy a host file or directory into the running container
#   stop                   power the container off and clean up
#   verify UNIT_FILE...    host-side `systemd-analyze verify`; fails on any output, not just on errors
#   selftest               socket-activated templated demo units: systemctl states and the journal
#
# Environment:
#   POSTD_NSPAWN_CACHE   cache directory; the rootfs lives in CACHE/rootfs (default /var/cache/postd-test)
#   POSTD_NSPAWN_NAME    container name; several names can run at once (default postd-test)
#   POSTD_NSPAWN_NET     host (default: the container shares the host's ports) | private (own loopback)
#   POSTD_NSPAWN_SUITE   Debian suite (default bookworm)
#   POSTD_NSPAWN_MIRROR  Debian mirror (default: the host's apt source)
#   POSTD_NSPAWN_TIMEOUT seconds any single wait may take (default 90)
set -euo pipefail

CACHE=${POSTD_NSPAWN_CACHE:-/var/cache/postd-test}
ROOTFS=$CACHE/rootfs
NAME=${POSTD_NSPAWN_NAME:-postd-test}
NET=${POSTD_NSPAWN_NET:-host}
SUITE=${POSTD_NSPAWN_SUITE:-bookworm}
TIMEOUT=${POSTD_NSPAWN_TIMEOUT:-90}
STATE=/run/postd-nspawn/$NAME
CGROUP=postd-nspawn-$NAME
# What postd needs at run time, plus what the tests drive it with; systemd/dbus make it bootable.
PACKAGES=systemd,systemd-sysv,dbus,libsystemd0,libssl3,libgdbm6,libseccomp2,liblmdb0,libpcre2-8-0,python3,swaks,iproute2,procps
# Bumped whenever PACKAGES or configure_rootfs change, so that a stale cached rootfs gets rebuilt.
ROOTFS_VERSION=2
IN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

msg() { echo "harness: $*" >&2; }
die() {
        msg "$*"
        exit 1
}
clock() { date +%s%N; }
since() { # seconds since a clock value, 2 decimals
        local d=$(($(clock) - $1))
        printf '%d.%02d' $((d / 1000000000)) $((d % 1000000000 / 10000000))
}
# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.1 s; every wait in this file is bounded.
wait_for() {
        local limit=$1 what=$2 start
        shift 2
        start=$(clock)
        until "$@"; do
                if [ $(($(clock) - start)) -ge $((limit * 1000000000)) ]; then
                        msg "timed out after ${limit}s waiting for $what"
                        return 1
                fi
                sleep 0.1
        done
}

mirror() {
        if [ -n "${POSTD_NSPAWN_MIRROR:-}" ]; then
                echo "$POSTD_NSPAWN_MIRROR"
                return
        fi
        local m
        m=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        [ -n "$m" ] || m=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
        echo "${m:-http://deb.debian.org/debian}"
}

cmd_check() {
        local why=
        if [ "$(id -u)" != 0 ]; then
                why="needs root (systemd-nspawn, mounts and cgroups)"
        elif [ ! -d /sys/fs/cgroup ] || [ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; then
                why="no cgroup file system at /sys/fs/cgroup"
        elif ! command -v unshare >/dev/null || ! command -v nsenter >/dev/null; then
                why="unshare/nsenter (util-linux) missing"
        elif ! unshare --mount --pid --fork true 2>/dev/null; then
                why="cannot create mount/PID namespaces here (inside an unprivileged container?)"
        elif ! command -v systemd-nspawn >/dev/null && ! command -v apt-get >/dev/null; then
                why="systemd-nspawn missing and no apt-get to install it"
        fi
        if [ -n "$why" ]; then
                echo "cannot run systemd-nspawn on this machine: $why" >&2
                exit 77
        fi
}

# Make the rootfs boot quickly and quietly in a container and keep every log line.
configure_rootfs() {
        local r=$1
        mkdir -p "$r/etc/systemd/system" "$r/etc/systemd/journald.conf.d" "$r/etc/systemd/system.conf.d"
        # Nobody reads the console; a getty there only adds noise and a restart loop.
        ln -sf /dev/null "$r/etc/systemd/system/console-getty.service"
        ln -sf /dev/null "$r/etc/systemd/system/getty@.service"
        # Timers (apt-daily, ...) would start work in the middle of a test.
        rm -f "$r"/etc/systemd/system/timers.target.wants/*
        printf '[Journal]\nRateLimitIntervalSec=0\nRateLimitBurst=0\nStorage=volatile\n' \
                >"$r/etc/systemd/journald.conf.d/postd-test.conf"
        printf '[Manager]\nDefaultTimeoutStartSec=30s\nDefaultTimeoutStopSec=10s\n' \
                >"$r/etc/systemd/system.conf.d/postd-test.conf"
        # A machine-id of our own: without one systemd would derive the host's from the VM's DMI data.
        rm -f "$r/etc/hostname"
        od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$r/etc/machine-id"
        echo >>"$r/etc/machine-id"
        echo "$ROOTFS_VERSION" >"$r/.postd-test-rootfs"
}

cmd_setup() {
        local start missing=() tmp
        start=$(clock)
        cmd_check
        command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
        command -v debootstrap >/dev/null || missing+=(debootstrap)
        if [ ${#missing[@]} -gt 0 ]; then
                msg "installing ${missing[*]}"
                DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -o DPkg::Lock::Timeout=300 install -y -q \
                        --no-install-recommends "${missing[@]}" >/dev/null
        fi
        mkdir -p "$CACHE"
        # Two test runs may set up at once: one builds, the other waits (bounded) and reuses.
        exec 9>"$CACHE/.lock"
        flock -w 900 9 || die "timed out waiting for another setup holding $CACHE/.lock"
        if [ "$(cat "$ROOTFS/.postd-test-rootfs" 2>/dev/null)" = "$ROOTFS_VERSION" ]; then
                msg "rootfs ready at $ROOTFS (cached; remove it to rebuild)"
        else
                tmp=$ROOTFS.new
                rm -rf "$tmp"
                msg "debootstrap $SUITE into $ROOTFS (packages: $PACKAGES)"
                if ! timeout 1200 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$(mirror)" \
                        >"$CACHE/debootstrap.log" 2>&1; then
                        tail -n 20 "$CACHE/debootstrap.log" >&2
                        die "debootstrap failed (log: $CACHE/debootstrap.log)"
                fi
                configure_rootfs "$tmp"
                rm -rf "$ROOTFS"
                mv "$tmp" "$ROOTFS"
        fi
        exec 9>&-
        msg "setup done in $(since "$start")s"
}

nspawn_pid() {
        local pid
        pid=$(cat "$STATE/nspawn.pid" 2>/dev/null) || return 1
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ] || return 1
        echo "$pid"
}

# The container's PID 1 as seen from the host: the child of nspawn that runs systemd.
leader_pid() {
        local np child
        np=$(nspawn_pid) || return 1
        for child in $(pgrep -P "$np"); do
                if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ]; then
                        echo "$child"
                        return 0
                fi
        done
        return 1
}

running_leader() {
        leader_pid || die "container $NAME is not running (run: $0 boot)"
}

in_container() {
        local leader
        leader=$(running_leader)
        nsenter --target "$leader" --all --root --wd env -i PATH="$IN_PATH" HOME=/root LANG=C.UTF-8 \
                SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# The cgroup hierarchies nspawn touches: the unified one, or name=systemd (+ unified) on hybrid hosts.
cgroup_roots() {
        if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
                echo /sys/fs/cgroup
                return
        fi
        local d
        for d in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
                [ -d "$d" ] && echo "$d"
        done
        return 0
}

cgroup_cleanup() {
        local root
        for root in $(cgroup_roots); do
                if [ -d "$root/$CGROUP" ]; then
                        find "$root/$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
                fi
        done
}

# bind_args SRC_DIR REL: nspawn --bind-ro options laying the files of SRC_DIR over the container path REL.
# A directory the rootfs lacks is bound whole; one it has is entered, so its other contents stay visible.
# The rootfs's own directory symlinks (merged /usr: /lib -> usr/lib) are followed, never covered.
bind_args() {
        local src=$1 rel=$2 entry name target crel
        for entry in "$src"/* "$src"/.[!.]*; do
                [ -e "$entry" ] || [ -L "$entry" ] || continue
                name=${entry##*/}
                crel=$rel/$name
                if [ -L "$ROOTFS$crel" ] && [ -d "$ROOTFS$crel" ]; then
                        target=$(readlink "$ROOTFS$crel")
                        case "$target" in
                        /*) crel=$(realpath -m -s "$target") ;;
                        *) crel=$(realpath -m -s "$rel/$target") ;;
                        esac
                fi
                case "$entry$crel" in
                *:*) die "cannot bind $entry: nspawn bind paths cannot contain ':'" ;;
                esac
                if [ -d "$entry" ] && [ ! -L "$entry" ] && [ -d "$ROOTFS$crel" ] && [ ! -L "$ROOTFS$crel" ]; then
                        bind_args "$entry" "$crel"
                else
                        printf -- '--bind-ro=%s:%s\0' "$entry" "$crel"
                fi
        done
}

cmd_boot() {
        local mode='' dest='' start state args=()
        case "${1:-}" in
        --bind | --copy)
                [ $# -eq 2 ] || die "usage: boot [--bind DESTDIR | --copy DESTDIR]"
                mode=${1#--}
                dest=$(cd "$2" && pwd) || die "no such directory: $2"
                ;;
        "") ;;
        *) die "usage: boot [--bind DESTDIR | --copy DESTDIR]" ;;
        esac
        [ "$(cat "$ROOTFS/.postd-test-rootfs" 2>/dev/null)" = "$ROOTFS_VERSION" ] || die "no rootfs: run $0 setup"
        command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing: run $0 setup"
        if nspawn_pid >/dev/null; then
                die "container $NAME is already running"
        fi
        cgroup_cleanup
        rm -rf "$STATE"
        mkdir -p "$STATE/lower" "$STATE/upper" "$STATE/root"

        # The host's PID 1 is not systemd: nspawn must not ask it for a scope or register with machined.
        args=(--boot --machine="$NAME" --register=no --keep-unit --console=read-only --directory="$STATE/root")
        [ "$NET" = private ] && args+=(--private-network)
        if [ "$mode" = bind ]; then
                local a
                while IFS= read -r -d '' a; do
                        args+=("$a")
                done < <(bind_args "$dest" "")
        fi

        # The launcher: its own session (outlives the caller), its own cgroup subtree (else nspawn
        # --keep-unit puts payload/ and supervisor/ at the root of the host's hierarchy, where two
        # containers collide), its own mount namespace (the overlay never shows on the host). It execs
        # nspawn, so the pid it records is nspawn's.
        {
                echo 'set -e'
                printf 'STATE=%q ROOTFS=%q CGROUP=%q\n' "$STATE" "$ROOTFS" "$CGROUP"
                printf 'ROOTS=(%s)\n' "$(cgroup_roots | tr '\n' ' ')"
                cat <<'EOF'
echo $$ >"$STATE/nspawn.pid"
for r in "${ROOTS[@]}"; do
        mkdir -p "$r/$CGROUP"
        echo $$ >"$r/$CGROUP/cgroup.procs"
done
# Every boot starts from the pristine cached rootfs; changes live in a tmpfs and vanish at stop.
mount -t tmpfs -o mode=755,size=4g postd-test "$STATE/upper"
mkdir "$STATE/upper/data" "$STATE/upper/work"
mount --bind "$ROOTFS" "$STATE/lower"
mount -t overlay overlay \
        -o "lowerdir=$STATE/lower,upperdir=$STATE/upper/data,workdir=$STATE/upper/work" "$STATE/root"
EOF
                printf 'exec systemd-nspawn'
                printf ' %q' "${args[@]}"
                echo
        } >"$STATE/launch.sh"

        start=$(clock)
        setsid unshare --mount --propagation private bash "$STATE/launch.sh" >"$STATE/console.log" 2>&1 </dev/null &
        if ! wait_for "$TIMEOUT" "the container's systemd" leader_pid >/dev/null; then
                cat "$STATE/console.log" >&2
                cmd_stop || true
                die "container $NAME did not start"
        fi
        boot_done() {
                state=$(in_container timeout 5 systemctl is-system-running 2>/dev/null) || true
                [ "$state" = running ] || [ "$state" = degraded ]
        }
        if ! wait_for "$TIMEOUT" "the boot to finish" boot_done; then
                tail -n 30 "$STATE/console.log" >&2
                cmd_stop || true
                die "container $NAME did not finish booting (state: ${state:-unknown})"
        fi
        if [ "$state" = degraded ]; then
                msg "boot degraded; failed units:"
                in_container systemctl --failed --no-legend --no-pager >&2 || true
        fi
        if [ "$mode" = copy ]; then
                # --no-overwrite-dir: a DESTDIR made by mktemp is mode 0700, and "." must not make / so.
                tar -C "$dest" -cf - . | in_container tar -C / --no-same-owner --no-overwrite-dir \
                        --keep-directory-symlink -xf -
                in_container systemctl daemon-reload
        fi
        msg "container $NAME booted in $(since "$start")s: state $state, nspawn pid $(nspawn_pid)," \
                "leader pid $(leader_pid), network $NET${mode:+, DESTDIR $mode $dest}"
}

cmd_stop() {
        local np start
        start=$(clock)
        if np=$(nspawn_pid); then
                # nspawn turns SIGTERM into a clean poweroff of the container.
                kill -TERM "$np"
                if ! wait_for 30 "the container to power off" test ! -d "/proc/$np"; then
                        kill -KILL "$np" 2>/dev/null || true
                        wait_for 5 "nspawn to die" test ! -d "/proc/$np" || true
                fi
                msg "container $NAME stopped in $(since "$start")s"
        else
                msg "container $NAME is not running"
        fi
        cgroup_cleanup
        rmdir "/run/systemd/nspawn/propagate/$NAME" 2>/dev/null || true
        rm -f "$STATE/nspawn.pid"
}

cmd_copy_in() {
        [ $# -eq 2 ] || die "usage: copy-in SRC DST"
        local src=$1 dst=$2
        [ -e "$src" ] || die "no such file: $src"
        # Stream through nsenter: the overlay is invisible from the host, and absolute symlinks must
        # resolve inside the container.
        if [ -d "$src" ]; then
                tar -C "$src" -cf - . | in_container sh -c \
                        'mkdir -p "$1" && tar -C "$1" --no-same-owner --no-overwrite-dir -xf -' sh "$dst"
        else
                case "$dst" in */) dst=$dst$(basename "$src") ;; esac
                in_container sh -c 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"' sh "$dst" \
                        "$(stat -c %a "$src")" <"$src"
        fi
}

cmd_verify() {
        [ $# -ge 1 ] || die "usage: verify UNIT_FILE..."
        local out rc=0
        # Exit status 0 does not mean clean: unknown keys and bad values are only warnings.
        out=$(timeout "$TIMEOUT" systemd-analyze verify "$@" 2>&1) || rc=$?
        if [ $rc -ne 0 ] || [ -n "$out" ]; then
                [ -n "$out" ] && printf '%s\n' "$out" >&2
                msg "verify failed (exit status $rc): $*"
                return 1
        fi
        msg "verify ok: $*"
}

# ---------------------------------------------------------------- selftest
# Below the kernel's ephemeral range (32768-60999), so with host networking no outgoing
# connection's local port can take them.
SELFTEST_PORTS=(24525 24526)

selftest_files() {
        local dir=$1
        cat >"$dir/postd-selftest-server" <<'EOF'
#!/usr/bin/python3
# A socket-activated Type=notify daemon speaking just a greeting; uses the protocols, not libsystemd.
import os, socket, sys

instance = sys.argv[1]
if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) != 1:
    sys.exit("expected exactly one socket from systemd")
listener = socket.socket(fileno=3)
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as n:
    n.connect(addr)
    n.sendall(b"READY=1\nSTATUS=greeting clients")
print(f"selftest {instance}: ready on port {listener.getsockname()[1]}", flush=True)
while True:
    conn, peer = listener.accept()
    print(f"selftest {instance}: connection from {peer[0]}", flush=True)
    conn.sendall(f"220 {instance} postd selftest\r\n".encode())
    conn.close()
EOF
        chmod 755 "$dir/postd-selftest-server"
        cat >"$dir/postd-selftest@.socket" <<EOF
[Unit]
Description=postd harness selftest listener (%i)

[Socket]
ListenStream=127.0.0.1:${SELFTEST_PORTS[0]}
EOF
        cat >"$dir/postd-selftest@.service" <<'EOF'
[Unit]
Description=postd harness selftest daemon (%i)
Requires=postd-selftest@%i.socket
After=postd-selftest@%i.socket

[Service]
Type=notify
ExecStart=/usr/local/bin/postd-selftest-server %i
SyslogIdentifier=postfix-%i/smtpd
EOF
        printf '[Service]\nType=notifyy\nExecStart=/usr/local/bin/postd-selftest-server\nNoSuchKey=1\n' \
                >"$dir/broken.service"
}

# greeting PORT: the first line a client connecting from inside the container reads.
greeting() {
        in_container timeout 10 python3 -c '
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    print(s.recv(200).decode().strip())' "$1"
}

journal_has() { # journal_has IDENTIFIER TEXT
        # Read whole first: grep -q quitting early would SIGPIPE journalctl, a failure under pipefail.
        local lines
        lines=$(in_container journalctl -b --no-pager -o cat SYSLOG_IDENTIFIER="$1") || return 1
        grep -qF "$2" <<<"$lines"
}

cmd_selftest() {
        local tmp fails=0 leader inst port out
        leader=$(running_leader)
        tmp=$(mktemp -d)
        check() { # check DESCRIPTION CMD...
                local what=$1
                shift
                if "$@"; then
                        echo "ok   $what"
                else
                        echo "FAIL $what"
                        fails=$((fails + 1))
                fi
        }
        selftest_files "$tmp"
        cmd_copy_in "$tmp/postd-selftest-server" /usr/local/bin/postd-selftest-server
        cmd_copy_in "$tmp/postd-selftest@.socket" /etc/systemd/system/
        cmd_copy_in "$tmp/postd-selftest@.service" /etc/systemd/system/
        # Instance b gets its own port through a drop-in, as the generator will do for postfix@NAME.
        printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "${SELFTEST_PORTS[1]}" >"$tmp/port.conf"
        cmd_copy_in "$tmp/port.conf" /etc/systemd/system/postd-selftest@b.socket.d/port.conf
        in_container systemctl daemon-reload

        check "host-side verify of the template pair" cmd_verify --root="/proc/$leader/root" \
                /etc/systemd/system/postd-selftest@.socket /etc/systemd/system/postd-selftest@.service
        check "host-side verify rejects a broken unit" eval '! cmd_verify "$tmp/broken.service" 2>/dev/null'

        for inst in a b; do
                check "start postd-selftest@$inst.socket" in_container systemctl start "postd-selftest@$inst.socket"
                check "postd-selftest@$inst.socket is active" \
                        test "$(in_container systemctl is-active "postd-selftest@$inst.socket")" = active
                check "postd-selftest@$inst.service waits for a client" \
                        test "$(in_container systemctl is-active "postd-selftest@$inst.service")" = inactive
        done
        port=${SELFTEST_PORTS[0]}
        for inst in a b; do
                out=$(greeting "$port") || true
                check "connection to port $port activates instance $inst ('$out')" \
                        test "$out" = "220 $inst postd selftest"
                check "postd-selftest@$inst.service is active (Type=notify, READY=1 seen)" \
                        test "$(in_container systemctl show -P ActiveState,SubState "postd-selftest@$inst.service" |
                                tr '\n' ' ')" = "active running "
                check "postd-selftest@$inst.service carries its STATUS=" \
                        test "$(in_container systemctl show -P StatusText "postd-selftest@$inst.service")" = \
                        "greeting clients"
                port=${SELFTEST_PORTS[1]}
        done
        for inst in a b; do
                check "journal: SYSLOG_IDENTIFIER=postfix-$inst/smtpd has the connection" \
                        wait_for 10 "the journal line of $inst" journal_has "postfix-$inst/smtpd" \
                        "selftest $inst: connection from 127.0.0.1"
        done
        check "journal: instance a's lines are not under instance b's identifier" \
                eval '! journal_has postfix-b/smtpd "selftest a:"'

        in_container systemctl stop 'postd-selftest@*' >/dev/null 2>&1 || true
        in_container rm -rf /etc/systemd/system/postd-selftest@.socket /etc/systemd/system/postd-selftest@.service \
                /etc/systemd/system/postd-selftest@b.socket.d /usr/local/bin/postd-selftest-server
        in_container systemctl daemon-reload || true
        rm -rf "$tmp"
        if [ $fails -eq 0 ]; then
                echo "selftest passed"
        else
                echo "selftest FAILED: $fails checks"
                return 1
        fi
}

sub=${1:-}
shift || true
case "$sub" in
check) cmd_check ;;
setup) cmd_setup ;;
boot) cmd_boot "$@" ;;
exec)
        [ $# -ge 1 ] || die "usage: exec CMD [ARGS...]"
        in_container "$@"
        ;;
copy-in) cmd_copy_in "$@" ;;
stop) cmd_stop ;;
verify) cmd_verify "$@" ;;
selftest) cmd_selftest ;;
*)
        sed -n '2,/^set -euo/{/^set -euo/d;/shellcheck/d;s/^# \{0,1\}//;p}' "$0" >&2
        [ -z "$sub" ] && exit 0
        exit 2
        ;;
esac
