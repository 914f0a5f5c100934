"""app.py - the no-op function of the benchmarks for the python3 runtime."""


def handler(event, context):
    return {}
