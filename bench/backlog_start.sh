#!/bin/sh
# backlog_start.sh: time from the master's start to READY=1 with a big queue (issue 12, item 7).
# Usage: bench/backlog_start.sh [--messages N] (default 100000); runs as root (a real instance), with the
# build in $POSTD_BUILD_DIR (default: build). Takes a few minutes; leaves nothing behind.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export POSTD_BUILD_DIR="${POSTD_BUILD_DIR:-$here/../build}"
for prog in master postfix smtpd cleanup; do
        if [ ! -x "$POSTD_BUILD_DIR/src/$prog" ]; then
                echo "backlog_start.sh: $POSTD_BUILD_DIR/src/$prog is not built (meson compile -C $POSTD_BUILD_DIR)" >&2
                exit 1
        fi
done
if [ ! -x "$POSTD_BUILD_DIR/bench/fill_deferred" ]; then
        echo "backlog_start.sh: $POSTD_BUILD_DIR/bench/fill_deferred is not built (meson compile -C $POSTD_BUILD_DIR)" >&2
        exit 1
fi
exec /usr/bin/python3 "$here/backlog_start.py" "$@"
