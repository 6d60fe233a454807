#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS | run.sh BUILD_DIR --minutes N: runs every fuzz target for a bounded time
# from its seed corpus (SECONDS each, or N minutes shared by all targets: the documented longer run);
# prints each target's executions and ends with "N passed, N failed" (one test per target, plus the
# check that a UB report halts). A crashing input and its log are kept in $POSTD_FUZZ_FINDINGS
# (default /tmp/postd-fuzz-findings) and named in the output.
set -uo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
targets=()
for exe in "$build"/tests/fuzz/fuzz_*; do
        [ -x "$exe" ] && [ -f "$exe" ] && targets+=("$exe")
done
if [ "${2:-}" = "--minutes" ]; then
        minutes=${3:?"usage: run.sh BUILD_DIR SECONDS | run.sh BUILD_DIR --minutes N"}
        seconds=$((minutes * 60 / (${#targets[@]} > 0 ? ${#targets[@]} : 1)))
        [ "$seconds" -ge 10 ] || seconds=10
else
        seconds=${2:?"usage: run.sh BUILD_DIR SECONDS | run.sh BUILD_DIR --minutes N"}
fi
findings=${POSTD_FUZZ_FINDINGS:-/tmp/postd-fuzz-findings}
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

for exe in "${targets[@]}"; do
        name=$(basename "$exe")
        mkdir -p "$work/$name"
        [ -d "$here/corpus/$name" ] && cp -r "$here/corpus/$name/." "$work/$name/"
        if "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="$work/$name-" "$work/$name" >"$work/$name.log" 2>&1; then
                runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log" | tail -1)
                echo "fuzz $name: ok (${runs:-?} executions in ${seconds}s)"
                passed=$((passed + 1))
        else
                mkdir -p "$findings"
                cp "$work/$name.log" "$findings/$name.log"
                for a in "$work/$name"-*; do [ -f "$a" ] && cp "$a" "$findings/"; done
                echo "fuzz $name: FAILED: $(grep -m1 -E '^SUMMARY|ERROR: ' "$work/$name.log" || echo "exit without a sanitizer summary")"
                echo "  inputs and log kept in $findings ($(cd "$findings" && ls | grep "^$name-" | tr '\n' ' '))"
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
