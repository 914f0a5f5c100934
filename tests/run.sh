#!/usr/bin/env bash
# run.sh - runs every test of wisp and prints one closing line
# "N passed, N failed, N skipped".
#
# Each test program prints TAP. Unit tests are C binaries in $BUILD/tests/unit,
# fuzz targets replay their corpora, integration tests are the executables
# tests/integration/test_* (shell or /usr/bin/python3) driving a real daemon.
# A program that dies without reporting all its planned cases counts the
# missing ones as failures. Logs go to $BUILD/test-logs/.
#   tests/run.sh BUILD [PATTERN]   # PATTERN filters test names (grep -E)
set -uo pipefail
BUILD=${1:-build}
PATTERN=${2:-${WISP_TEST:-.}}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export WISP_BUILD="$ROOT/$BUILD" WISP_ROOT="$ROOT"
LOGS="$ROOT/$BUILD/test-logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
pass=0 fail=0 skip=0
failed_names=()

# run_tap NAME TIMEOUT CMD... : run one TAP producer and add up its results.
run_tap() {
    local name=$1 limit=$2
    shift 2
    echo "$name" | grep -qE -- "$PATTERN" || return 0
    local log="$LOGS/${name//\//_}.log" start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1 </dev/null
    local rc=$?
    local p f s plan
    p=$(grep -cE '^ok [0-9]+' "$log" | tr -d ' ')
    s=$(grep -cE '^ok [0-9]+.*# SKIP' "$log" | tr -d ' ')
    f=$(grep -cE '^not ok [0-9]+' "$log" | tr -d ' ')
    p=$((p - s))
    plan=$(grep -m1 -oE '^1\.\.[0-9]+' "$log" | cut -d. -f3)
    local seen=$((p + s + f))
    if [ -n "$plan" ] && [ "$seen" -lt "$plan" ]; then
        f=$((f + plan - seen))
        echo "# $name: only $seen of $plan planned results (exit $rc)" >>"$log"
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=$((f + 1))
        echo "# $name: exited with status $rc without a failing result" >>"$log"
    fi
    pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
    local verdict=ok
    [ "$f" -gt 0 ] && verdict=FAIL && failed_names+=("$name")
    printf '%-44s %4d passed %3d failed %3d skipped  %3ds  %s\n' "$name" "$p" "$f" "$s" \
        $((SECONDS - start)) "$verdict"
    if [ "$f" -gt 0 ]; then
        grep -E '^(not ok|#)' "$log" | head -20 | sed 's/^/    /'
    fi
    grep -E '^ok [0-9]+.*# SKIP' "$log" | grep -v 'not selected' | head -5 | sed 's/^/    /'
}

# Fuzz corpora replay: one TAP line per target.
replay() {
    local bin=$1 name corpus
    name=$(basename "$bin")
    corpus="$ROOT/tests/fuzz/corpus/${name#fuzz_}"
    if [ ! -d "$corpus" ]; then
        echo "1..1"
        echo "not ok 1 - $name: no corpus at $corpus"
        return
    fi
    echo "1..1"
    if "$bin" "$corpus"; then echo "ok 1 - $name replays its corpus"; else echo "not ok 1 - $name"; fi
}
export -f replay
export ROOT

for t in "$ROOT/$BUILD"/tests/unit/test_*; do
    [ -x "$t" ] || continue
    run_tap "unit/$(basename "$t")" 300 "$t"
done
for t in "$ROOT/$BUILD"/tests/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    run_tap "fuzz/$(basename "$t")" 300 bash -c 'replay "$1"' _ "$t"
done
for t in "$ROOT"/tests/integration/test_*; do
    [ -x "$t" ] || continue
    run_tap "integration/$(basename "$t")" 600 "$t"
done

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed: ${failed_names[*]} (logs in $LOGS)"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
