#!/usr/bin/python3
"""The Lambda-compatible API through Debian's python3-boto3: management,
invoke in every runtime, error shapes, names in every form, signatures."""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from wisplib import Daemon, Tap, zip_bytes

import botocore.exceptions

t = Tap(23)
ROLE = "arn:aws:iam::000000000000:role/wisp"


def code(e):
    return e.response["Error"]["Code"]


with Daemon() as d:
    lam = d.lambda_client()
    pyzip = zip_bytes({"lambda_function.py": "def lambda_handler(event, context):\n"
                       "    print('boto log line')\n    return {'got': event}\n"})
    r = lam.create_function(FunctionName="b1", Runtime="python3.11", Role=ROLE,
                            Handler="lambda_function.lambda_handler", Code={"ZipFile": pyzip},
                            Timeout=10, MemorySize=192, Environment={"Variables": {"K": "V"}},
                            EphemeralStorage={"Size": 1024})
    t.eq("create_function: 201 and config", (r["ResponseMetadata"]["HTTPStatusCode"], r["MemorySize"],
         r["Timeout"], r["EphemeralStorage"]["Size"]), (201, 192, 10, 1024))
    t.ok(r["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:b1" and
         r["Version"] == "$LATEST" and r["PackageType"] == "Zip" and r["RevisionId"],
         "configuration fields", r)
    r = lam.get_function(FunctionName="arn:aws:lambda:us-east-1:000000000000:function:b1")
    t.eq("get_function by ARN (percent-encoded ':')", r["Configuration"]["FunctionName"], "b1")
    t.eq("environment round trip", r["Configuration"]["Environment"]["Variables"], {"K": "V"})
    r = lam.invoke(FunctionName="b1", Payload=json.dumps({"a": 1}), LogType="Tail")
    t.eq("invoke RequestResponse", json.loads(r["Payload"].read()), {"got": {"a": 1}})
    t.ok("boto log line" in base64.b64decode(r["LogResult"]).decode() and
         "REPORT RequestId" in base64.b64decode(r["LogResult"]).decode(), "LogResult tail", r.get("LogResult"))
    t.eq("X-Amz-Executed-Version", r.get("ExecutedVersion"), "$LATEST")
    r = lam.invoke(FunctionName="b1:$LATEST", Payload=b"")
    t.eq("empty payload and $LATEST qualifier", json.loads(r["Payload"].read()), {"got": {}})
    ccode = zip_bytes({"app.py": "def handler(event, context):\n"
                       "    return context.client_context.custom if context.client_context else None\n"})
    lam.create_function(FunctionName="bcc", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": ccode})
    cc = base64.b64encode(json.dumps({"custom": {"tenant": "t1"}, "env": {}, "client": {}}).encode()).decode()
    r = lam.invoke(FunctionName="bcc", ClientContext=cc)
    t.eq("ClientContext reaches context.client_context", json.loads(r["Payload"].read()), {"tenant": "t1"})
    try:
        lam.invoke(FunctionName="bcc", ClientContext="not base64 json!")
        t.ok(False, "bad ClientContext refused")
    except botocore.exceptions.ClientError as e:
        t.eq("bad ClientContext: 400", e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
    lam.delete_function(FunctionName="bcc")

    nodezip = zip_bytes({"index.mjs": "export const handler = async (e) => ({node: e.v});\n"})
    lam.create_function(FunctionName="b2", Runtime="nodejs20.x", Role=ROLE, Handler="index.handler",
                        Code={"ZipFile": nodezip})
    r = lam.invoke(FunctionName="b2", Payload=json.dumps({"v": 7}))
    t.eq("nodejs through boto3", json.loads(r["Payload"].read()), {"node": 7})
    cboot = open(os.path.join(os.environ.get("WISP_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build")),
                              "examples", "hello-c", "bootstrap"), "rb").read()
    lam.create_function(FunctionName="bc", Runtime="provided.al2", Role=ROLE, Handler="none",
                        Code={"ZipFile": zip_bytes({"bootstrap": (cboot, 0o755)})})
    r = lam.invoke(FunctionName="bc", Payload=json.dumps({"name": "boto"}))
    t.eq("provided (C) through boto3", json.loads(r["Payload"].read()).get("runtime"), "c")
    errzip = zip_bytes({"index.js": "exports.handler = async () => { throw new TypeError('nope'); };\n"})
    lam.update_function_code(FunctionName="b2", ZipFile=errzip)
    r = lam.invoke(FunctionName="b2")
    body = json.loads(r["Payload"].read())
    t.ok(r.get("FunctionError") == "Unhandled" and body.get("errorType") == "TypeError" and
         body.get("errorMessage") == "nope", "function error: Unhandled + error JSON", (r.get("FunctionError"), body))

    try:
        lam.get_function(FunctionName="missing")
        t.ok(False, "ResourceNotFoundException")
    except botocore.exceptions.ClientError as e:
        t.eq("ResourceNotFoundException", code(e), "ResourceNotFoundException")
    try:
        lam.create_function(FunctionName="b3", Runtime="ruby3.2", Role=ROLE, Handler="x.y",
                            Code={"ZipFile": pyzip})
        t.ok(False, "unsupported runtime refused")
    except botocore.exceptions.ClientError as e:
        t.eq("unsupported runtime: InvalidParameterValueException", code(e), "InvalidParameterValueException")
    try:
        lam.create_function(FunctionName="b4", Runtime="python3.11", Role=ROLE, Handler="x.y",
                            Code={"ZipFile": b"not a zip"})
        t.ok(False, "bad zip refused")
    except botocore.exceptions.ClientError as e:
        t.eq("bad zip: InvalidParameterValueException", code(e), "InvalidParameterValueException")

    lam.put_function_concurrency(FunctionName="b1", ReservedConcurrentExecutions=0)
    t.eq("get_function_concurrency", lam.get_function_concurrency(FunctionName="b1").get(
        "ReservedConcurrentExecutions"), 0)
    try:
        lam.invoke(FunctionName="b1")
        t.ok(False, "throttled")
    except botocore.exceptions.ClientError as e:
        t.ok(code(e) == "TooManyRequestsException" and e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
             and e.response.get("Reason") or "Reason" in json.dumps(e.response), "429 TooManyRequestsException with Reason",
             e.response)
    lam.delete_function_concurrency(FunctionName="b1")
    r = lam.invoke(FunctionName="b1", Payload=b"{}")
    t.eq("concurrency removed: invoke works again", r["StatusCode"], 200)

    names = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1}):
        names += [f["FunctionName"] for f in page["Functions"]]
    t.eq("paginator over MaxItems=1 pages", sorted(names), ["b1", "b2", "bc"])
    r = lam.delete_function(FunctionName="b2")
    t.eq("delete_function: 204", r["ResponseMetadata"]["HTTPStatusCode"], 204)

    import boto3
    bad = boto3.client("lambda", endpoint_url=d.admin, region_name="us-east-1",
                       aws_access_key_id=d.akid, aws_secret_access_key="x" * 40)
    try:
        bad.list_functions()
        t.ok(False, "bad signature refused")
    except botocore.exceptions.ClientError as e:
        t.eq("bad signature: 403 InvalidSignatureException", (code(e),
             e.response["ResponseMetadata"]["HTTPStatusCode"]), ("InvalidSignatureException", 403))
    st, _, _ = d.request("GET", "/2015-03-31/functions/", token=False)
    t.eq("unsigned Lambda request: 403", st, 403)
sys.exit(1 if t.failed else 0)
