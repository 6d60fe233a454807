#!/usr/bin/env bash
# run.sh: benchmark postd against Debian's Postfix 3.7 on this machine, same durability, alternating runs.
#
# Usage (as root, Debian 12): bench/run.sh [throughput|sessions|deferred|instances|systemd-instances|profile|phases|all|setup] [ARGS]
# (default throughput: bench/bench.py; ARGS go to the script).
# Environment: BENCH_MESSAGES (default 10000: messages of the 20-session 1 KiB runs; the -s 1 and 100 KiB
# runs send a fifth of it), BENCH_ROUNDS (default 2, at least 2), BENCH_KEEP=1 keeps the temp dir.
#
# It installs the `postfix` package as the reference without letting it start (policy-rc.d refuses, debconf
# says "No configuration", then it is disabled), builds postd in build-bench/ (release) if needed, and hands
# over to bench/bench.py, which sets up one instance of each in a temp dir, each relaying to one smtp-sink,
# measures, prints the table and stops both. Postfix stays installed but disabled afterwards; every file this
# script changes outside its temp dir is restored on exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

die() {
        echo "bench/run.sh: $*" >&2
        exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (it installs postfix and starts mail instances)"

POLICY=/usr/sbin/policy-rc.d
policy_backup=""
restore_policy() {
        if [ -n "$policy_backup" ]; then
                mv -f "$policy_backup" "$POLICY"
                policy_backup=""
        elif [ -e "$POLICY.bench-created" ]; then
                rm -f "$POLICY" "$POLICY.bench-created"
        fi
}

install_postfix() {
        if dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
                return 0
        fi
        echo "bench: installing Debian's postfix as the reference (it will not be started)"
        # No service may start during the install; an existing policy-rc.d is kept aside and put back.
        if [ -e "$POLICY" ]; then
                policy_backup=$(mktemp "$POLICY.bench-XXXXXX")
                cp -p "$POLICY" "$policy_backup"
        else
                touch "$POLICY.bench-created"
        fi
        printf '#!/bin/sh\n# bench/run.sh: no service starts while postfix is installed\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends postfix >/dev/null
        restore_policy
}

disable_postfix() {
        # The package's own instance must never run: disabled always, stopped when systemd runs.
        if command -v systemctl >/dev/null; then
                systemctl disable postfix.service >/dev/null 2>&1 || true
                if [ -d /run/systemd/system ]; then
                        systemctl disable --now postfix.service >/dev/null 2>&1 || true
                fi
        fi
}

build_postd() {
        local dir=$top/build-bench
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" --buildtype=release >/dev/null || die "meson setup failed"
        fi
        ninja -C "$dir" >/dev/null || die "building postd failed (ninja -C $dir)"
}

packages() {
        local missing=()
        for p in meson ninja-build pkg-config build-essential libssl-dev libgdbm-dev \
                libseccomp-dev python3 linux-perf strace time; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
                apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
        getent group postdrop >/dev/null || groupadd --system postdrop
        getent passwd postfix >/dev/null ||
                useradd --system --user-group --home-dir /var/spool/postfix --no-create-home \
                        --shell /usr/sbin/nologin postfix
}

trap restore_policy EXIT
packages
install_postfix
disable_postfix
[ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/smtp-sink ] || die "smtp-source/smtp-sink missing after installing postfix"
build_postd

# Postfix accepts `postfix -c DIR` for a non-default DIR only when the default main.cf lists it in
# alternate_config_directories; the scripts add their dirs to /etc/postfix/main.cf and restore the file.
run_py() {
        env -u INVOCATION_ID -u JOURNAL_STREAM -u MAIL_CONFIG \
                POSTD_BUILD_DIR="$top/build-bench" PYTHONPATH="$top/tests/integration" \
                /usr/bin/python3 "$@"
}
what=${1:-throughput}
[ $# -gt 0 ] && shift
case $what in
setup) ;;
throughput) run_py "$top/bench/bench.py" "$@" ;;
sessions) run_py "$top/bench/sessions.py" "$@" ;;
deferred) run_py "$top/bench/deferred.py" "$@" ;;
instances) run_py "$top/bench/many_instances.py" "$@" ;;
profile) run_py "$top/bench/profile_one.py" "$@" ;;
phases) run_py "$top/bench/phases.py" "$@" ;;
systemd-instances) run_py "$top/bench/instances_systemd.py" "$@" ;;
all)
        run_py "$top/bench/bench.py"
        run_py "$top/bench/profile_one.py"
        run_py "$top/bench/phases.py"
        run_py "$top/bench/deferred.py"
        run_py "$top/bench/many_instances.py"
        run_py "$top/bench/instances_systemd.py"
        run_py "$top/bench/sessions.py"
        ;;
*) die "unknown benchmark '$what' (setup, throughput, sessions, deferred, instances, profile, phases, systemd-instances, all)" ;;
esac
echo "bench: Postfix stays installed but disabled (systemctl disable postfix; nothing of it runs)."
