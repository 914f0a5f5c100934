#!/usr/bin/env bash
# deps.sh - install the Debian packages wisp needs to build, test and run.
#
# Called by the Makefile before every build, so a fresh Debian 12 machine needs
# nothing installed by hand. It only calls apt when something is missing.
#   scripts/deps.sh build   # packages to compile wisp
#   scripts/deps.sh test    # + packages the tests drive (curl, awscli, boto3...)
#   scripts/deps.sh bench   # + packages the benchmarks compare against
set -euo pipefail

build_pkgs=(gcc make pkg-config libc6-dev libuv1-dev libhttp-parser-dev libjansson-dev
    libsqlite3-dev libseccomp-dev libcap-dev libarchive-dev libssl-dev libcurl4-openssl-dev
    python3 nodejs zip curl)
test_pkgs=(clang clang-format libclang-rt-14-dev curl awscli python3-boto3 unzip iproute2 procps
    util-linux file)
bench_pkgs=(nginx wrk crun hyperfine)

want=("${build_pkgs[@]}")
case "${1:-build}" in
build) ;;
test) want+=("${test_pkgs[@]}") ;;
bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    # node may come from another nodejs build already on PATH at /usr/bin/node.
    if [ "$p" = nodejs ] && [ -x /usr/bin/node ]; then continue; fi
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages and not root; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
