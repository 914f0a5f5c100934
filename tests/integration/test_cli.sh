#!/usr/bin/env bash
# The wisp CLI against a real daemon: deploy (folder and zip), ls, get,
# invoke, logs, rm, version, help, --json, and clear errors with exit codes.
. "$(dirname "$0")/lib.sh"
plan 22
W=$WISP_BIN
wisp_start || { not_ok "daemon starts"; exit 1; }
unset WISP_TOKEN   # the CLI must find the token in <data>/admin.token
mkdir -p "$TEST_TMP/hello/lib"
printf 'from lib.util import shout\ndef handler(event, context):\n    print("log:", event)\n    return {"msg": shout(event.get("name", "x"))}\n' >"$TEST_TMP/hello/app.py"
printf 'def shout(s):\n    return s.upper()\n' >"$TEST_TMP/hello/lib/util.py"
touch "$TEST_TMP/hello/lib/__init__.py"

out=$($W deploy "$TEST_TMP/hello" --runtime python3 --handler app.handler --memory 256 --env A=1 --env B=two 2>&1)
is "deploy a folder: exit 0" "$?" 0
like "deploy prints the function" "$out" 'hello'
out=$($W ls 2>&1)
like "ls lists it" "$out" 'hello.*python3'
out=$($W get hello --json 2>&1)
like "get --json" "$out" '"memory_mb": ?256'
like "env from --env" "$out" '"B": ?"two"'
out=$($W invoke hello -d '{"name":"wisp"}' 2>&1)
like "invoke prints the result" "$out" '"msg": ?"WISP"'
echo '{"name":"file"}' >"$TEST_TMP/e.json"
out=$($W invoke hello -d @"$TEST_TMP/e.json" 2>&1)
like "invoke -d @file" "$out" 'FILE'
out=$(echo '{"name":"stdin"}' | $W invoke hello -d @- 2>&1)
like "invoke -d @-" "$out" 'STDIN'
out=$($W invoke hello -d '{"name":"j"}' --json 2>&1)
like "invoke --json has request id and cold start" "$out" '"request_id"'
sleep 0.3
out=$($W logs hello 2>&1)
like "logs shows START/REPORT and the function's output" "$out" "REPORT RequestId"
like "logs has the function's print" "$out" "log: \{'name': 'wisp'\}"

(cd "$TEST_TMP/hello" && zip -qr "$TEST_TMP/h2.zip" .)
out=$($W deploy "$TEST_TMP/h2.zip" --name h2 --runtime python3 --handler app.handler 2>&1)
is "deploy a .zip" "$?" 0
out=$($W invoke h2 -d '{}' 2>&1)
like "the zip deploy runs" "$out" '"X"'

printf 'def handler(e, c):\n    raise RuntimeError("boom")\n' >"$TEST_TMP/hello/app.py"
$W deploy "$TEST_TMP/hello" >/dev/null 2>&1
out=$($W invoke hello 2>&1)
rc=$?
is "function error: exit 1" "$rc" 1
like "function error printed" "$out" 'RuntimeError'

out=$($W deploy "$TEST_TMP/hello" --memory 12 2>&1)
rc=$?
like "bad memory: clear error, non-zero exit" "$rc $out" '^[12] .*memory'
out=$($W get nosuch 2>&1)
rc=$?
like "get unknown: exit 1 with a message" "$rc $out" '^1 wisp: .*'
out=$($W frobnicate 2>&1)
is "unknown command: exit 2" "$?" 2
out=$($W help deploy 2>&1)
like "help deploy" "$out" 'usage: wisp deploy'
out=$($W version 2>&1)
like "version" "$out" '[0-9]+\.[0-9]+\.[0-9]+'
out=$($W rm h2 2>&1)
is "rm: exit 0" "$?" 0
out=$(WISP_ADMIN=http://127.0.0.1:1 $W ls 2>&1)
rc=$?
like "daemon unreachable: exit 1 with a message" "$rc $out" '^1 wisp: '
wisp_stop
