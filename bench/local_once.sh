#!/bin/sh
# local_once.sh: local delivery throughput (mbox, Maildir; 1 and 10 recipients per message), to measure
# what recording each attempt before the copy costs. Usage: bench/local_once.sh [-n MESSAGES] [-r ROUNDS];
# runs as root, with the build in $POSTD_BUILD_DIR (default: build). Compare two builds by running it
# with each. Leaves nothing behind.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export POSTD_BUILD_DIR="${POSTD_BUILD_DIR:-$here/../build}"
for prog in src/master src/local src/qmgr tests/queue-inject; do
        if [ ! -x "$POSTD_BUILD_DIR/$prog" ]; then
                echo "local_once.sh: $POSTD_BUILD_DIR/$prog is not built (meson compile -C $POSTD_BUILD_DIR)" >&2
                exit 1
        fi
done
exec /usr/bin/python3 "$here/local_once.py" "$@"
