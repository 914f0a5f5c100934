#!/usr/bin/env bash
# run-libfuzzer.sh SECONDS [TARGET...] - build every fuzz target (or the named
# ones) with clang's libFuzzer, ASan and UBSan into build/fuzz, then fuzz each
# for SECONDS starting from a copy of its checked-in corpus. New crashes are
# written to build/fuzz/crashes/<target>/ and make the script fail.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-30}
shift || true
OUT=build/fuzz
mkdir -p "$OUT/obj"
PKGS="libuv jansson sqlite3 libseccomp libcap libarchive openssl libcurl"
CFLAGS="-std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Isrc $(pkg-config --cflags $PKGS)
 -DWISP_VERSION=\"fuzz\" -DWISP_GIT=\"fuzz\" -fsanitize=fuzzer-no-link,address,undefined"
LIBS="$(pkg-config --libs $PKGS) -lhttp_parser -lm"
objs=()
for src in $(find src -name '*.c' ! -path src/main.c | sort); do
    obj=$OUT/obj/$(echo "$src" | tr / _).o
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
        clang $CFLAGS -c -o "$obj" "$src"
    fi
    objs+=("$obj")
done
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
failed=0
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    clang $CFLAGS -fsanitize=fuzzer,address,undefined -o "$OUT/$t" "tests/fuzz/$t.c" "${objs[@]}" $LIBS
    work=$OUT/corpus/$name
    mkdir -p "$work" "$OUT/crashes/$name"
    cp -n tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
    dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
    echo "== fuzzing $t for ${SECONDS_EACH}s"
    if ! "$OUT/$t" "${dict[@]}" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/crashes/$name/" "$work" 2>"$OUT/$t.log"; then
        echo "FAIL: $t found a crash; see $OUT/$t.log and $OUT/crashes/$name/"
        tail -30 "$OUT/$t.log"
        failed=1
    else
        grep -E '^(#[0-9]+\s+DONE|Done)' "$OUT/$t.log" | tail -1 || true
    fi
done
exit $failed
