#!/usr/bin/env bash
# run.sh - runs wisp's benchmark suite and writes bench/results/<date>.md.
#
#   bench/run.sh BUILD [--quick] [--only NAME,NAME] [--density K]
#
# BUILD is the build folder holding wisp, runtimes/ and examples/ (as `make`
# leaves them). The C tools of the suite (loadgen, spawn_baseline, the no-op
# bootstrap) are compiled into BUILD/bench/; the npm peers (bench/package.json,
# pinned by package-lock.json) are installed into bench/node_modules unless
# --quick. bench.py then runs every benchmark with a clean environment and
# prints the tables; the same text goes to bench/results/<date>.md.
#
# --quick is a tiny configuration (a few iterations of each benchmark, no npm
# peers) that the test suite runs so the benchmark code cannot rot; its
# figures are not measurements.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: bench/run.sh BUILD [--quick] [--only NAMES] [--density K]}
shift
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
QUICK=()
PASS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=(--quick) ;;
    --only | --density) PASS+=("$1" "$2"); shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

for f in "$BUILD/wisp" "$BUILD/runtimes"; do
    [ -e "$f" ] || { echo "run.sh: $f missing: run make first" >&2; exit 2; }
done

# The tools: rebuilt when their source is newer.
TOOLS="$BUILD/bench"
mkdir -p "$TOOLS"
CFLAGS=(-std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter)
build_tool() { # OUT SRC... -- extra flags
    local out=$1
    shift
    local srcs=() newer=0
    while [ $# -gt 0 ] && [ "$1" != -- ]; do srcs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    for s in "${srcs[@]}"; do [ "$s" -nt "$out" ] && newer=1; done
    [ -x "$out" ] && [ $newer -eq 0 ] && return 0
    gcc "${CFLAGS[@]}" -o "$out" "${srcs[@]}" "$@"
}
build_tool "$TOOLS/loadgen" "$ROOT/bench/loadgen.c" -- -pthread -lm
build_tool "$TOOLS/spawn_baseline" "$ROOT/bench/spawn_baseline.c" -- -lm
# The same tool, static: it also runs inside a wisp env (the floor inside the sandbox).
build_tool "$TOOLS/spawn_baseline-static" "$ROOT/bench/spawn_baseline.c" -- -static -lm
build_tool "$TOOLS/noop-bootstrap" "$ROOT/bench/functions/noop-c/main.c" \
    "$ROOT/runtimes/c/wisp_runtime.c" "$ROOT/runtimes/c/wisp_runtime.h" -- -static \
    -I"$ROOT/runtimes/c"
# The log writer's store work (bench/store_batch.c), linked with the daemon's own objects.
mapfile -t WISP_OBJS < <(find "$BUILD/src" -name '*.o' ! -path "$BUILD/src/main.o" | sort)
WISP_PKGS=(libuv jansson sqlite3 libseccomp libcap libarchive openssl libcurl)
SAN=() # objects of `make asan-test` (build/asan) link only with their sanitizers
# (grep reads all of nm's output: -q would end the pipe early, which pipefail counts as failure)
if nm "${WISP_OBJS[0]}" 2>/dev/null | grep __asan_ >/dev/null; then
    SAN=(-fsanitize=address,undefined)
fi
# shellcheck disable=SC2046 # pkg-config prints separate flags
build_tool "$TOOLS/store_batch" "$ROOT/bench/store_batch.c" "${WISP_OBJS[@]}" -- -I"$ROOT/src" \
    $(pkg-config --cflags "${WISP_PKGS[@]}") $(pkg-config --libs "${WISP_PKGS[@]}") \
    -lhttp_parser -lm -pthread "${SAN[@]}"

# The isolation alone (bench/sandbox_rate.c): the daemon's sandbox module, no daemon.
# shellcheck disable=SC2046 # pkg-config prints separate flags
build_tool "$TOOLS/sandbox_rate" "$ROOT/bench/sandbox_rate.c" "${WISP_OBJS[@]}" -- -I"$ROOT/src" \
    $(pkg-config --cflags "${WISP_PKGS[@]}") $(pkg-config --libs "${WISP_PKGS[@]}") \
    -lhttp_parser -lm -pthread "${SAN[@]}"

# The npm peers (full runs only). A failure only means those peers are not measured.
if [ ${#QUICK[@]} -eq 0 ] && [ -x /usr/bin/npm ]; then
    lock="$ROOT/bench/package-lock.json" stamp="$ROOT/bench/node_modules/.installed"
    if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
        echo "run.sh: installing the npm peers into bench/node_modules" >&2
        if (cd "$ROOT/bench" && env -u NODE_OPTIONS timeout 600 npm ci --no-audit --no-fund \
            --loglevel=error >&2); then
            touch "$stamp"
        else
            echo "run.sh: npm ci failed: the Node emulator peers will not be measured" >&2
        fi
    fi
fi

mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/$(date -u +%Y-%m-%dT%H-%M-%SZ)${QUICK:+-quick}.md"
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true
exec env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME="${HOME:-/root}" LANG=C.UTF-8 \
    WISP_LOG_LEVEL="${WISP_LOG_LEVEL:-warn}" \
    /usr/bin/python3 "$ROOT/bench/bench.py" --root "$ROOT" --build "$BUILD" --tools "$TOOLS" \
    --out "$OUT" ${QUICK[@]+"${QUICK[@]}"} ${PASS[@]+"${PASS[@]}"}
