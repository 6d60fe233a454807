#!/bin/sh
# get-smtp-sink.sh: extract Postfix's smtp-sink/smtp-source test tools into /opt/postfix-tools without
# installing the postfix package (it would own port 25 and /etc/postfix). Idempotent.
set -eu
DEST=${1:-/opt/postfix-tools}
if [ -x "$DEST/usr/sbin/smtp-sink" ]; then
        exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt downloads as _apt
cd "$tmp"
apt-get download postfix
mkdir -p "$DEST"
dpkg-deb -x postfix_*.deb "$DEST"
test -x "$DEST/usr/sbin/smtp-sink"
# Run it as: LD_LIBRARY_PATH=$DEST/usr/lib/postfix $DEST/usr/sbin/smtp-sink 127.0.0.1:PORT 100
