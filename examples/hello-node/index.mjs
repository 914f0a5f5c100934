// index.mjs - "hello" for the nodejs runtime, written exactly as for AWS Lambda
// (an ES module with an async handler).
//
// Deploy: wisp deploy examples/hello-node --runtime nodejs --handler index.handler
// Event: {"name": "..."} (optional). An event with "fail": true throws, to show
// how errors come back (errorType "Error").
export const handler = async (event, context) => {
    if (event.fail) throw new Error('asked to fail by the event');
    const name = event.name ?? 'world';
    console.log(`greeting ${name}`, event);
    return {
        message: `Hello, ${name}!`,
        runtime: 'nodejs',
        request_id: context.awsRequestId,
        function_name: context.functionName,
        function_arn: context.invokedFunctionArn,
        memory_limit_in_mb: context.memoryLimitInMB,
        remaining_ms: context.getRemainingTimeInMillis(),
        region: process.env.AWS_REGION,
    };
};
