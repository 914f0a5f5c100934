#!/usr/bin/env bash
# The native admin API through curl against a real daemon: first start
# (token, credentials, modes), auth, function CRUD, validation errors, code
# packages (good and hostile), limits, health and metrics, restart.
. "$(dirname "$0")/lib.sh"
plan 40

wisp_start || { not_ok "daemon starts"; exit 1; }
ok "daemon starts on free ports with a fresh data folder"
is "admin.token is 0600" "$(stat -c %a "$WISP_DATA/admin.token")" 600
is "aws-credentials is 0600" "$(stat -c %a "$WISP_DATA/aws-credentials")" 600
is "token is 256 bits of hex" "$(tr -d '\n' <"$WISP_DATA/admin.token" | grep -cE '^[0-9a-f]{64}$')" 1
like "aws-credentials is a shared-credentials INI" "$(cat "$WISP_DATA/aws-credentials")" '^\[default\]'
check "wisp.db exists" test -f "$WISP_DATA/wisp.db"

r=$(curl -s -w '\nHTTP %{http_code}' "$WISP_ADMIN/healthz")
is "healthz without auth" "$(status_of "$r")" 200
r=$(curl -s -w '\nHTTP %{http_code}' "$WISP_ADMIN/v1/functions")
is "no token: 401" "$(status_of "$r")" 401
like "401 body is a JSON error" "$(body_of "$r")" '"error":\{"code":"unauthorized"'
r=$(curl -s -w '\nHTTP %{http_code}' -H 'Authorization: Bearer nope' "$WISP_ADMIN/v1/nothing/here")
is "wrong token on an unknown path: still 401 (nothing revealed)" "$(status_of "$r")" 401

r=$(api PUT /v1/functions/hello -d '{"runtime":"python3","handler":"app.handler","memory_mb":256,"env":{"A":"1"}}')
is "create: 201" "$(status_of "$r")" 201
like "create returns the function" "$(body_of "$r")" '"memory_mb":256'
rev1=$(body_of "$r" | $PY -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
r=$(api PUT /v1/functions/hello -d '{"timeout_s":30}')
is "update: 200" "$(status_of "$r")" 200
rev2=$(body_of "$r" | $PY -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
check "revision changes on config change" test "$rev1" != "$rev2"
like "update keeps other fields" "$(body_of "$r")" '"memory_mb":256.*"timeout_s":30|"timeout_s":30.*"memory_mb":256'

r=$(api PUT /v1/functions/bad%20name -d '{"runtime":"python3","handler":"a.b"}')
is "invalid name: 400" "$(status_of "$r")" 400
r=$(api PUT /v1/functions/x -d '{"runtime":"cobol"}')
is "unknown runtime: 400" "$(status_of "$r")" 400
r=$(api PUT /v1/functions/x -d '{"runtime":"python3","handler":"a.b","memory_mb":64}')
like "memory below 128: 400 naming the field" "$(status_of "$r") $(body_of "$r")" '^400 .*memory_mb'
r=$(api PUT /v1/functions/x -d '{"runtime":"python3","handler":"a.b","timeout_s":901}')
is "timeout above 900: 400" "$(status_of "$r")" 400
big=$($PY -c 'import json; print(json.dumps({"runtime":"python3","handler":"a.b","env":{"K":"v"*5000}}))')
r=$(api PUT /v1/functions/x -d "$big")
like "env over 4 KiB rejected" "$(status_of "$r")" '^(400|413)$'
r=$(api PUT /v1/functions/x -d '{"runtime":"python3","handler":"a.b","colour":"red"}')
like "unknown field rejected by name" "$(status_of "$r") $(body_of "$r")" '^400 .*colour'
r=$(api PUT /v1/functions/x -d '{not json')
is "malformed JSON: 400" "$(status_of "$r")" 400

mkdir -p "$TEST_TMP/pkg" && printf 'def handler(e, c):\n    return e\n' >"$TEST_TMP/pkg/app.py"
zipdir "$TEST_TMP/pkg" "$TEST_TMP/good.zip"
r=$(api PUT /v1/functions/hello/code --data-binary @"$TEST_TMP/good.zip" -H 'Content-Type: application/zip')
is "code upload: 200" "$(status_of "$r")" 200
sha=$(sha256sum "$TEST_TMP/good.zip" | cut -d' ' -f1)
like "code_sha256 is the zip's SHA-256" "$(body_of "$r")" "\"code_sha256\":\"$sha\""
check "package stored content-addressed and extracted" test -f "$WISP_DATA/code/$sha/app.py"
r=$(api PUT /v1/functions/hello/code --data-binary @"$TEST_TMP/good.zip" -H 'Content-Type: text/plain')
is "code with a wrong content type: 415" "$(status_of "$r")" 415
r=$(api PUT /v1/functions/ghost/code --data-binary @"$TEST_TMP/good.zip" -H 'Content-Type: application/zip')
is "code for an unknown function: 404" "$(status_of "$r")" 404

# hostile packages built with Python's zipfile
$PY - "$TEST_TMP" <<'PYEOF'
import sys, zipfile, os
d = sys.argv[1]
def mk(name, entries):
    with zipfile.ZipFile(os.path.join(d, name), "w", zipfile.ZIP_DEFLATED) as z:
        for n, data, mode in entries:
            i = zipfile.ZipInfo(n); i.external_attr = mode << 16; i.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(i, data)
mk("dotdot.zip", [("../escape.py", "x", 0o100644)])
mk("abs.zip", [("/tmp/abs.py", "x", 0o100644)])
mk("symlink.zip", [("link", "/etc/shadow", 0o120777)])
mk("bomb.zip", [("zeros%d" % i, b"\0" * (64 << 20), 0o100644) for i in range(5)])
open(os.path.join(d, "notzip.zip"), "wb").write(b"this is not a zip file at all")
PYEOF
for z in dotdot abs symlink notzip; do
    r=$(api PUT /v1/functions/hello/code --data-binary @"$TEST_TMP/$z.zip" -H 'Content-Type: application/zip')
    is "hostile package ($z): 400" "$(status_of "$r")" 400
done
r=$(api PUT /v1/functions/hello/code --data-binary @"$TEST_TMP/bomb.zip" -H 'Content-Type: application/zip')
is "zip bomb (320 MiB unzipped): 413" "$(status_of "$r")" 413
check "nothing escaped the code folder" test ! -e "$WISP_DATA/escape.py" -a ! -e /tmp/abs.py
head -c $((51 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/huge.bin"
r=$(api PUT /v1/functions/hello/code --data-binary @"$TEST_TMP/huge.bin" -H 'Content-Type: application/zip')
is "package over 50 MiB: 413" "$(status_of "$r")" 413

r=$(api GET /v1/functions)
like "list functions" "$(body_of "$r")" '"functions":\[\{.*"name":"hello"'
r=$(api GET /v1/functions/nope)
is "get unknown: 404" "$(status_of "$r")" 404
r=$(curl -s "$WISP_ADMIN/metrics")
like "metrics: requests by listener and status, function count, build info" \
    "$(echo "$r" | grep -E '^(wisp_http_requests_total\{.*listener="admin"|wisp_functions |wisp_build_info)' | wc -l)" '^[3-9]|[1-9][0-9]+$'

wisp_stop
is "SIGTERM: exit status 0" "$?" 0
wisp_start
r=$(api GET /v1/functions/hello)
like "restart reuses the data folder (function and token)" "$(status_of "$r") $(body_of "$r")" "^200 .*\"code_sha256\":\"$sha\""
r=$(api DELETE /v1/functions/hello)
is "delete: 204" "$(status_of "$r")" 204
wisp_stop
