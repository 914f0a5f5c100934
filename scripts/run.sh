#!/usr/bin/env bash
# run.sh - `make run`: start wisp with the examples deployed, invoke each once,
# print how to call them, and keep running until Ctrl-C.
#   WISP_DATA (default ./wisp-data), WISP_LISTEN (127.0.0.1:7700), WISP_ADMIN_ADDR (127.0.0.1:7701)
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WISP=$ROOT/$BUILD/wisp
DATA=${WISP_DATA:-$ROOT/wisp-data}
LISTEN=${WISP_LISTEN:-127.0.0.1:7700}
ADMIN_ADDR=${WISP_ADMIN_ADDR:-127.0.0.1:7701}
export WISP_ADMIN=http://$ADMIN_ADDR WISP_DATA=$DATA

env -i PATH=/usr/bin:/bin "$WISP" serve --listen "$LISTEN" --admin "$ADMIN_ADDR" --data "$DATA" \
    --runtimes "$ROOT/$BUILD/runtimes" &
PID=$!
stop() {
    kill -INT "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM
for _ in $(seq 1 100); do
    curl -sf "$WISP_ADMIN/healthz" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { echo "wisp serve failed to start" >&2; exit 1; }
    sleep 0.1
done

deploy() { # name path runtime handler
    "$WISP" deploy "$2" --name "$1" --runtime "$3" ${4:+--handler "$4"} --timeout 10
}
echo
echo "== deploying the examples"
deploy hello-python examples/hello-python python3 app.handler
deploy hello-node examples/hello-node nodejs index.handler
deploy hello-c "$BUILD/examples/hello-c" provided
deploy hello-shell examples/hello-shell provided function.handler

echo
echo "== invoking each once"
for f in hello-python hello-node hello-c hello-shell; do
    printf '%-13s -> ' "$f"
    "$WISP" invoke "$f" -d '{"name":"wisp"}' || true
    echo
done

cat <<TXT

== wisp is running (Ctrl-C to stop)
  admin API  $WISP_ADMIN   (token in $DATA/admin.token)
  gateway    http://$LISTEN

Try:
  export WISP_ADMIN=$WISP_ADMIN WISP_DATA=$DATA
  $BUILD/wisp ls
  $BUILD/wisp invoke hello-python -d '{"name":"you"}'
  $BUILD/wisp logs hello-python
  curl -s -H "Authorization: Bearer \$(cat $DATA/admin.token)" -d '{"name":"curl"}' $WISP_ADMIN/v1/functions/hello-node/invoke
  AWS_SHARED_CREDENTIALS_FILE=$DATA/aws-credentials AWS_DEFAULT_REGION=us-east-1 \\
    /usr/bin/aws --endpoint-url $WISP_ADMIN lambda invoke --function-name hello-c \\
    --cli-binary-format raw-in-base64-out --payload '{"name":"aws"}' /dev/stdout
TXT
wait "$PID"
