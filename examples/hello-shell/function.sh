# function.sh - the handler of hello-shell (handler "function.handler"),
# sourced by ./bootstrap. $1 is the event; what handler prints is the result.
# An event containing "fail": true makes it return 1, to show an error.

handler() {
    event=$1
    [ -n "$event" ] || event='{}'
    if printf '%s' "$event" | grep -q '"fail": *true'; then
        echo "asked to fail by the event" >&2
        return 1
    fi
    echo "greeting for request $REQUEST_ID" >&2
    printf '{"message":"Hello from the shell!","runtime":"provided","request_id":"%s","function_arn":"%s","event":%s}' \
        "$REQUEST_ID" "$FUNCTION_ARN" "$event"
}
