#!/usr/bin/env bash
# dev.sh: the two set-up commands of the README. `./dev.sh demo` builds and runs a demo instance,
# `./dev.sh test` runs every test. Both install what a fresh Debian 12 machine lacks.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"

APT_PACKAGES=(build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
              libssl-dev libgdbm-dev libseccomp-dev
              python3 python3-pytest swaks openssl iproute2 systemd-container debootstrap dnsmasq-base
              groff-base man-db rpm rpmlint
              libselinux1-dev checkpolicy semodule-utils selinux-utils policycoreutils
              policycoreutils-python-utils selinux-policy-dev setools python3-setools python3-selinux
              dovecot-core dovecot-lmtpd libnet-ssleay-perl libio-socket-ssl-perl
              python3-prometheus-client python3-aiosmtpd libpcre2-dev liblmdb-dev
              unbound ldnsutils opendkim opendkim-tools python3-dkim rspamd)

need_root() {
        if [ "$(id -u)" != 0 ]; then
                echo "dev.sh: run as root (it installs packages and creates instance directories)" >&2
                exit 1
        fi
}

install_packages() {
        local missing=()
        for p in "${APT_PACKAGES[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
                echo "dev.sh: installing ${missing[*]}"
                apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
}

# The mail system's accounts, as Postfix packages create them: postfix owns the queue,
# postdrop is the group of the setgid postdrop command and the maildrop directory.
ensure_accounts() {
        getent group postdrop >/dev/null || groupadd --system postdrop
        getent passwd postfix >/dev/null ||
                useradd --system --user-group --home-dir /var/spool/postfix --no-create-home \
                        --shell /usr/sbin/nologin postfix
        # A local user the tests deliver mail to (mbox and ~/Maildir).
        getent passwd postd-test >/dev/null ||
                useradd --create-home --home-dir /home/postd-test --shell /usr/sbin/nologin postd-test
}

build() { # build DIR [meson options...]
        local dir=$1
        shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" "$@" >/dev/null
        fi
        ninja -C "$dir" >/dev/null
}

cmd=${1:-}
case "$cmd" in
demo)
        need_root
        install_packages
        ensure_accounts
        build build
        exec "$top/tests/demo.sh" "$top/build"
        ;;
test)
        need_root
        install_packages
        ensure_accounts
        # Postfix's smtp-sink/smtp-source (peers and load of the smtp client tests), unpacked
        # under /opt/postfix-tools without installing Postfix itself.
        "$top/tests/integration/get-smtp-sink.sh"
        exec "$top/tests/run-all.sh"
        ;;
*)
        echo "usage: $0 demo|test" >&2
        exit 2
        ;;
esac
