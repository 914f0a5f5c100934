"""app.py - "hello" for the python3 runtime, written exactly as for AWS Lambda.

Deploy: wisp deploy examples/hello-python --runtime python3 --handler app.handler
Event: {"name": "..."} (optional). An event with "fail": true raises, to show
how errors come back (errorType "ValueError").
"""
import json
import os


def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail by the event")
    name = event.get("name", "world")
    print(f"greeting {name} ({json.dumps(event)})")
    return {
        "message": f"Hello, {name}!",
        "runtime": "python3",
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "region": os.environ.get("AWS_REGION"),
    }
