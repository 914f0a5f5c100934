#!/usr/bin/env bash
# The Lambda-compatible API driven by the real Debian AWS CLI v2
# (--endpoint-url): management operations, invoke, signatures, errors.
. "$(dirname "$0")/lib.sh"
plan 26
wisp_start || { not_ok "daemon starts"; exit 1; }
mkdir -p "$TEST_TMP/fn"
cat >"$TEST_TMP/fn/app.py" <<'PY'
def handler(event, context):
    print("hello from the log")
    return {"echo": event, "fn": context.function_name}
PY
zipdir "$TEST_TMP/fn" "$TEST_TMP/fn.zip"
ROLE=arn:aws:iam::000000000000:role/wisp

out=$(awsl create-function --function-name clifn --runtime python3.11 --handler app.handler \
    --role $ROLE --zip-file fileb://"$TEST_TMP/fn.zip" --memory-size 256 --timeout 5 \
    --environment 'Variables={A=1}' 2>&1)
like "create-function" "$out" '"FunctionName": "clifn"'
like "configuration has State Active and CodeSha256 (base64)" "$out" '"State": "Active"'
b64=$($PY -c 'import hashlib,base64,sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1],"rb").read()).digest()).decode())' "$TEST_TMP/fn.zip")
check "CodeSha256 is base64 of the SHA-256" grep -qF "\"CodeSha256\": \"$b64\"" <<<"$out"
out=$(awsl create-function --function-name clifn --runtime python3.11 --handler app.handler \
    --role $ROLE --zip-file fileb://"$TEST_TMP/fn.zip" 2>&1)
like "create twice: ResourceConflictException" "$out" 'ResourceConflictException'
out=$(awsl get-function --function-name clifn 2>&1)
like "get-function" "$out" '"MemorySize": 256'
out=$(awsl get-function-configuration --function-name arn:aws:lambda:us-east-1:000000000000:function:clifn 2>&1)
like "get-function-configuration by full ARN" "$out" '"Timeout": 5'
out=$(awsl get-function --function-name 000000000000:function:clifn 2>&1)
like "get-function by partial ARN" "$out" '"FunctionName": "clifn"'
out=$(awsl get-function --function-name nope 2>&1)
like "unknown function: ResourceNotFoundException" "$out" 'ResourceNotFoundException'
out=$(awsl list-functions 2>&1)
like "list-functions" "$out" '"FunctionName": "clifn"'
for i in 1 2 3 4 5; do
    awsl create-function --function-name page$i --runtime nodejs20.x --handler index.handler \
        --role $ROLE --zip-file fileb://"$TEST_TMP/fn.zip" >/dev/null 2>&1
done
out=$(awsl list-functions --max-items 2 --page-size 2 2>&1)
like "pagination: NextToken with --max-items" "$out" '"NextToken"'
n=$(awsl list-functions --page-size 2 2>&1 | grep -c '"FunctionName"')
is "pagination walks every page" "$n" 6
out=$(awsl update-function-configuration --function-name clifn --timeout 9 --memory-size 512 2>&1)
like "update-function-configuration" "$out" '"Timeout": 9'
out=$(awsl update-function-code --function-name clifn --zip-file fileb://"$TEST_TMP/fn.zip" 2>&1)
like "update-function-code" "$out" '"LastUpdateStatus": "Successful"'
out=$(awsl wait function-updated --function-name clifn 2>&1; echo "rc=$?")
like "the CLI's waiter is satisfied" "$out" 'rc=0'

out=$(awsl invoke --function-name clifn --cli-binary-format raw-in-base64-out \
    --payload '{"x":1}' "$TEST_TMP/out.json" 2>&1)
like "invoke: StatusCode 200" "$out" '"StatusCode": 200'
like "invoke result" "$(cat "$TEST_TMP/out.json")" '"echo": \{"x": 1\}'
out=$(awsl invoke --function-name clifn --log-type Tail --query LogResult --output text \
    "$TEST_TMP/out.json" 2>&1 | base64 -d 2>/dev/null)
like "--log-type Tail returns the log" "$out" 'hello from the log'
out=$(awsl invoke --function-name clifn --invocation-type DryRun "$TEST_TMP/out.json" 2>&1)
like "DryRun: 204" "$out" '"StatusCode": 204'
mkdir -p "$TEST_TMP/node"
printf 'exports.handler = async (e) => ({node: e.n + 1});\n' >"$TEST_TMP/node/index.js"
zipdir "$TEST_TMP/node" "$TEST_TMP/node.zip"
awsl create-function --function-name clinode --runtime nodejs18.x --handler index.handler \
    --role $ROLE --zip-file fileb://"$TEST_TMP/node.zip" >/dev/null 2>&1
awsl invoke --function-name clinode --cli-binary-format raw-in-base64-out --payload '{"n":41}' \
    "$TEST_TMP/out.json" >/dev/null 2>&1
like "invoke a nodejs function" "$(cat "$TEST_TMP/out.json")" '"node":42'
mkdir -p "$TEST_TMP/c" && cp "$WISP_BUILD/examples/hello-c/bootstrap" "$TEST_TMP/c/"
zipdir "$TEST_TMP/c" "$TEST_TMP/c.zip"
awsl create-function --function-name clic --runtime provided.al2023 --handler x \
    --role $ROLE --zip-file fileb://"$TEST_TMP/c.zip" >/dev/null 2>&1
awsl invoke --function-name clic --cli-binary-format raw-in-base64-out --payload '{"name":"aws"}' \
    "$TEST_TMP/out.json" >/dev/null 2>&1
like "invoke a provided (C) function" "$(cat "$TEST_TMP/out.json")" '"runtime":"c"'
printf 'def handler(e, c):\n    raise KeyError("k")\n' >"$TEST_TMP/fn/app.py"
zipdir "$TEST_TMP/fn" "$TEST_TMP/err.zip"
awsl update-function-code --function-name clifn --zip-file fileb://"$TEST_TMP/err.zip" >/dev/null 2>&1
out=$(awsl invoke --function-name clifn "$TEST_TMP/out.json" 2>&1)
like "function error: FunctionError Unhandled" "$out" '"FunctionError": "Unhandled"'
awsl put-function-concurrency --function-name clifn --reserved-concurrent-executions 0 >/dev/null 2>&1
out=$(awsl invoke --function-name clifn "$TEST_TMP/out.json" 2>&1)
like "reserved concurrency 0: TooManyRequestsException" "$out" 'TooManyRequestsException'

out=$(AWS_SECRET_ACCESS_KEY=wrongwrongwrong awsl list-functions 2>&1)
like "wrong secret: InvalidSignatureException" "$out" 'InvalidSignatureException'
out=$(AWS_ACCESS_KEY_ID=AKIAWRONGWRONGWRONG1 awsl list-functions 2>&1)
like "unknown access key: UnrecognizedClientException" "$out" 'UnrecognizedClientException'
out=$(awsl delete-function --function-name clifn 2>&1; echo "rc=$?")
like "delete-function" "$out" 'rc=0'
wisp_stop
is "daemon exits 0" "$?" 0
