#!/usr/bin/env bash
# run-all.sh: builds postd (plain, ASan+UBSan, fuzz) and runs every suite; ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

passed=0
failed=0
failures=()
step() { # step NAME COMMAND...
        local name=$1
        shift
        echo "=== $name"
        local start=$SECONDS
        if "$@"; then
                passed=$((passed + 1))
                echo "=== $name: ok ($((SECONDS - start)) s)"
        else
                failed=$((failed + 1))
                failures+=("$name")
                echo "=== $name: FAILED ($((SECONDS - start)) s)"
        fi
}

build() { # build DIR [meson options...]
        local dir=$1
        shift
        [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null || return 1
        ninja -C "$dir"
}

step "build" build build
step "unit tests" meson test -C build --print-errorlogs --suite unit
step "build (asan+ubsan)" build build-asan -Db_sanitize=address,undefined -Db_lundef=false
step "unit tests (asan+ubsan)" env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
        meson test -C build-asan --print-errorlogs --suite unit
step "integration tests" env POSTD_BUILD_DIR="$top/build" \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
# A real systemd (PID 1 in an nspawn container); skipped, visibly, where nspawn cannot run.
step "systemd tests" env POSTD_BUILD_DIR="$top/build" \
        /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/systemd
build_fuzz() { CC=clang build build-fuzz -Dfuzz=true -Db_lundef=false; }
step "build (fuzz)" build_fuzz
step "fuzz (${FUZZ_SECONDS}s per target)" tests/fuzz/run.sh "$top/build-fuzz" "$FUZZ_SECONDS"

echo
if [ $failed -gt 0 ]; then
        echo "failed steps: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
