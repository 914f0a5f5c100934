#!/usr/bin/env bash
# test_bench_quick.sh - runs the benchmark suite in its tiny configuration
# (bench/run.sh BUILD --quick) so the benchmark code cannot rot: every
# benchmark must run to the end against the real daemon. Its figures are not
# judged here (speed is shown by `make bench`, not by pass/fail tests).
set -u
ROOT=${WISP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${WISP_BUILD:-$ROOT/build}
echo "1..4"
missing=()
for tool in gcc /usr/bin/python3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x "$BUILD/wisp" ] || missing+=("$BUILD/wisp")
if [ ${#missing[@]} -gt 0 ]; then
    echo "ok 1 - bench quick run # SKIP missing: ${missing[*]}"
    echo "ok 2 - cpu_per_env.py runs # SKIP missing: ${missing[*]}"
    echo "ok 3 - store_batch runs # SKIP missing: ${missing[*]}"
    echo "ok 4 - the env rate's isolation rows are measured # SKIP missing: ${missing[*]}"
    exit 0
fi
# Without nginx (or crun) the suite still runs every wisp benchmark; only those
# baselines are reported as not measured (scripts/deps.sh bench installs them).
[ -x /usr/sbin/nginx ] || echo "# nginx absent: the warm-path baseline is not measured"
log=$(mktemp /tmp/wisp-bench-quick-XXXXXX)
trap 'rm -f "$log"' EXIT
start=$SECONDS
if timeout --kill-after=10 120 bash "$ROOT/bench/run.sh" "$BUILD" --quick >"$log" 2>&1; then
    echo "ok 1 - bench quick run ($((SECONDS - start)) s)"
    grep -E '^\| [0-9] ' "$log" | sed 's/^/# /'
else
    rc=$?
    echo "not ok 1 - bench quick run (exit $rc after $((SECONDS - start)) s)"
    grep -E 'failed|Error|error' "$log" | head -20 | sed 's/^/# /'
    tail -20 "$log" | sed 's/^/# /'
fi
# The A/B helper, once, tiny (it uses the tools run.sh built above).
if out=$(timeout --kill-after=10 60 /usr/bin/python3 "$ROOT/bench/cpu_per_env.py" "$BUILD" \
    --seconds 1 --conns 2 2>&1) && grep -q "CPU per env" <<<"$out"; then
    echo "ok 2 - cpu_per_env.py runs"
    grep "CPU per env" <<<"$out" | sed 's/^/# /'
else
    echo "not ok 2 - cpu_per_env.py runs"
    tail -10 <<<"$out" | sed 's/^/# /'
fi
# The log writer's store micro-benchmark, once, tiny (run.sh built it above).
if out=$(timeout --kill-after=10 60 "$BUILD/bench/store_batch" --batches 2 --per 40 2>&1) &&
    grep -q "^| total " <<<"$out"; then
    echo "ok 3 - store_batch runs"
    grep "^| total " <<<"$out" | sed 's/^/# /'
else
    echo "not ok 3 - store_batch runs"
    tail -10 <<<"$out" | sed 's/^/# /'
fi
# The env rate's middle rows (bench/sandbox_rate: wisp's spawner without the daemon, the
# binary exiting at once, then answering one invocation from the tool) ran and made every
# sandbox they were asked for (bench.py reports a failure instead of the row).
if grep -q '^| isolation alone: ' "$log" && grep -q '^| isolation + one invocation' "$log"; then
    echo "ok 4 - the env rate's isolation rows are measured"
    grep '^| isolation ' "$log" | sed 's/^/# /'
else
    echo "not ok 4 - the env rate's isolation rows are measured"
    grep -A2 'isolation\|sandbox_rate' "$log" | head -8 | sed 's/^/# /'
fi
