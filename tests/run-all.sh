#!/usr/bin/env bash
# run-all.sh [--strict]: builds postd (plain, ASan+UBSan, fuzz) and runs every suite; prints each suite's
# counts and ends with "N passed, N failed, N skipped", summed over tests (not steps).
#
# Strict mode (--strict, or CI=true as CI systems set it): a test whose prerequisite is missing
# (nspawn, cgroups, swaks, smtp-sink, a built role...) fails instead of skipping.
# Adding a suite is one line below: `suite NAME KIND ARGS...` with KIND one of
#   meson BUILD_DIR SUITE   meson test's tests of that suite
#   pytest PATH...          pytest on those paths (with $POSTD_BUILD_DIR set to build/)
#   fuzz BUILD_DIR SECONDS  every libFuzzer target of that build, SECONDS each (tests/fuzz/run.sh)
#   script COMMAND...       any command whose last output line is "N passed, N failed[, N skipped]"
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

case "${1:-}" in
--strict) export POSTD_STRICT=1 ;;
"") ;;
*)
        echo "usage: $0 [--strict]" >&2
        exit 2
        ;;
esac
[ "${CI:-}" = true ] && export POSTD_STRICT=1
# Every sanitizer report stops the process with a stack trace: a UB report is a failure, never a log line.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1

work=$(mktemp -d /tmp/postd-run-all-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
skipped=0
failures=()
declare -A broken=() # build directories whose build failed

tally() { # tally NAME RAN PASSED FAILED SKIPPED SECONDS
        local name=$1 ran=$2 p=$3 f=$4 s=$5 t=$6
        if [ "$ran" -eq 0 ] && [ "$f" -eq 0 ]; then
                echo "=== $name: FAILED: no test ran"
                f=1
        fi
        passed=$((passed + p))
        failed=$((failed + f))
        skipped=$((skipped + s))
        [ "$f" -gt 0 ] && failures+=("$name")
        echo "=== $name: ran $ran, passed $p, failed $f, skipped $s ($t s)"
}

build() { # build NAME DIR [meson options...]: a step that counts one failure if it breaks
        local name=$1 dir=$2
        shift 2
        echo "=== $name"
        local start=$SECONDS
        # An existing build directory gets the options too (a demo build lacks test_hooks, say).
        if { if [ -f "$dir/build.ninja" ]; then { [ $# -eq 0 ] || meson configure "$dir" "$@" >/dev/null; }; else
                meson setup "$dir" "$@" >/dev/null; fi; } && ninja -C "$dir"; then
                echo "=== $name: ok ($((SECONDS - start)) s)"
        else
                broken[$dir]=1
                failed=$((failed + 1))
                failures+=("$name")
                echo "=== $name: FAILED ($((SECONDS - start)) s)"
        fi
}

counts_meson() { # BUILD_DIR SUITE -> "ran passed failed skipped" from meson's test log
        /usr/bin/python3 - "$1/meson-logs/testlog.json" <<'EOF'
import json, sys
res = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
ok = sum(r in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r == "SKIP" for r in res)
print(len(res) - skip, ok, len(res) - ok - skip, skip)
EOF
}

counts_junit() { # XML -> "ran passed failed skipped"
        /usr/bin/python3 - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
n, f, e, s = (sum(int(x.get(k, 0)) for x in suites) for k in ("tests", "failures", "errors", "skipped"))
print(n - s, n - f - e - s, f + e, s)
EOF
}

counts_line() { # LOG -> "ran passed failed skipped" from a last line "N passed, N failed[, N skipped]"
        local last
        last=$(tail -n 1 "$1")
        if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
                local s=${BASH_REMATCH[4]:-0}
                echo "$((BASH_REMATCH[1] + BASH_REMATCH[2])) ${BASH_REMATCH[1]} ${BASH_REMATCH[2]} $s"
        else
                echo "0 0 1 0" # no summary line: the script broke before its end
        fi
}

suite() { # suite NAME KIND ARGS... (see the top of this file)
        local name=$1 kind=$2
        shift 2
        echo "=== $name"
        local start=$SECONDS rc counts dir log="$work/suite.log"
        case $kind in
        meson | fuzz) dir=$1 ;;
        *) dir=build ;;
        esac
        if [ -n "${broken[$dir]:-}" ]; then
                tally "$name (not run: $dir did not build)" 0 0 0 0 0
                return
        fi
        case $kind in
        meson)
                rm -f "$1/meson-logs/testlog.json"
                meson test -C "$1" --print-errorlogs --suite "$2"
                rc=$?
                counts=$(counts_meson "$1" 2>/dev/null || echo "0 0 1 0")
                ;;
        pytest)
                local xml="$work/junit.xml"
                rm -f "$xml"
                env POSTD_BUILD_DIR="$top/build" /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider \
                        --junitxml="$xml" "$@"
                rc=$?
                counts=$(counts_junit "$xml" 2>/dev/null || echo "0 0 1 0")
                ;;
        fuzz)
                tests/fuzz/run.sh "$@" 2>&1 | tee "$log"
                rc=${PIPESTATUS[0]}
                counts=$(counts_line "$log")
                ;;
        script)
                "$@" 2>&1 | tee "$log"
                rc=${PIPESTATUS[0]}
                counts=$(counts_line "$log")
                ;;
        esac
        read -r ran p f s <<<"$counts"
        # A non-zero exit with no failed test counted (a crash, a collection error) is still a failure.
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
        tally "$name" "$ran" "$p" "$f" "$s" $((SECONDS - start))
}

# ---- the steps: one line per build or suite ----
# test_hooks: the fault-injection switch the seccomp tests use (tests/integration/test_privileges.py).
build "build" build -Dtest_hooks=true
suite "unit tests" meson build unit
build "build (asan+ubsan)" build-asan -Db_sanitize=address,undefined -Db_lundef=false
suite "unit tests (asan+ubsan)" meson build-asan unit
suite "integration tests" pytest tests/integration
# A real systemd (PID 1 in an nspawn container).
suite "systemd tests" pytest tests/systemd
# The SELinux policy module, offline (no SELinux kernel): reference store with and without it.
suite "selinux policy" script tests/selinux/run.sh
# The RPM spec built with rpmbuild on Debian, installed into a scratch root, rpmlint.
suite "rpm package" script tests/rpm/run.sh
CC=clang build "build (fuzz)" build-fuzz -Dfuzz=true -Db_lundef=false
suite "fuzz (${FUZZ_SECONDS}s per target)" fuzz build-fuzz "$FUZZ_SECONDS"

echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
