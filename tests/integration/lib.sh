# lib.sh - shared helpers for the shell integration tests: start a real wisp
# daemon on free loopback ports with a temporary data folder, TAP output, and
# cleanup of everything the test started (by PID).
#
#   . "$(dirname "$0")/lib.sh"
#   plan 3
#   wisp_start
#   is "health" "$(curl -s "$WISP_ADMIN/healthz" | jq -r .status)" ok
#   wisp_stop
set -u
WISP_ROOT=${WISP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WISP_BUILD=${WISP_BUILD:-$WISP_ROOT/build}
WISP_BIN=$WISP_BUILD/wisp
PY=/usr/bin/python3
AWS=/usr/bin/aws
_tap_n=0
_tap_failed=0
WISP_PID=
TEST_TMP=$(mktemp -d /tmp/wisp-it-XXXXXX)
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS PYTHONPATH || true

plan() { echo "1..$1"; }
ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1"; }
not_ok() {
    _tap_n=$((_tap_n + 1))
    _tap_failed=$((_tap_failed + 1))
    echo "not ok $_tap_n - $1"
    shift
    for line in "$@"; do echo "# $line"; done
}
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1 # SKIP $2"; }
# is DESC GOT EXPECTED
is() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:      $(printf %q "$2")" "expected: $(printf %q "$3")"; fi
}
# like DESC GOT REGEX
like() {
    if printf '%s' "$2" | grep -qE -- "$3"; then ok "$1"; else not_ok "$1" "got: $(printf %q "$2" | head -c 600)" "expected to match: $3"; fi
}
# check DESC CMD... : passes if CMD exits 0
check() {
    local desc=$1
    shift
    local out
    if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "command failed: $*" "$(printf '%s' "$out" | tail -5)"; fi
}

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wisp_start [extra serve args...]: starts the daemon; sets WISP_ADMIN, WISP_GATEWAY,
# WISP_TOKEN, WISP_DATA and the AWS_* variables for the CLI.
wisp_start() {
    WISP_DATA=${WISP_DATA:-$TEST_TMP/data}
    local ap gp
    ap=$(free_port)
    gp=$(free_port)
    WISP_ADMIN_ADDR=127.0.0.1:$ap
    WISP_GATEWAY_ADDR=127.0.0.1:$gp
    env -i PATH=/usr/bin:/bin WISP_LOG_LEVEL=${WISP_LOG_LEVEL:-info} \
        "$WISP_BIN" serve --listen "$WISP_GATEWAY_ADDR" --admin "$WISP_ADMIN_ADDR" \
        --data "$WISP_DATA" --runtimes "$WISP_BUILD/runtimes" "$@" \
        >>"$TEST_TMP/daemon.log" 2>&1 &
    WISP_PID=$!
    export WISP_ADMIN="http://$WISP_ADMIN_ADDR" WISP_GATEWAY="http://$WISP_GATEWAY_ADDR" WISP_DATA
    local i
    for i in $(seq 1 200); do
        if curl -sf "$WISP_ADMIN/healthz" >/dev/null 2>&1; then break; fi
        if ! kill -0 "$WISP_PID" 2>/dev/null; then
            echo "# daemon exited at start:"
            sed 's/^/#   /' "$TEST_TMP/daemon.log" | tail -20
            return 1
        fi
        sleep 0.05
    done
    export WISP_TOKEN
    WISP_TOKEN=$(cat "$WISP_DATA/admin.token")
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    AWS_ACCESS_KEY_ID=$(sed -n 's/^aws_access_key_id *= *//p' "$WISP_DATA/aws-credentials")
    AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key *= *//p' "$WISP_DATA/aws-credentials")
    export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
}

# wisp_stop: SIGTERM, wait, and report whether it exited 0.
wisp_stop() {
    [ -n "$WISP_PID" ] || return 0
    kill -TERM "$WISP_PID" 2>/dev/null
    local rc=0
    wait "$WISP_PID" || rc=$?
    WISP_PID=
    return $rc
}

# api METHOD PATH [curl args...]: admin API call with the token; prints body, then
# a last line "HTTP <status>".
api() {
    local m=$1 p=$2
    shift 2
    curl -s -X "$m" -H "Authorization: Bearer $WISP_TOKEN" -w '\nHTTP %{http_code}' "$@" "$WISP_ADMIN$p"
}
status_of() { printf '%s' "$1" | tail -1 | cut -d' ' -f2; }
body_of() { printf '%s' "$1" | sed '$d'; }
awsl() { timeout 120 "$AWS" --endpoint-url "$WISP_ADMIN" --cli-read-timeout 120 lambda "$@"; }

# zipdir DIR OUT.zip
zipdir() { (cd "$1" && rm -f "$2" && zip -qr -X "$2" .); }

daemon_log() { sed 's/^/#   /' "$TEST_TMP/daemon.log" | tail -${1:-30}; }

_lib_cleanup() {
    if [ -n "$WISP_PID" ] && kill -0 "$WISP_PID" 2>/dev/null; then
        kill -TERM "$WISP_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$WISP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$WISP_PID" 2>/dev/null
    fi
    if [ "$_tap_failed" -gt 0 ] && [ -f "$TEST_TMP/daemon.log" ]; then
        echo "# daemon log (tail):"
        daemon_log 40
    fi
    rm -rf "$TEST_TMP"
}
trap _lib_cleanup EXIT
