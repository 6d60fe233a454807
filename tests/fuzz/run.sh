#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS: runs every fuzz target for a bounded time from its seed corpus; ends with
# "N passed, N failed" (one test per target, plus the check that a UB report halts).
set -uo pipefail
build=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/postd-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
# A UBSan report must end the run (the build has -fno-sanitize-recover=all; this holds it to that).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
passed=0
failed=0

# The build's flags stop a program at its first undefined behaviour: a deliberate overflow exits
# non-zero with UBSan's report, or every "ok" below could hide reports that scrolled past.
if [ -x "$build/tests/fuzz/ub-halts" ]; then
        # halt_on_error=0: the build's -fno-sanitize-recover=all alone must stop it.
        UBSAN_OPTIONS=halt_on_error=0 "$build/tests/fuzz/ub-halts" >"$work/ub.log" 2>&1
        rc=$?
        if [ $rc -ne 0 ] && grep -q "runtime error: signed integer overflow" "$work/ub.log"; then
                echo "ub-halts: ok (exit $rc on the deliberate overflow)"
                passed=$((passed + 1))
        else
                echo "ub-halts: FAILED: exit $rc, a UB report does not stop the fuzz build's programs"
                cat "$work/ub.log"
                failed=$((failed + 1))
        fi
else
        echo "ub-halts: FAILED: $build/tests/fuzz/ub-halts is not built"
        failed=$((failed + 1))
fi

for exe in "$build"/tests/fuzz/fuzz_*; do
        [ -x "$exe" ] && [ -f "$exe" ] || continue
        name=$(basename "$exe")
        mkdir -p "$work/$name"
        [ -d "$here/corpus/$name" ] && cp -r "$here/corpus/$name/." "$work/$name/"
        if "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
                -artifact_prefix="$work/$name-" "$work/$name" >"$work/$name.log" 2>&1; then
                echo "fuzz $name: ok ($(grep -c . "$work/$name.log") log lines)"
                passed=$((passed + 1))
        else
                echo "fuzz $name: FAILED"
                tail -40 "$work/$name.log"
                failed=$((failed + 1))
        fi
done
if [ $((passed + failed)) -le 1 ]; then
        echo "no fuzz targets built in $build" >&2
        failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
