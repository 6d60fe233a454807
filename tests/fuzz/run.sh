#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS: runs every fuzz target for a bounded time from its seed corpus.
set -euo pipefail
build=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/postd-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
count=0
for exe in "$build"/tests/fuzz/fuzz_*; do
        [ -x "$exe" ] && [ -f "$exe" ] || continue
        name=$(basename "$exe")
        mkdir -p "$work/$name"
        [ -d "$here/corpus/$name" ] && cp -r "$here/corpus/$name/." "$work/$name/"
        count=$((count + 1))
        if "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
                -artifact_prefix="$work/$name-" "$work/$name" >"$work/$name.log" 2>&1; then
                echo "fuzz $name: ok ($(grep -c . "$work/$name.log") log lines)"
        else
                echo "fuzz $name: FAILED"
                tail -40 "$work/$name.log"
                status=1
        fi
done
if [ $count -eq 0 ]; then
        echo "no fuzz targets built in $build" >&2
        exit 1
fi
exit $status
