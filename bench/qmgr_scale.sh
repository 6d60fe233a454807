#!/bin/sh
# qmgr_scale.sh: new mail's speed and latency with an empty queue vs 100 000 deferred messages (issue 4).
# Usage: bench/qmgr_scale.sh [--deferred N] [--messages M] [--sessions S]; runs as root (a real instance),
# with the build in $POSTD_BUILD_DIR (default: build). Takes a few minutes; leaves nothing behind.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export POSTD_BUILD_DIR="${POSTD_BUILD_DIR:-$here/../build}"
for prog in master smtpd cleanup qmgr smtp; do
        if [ ! -x "$POSTD_BUILD_DIR/src/$prog" ]; then
                echo "qmgr_scale.sh: $POSTD_BUILD_DIR/src/$prog is not built (meson compile -C $POSTD_BUILD_DIR)" >&2
                exit 1
        fi
done
if [ ! -x "$POSTD_BUILD_DIR/bench/fill_deferred" ]; then
        echo "qmgr_scale.sh: $POSTD_BUILD_DIR/bench/fill_deferred is not built (meson compile -C $POSTD_BUILD_DIR)" >&2
        exit 1
fi
exec /usr/bin/python3 "$here/qmgr_scale.py" "$@"
