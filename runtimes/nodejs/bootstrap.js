/*
 * bootstrap.js - wisp's built-in Node.js runtime (runtime "nodejs").
 *
 * It speaks the AWS Lambda Runtime API so that handlers written for Lambda run
 * unmodified. The daemon runs it as
 *
 *     /usr/bin/node /var/runtime/nodejs/bootstrap.js
 *
 * _HANDLER is "file.export" (also "dir/file.export" and "file.obj.fn"); the
 * file is looked up in LAMBDA_TASK_ROOT as Lambda does: the name as is, then
 * .js (CommonJS, or ES module when the nearest package.json says
 * "type": "module"), .mjs (ES module, loaded with import()), .cjs, and last
 * Node's own resolution. Handlers may be async (return a promise) or take a
 * callback (event, context, callback); context.callbackWaitsForEmptyEventLoop
 * (default true) makes a callback's result wait until the event loop is empty,
 * as on Lambda; promises and context.succeed/fail/done answer at once.
 *
 * Errors are posted as {"errorType","errorMessage","trace"} (errorType is the
 * error's name). A handler that cannot be loaded is reported to
 * /runtime/init/error with Runtime.ImportModuleError, Runtime.HandlerNotFound,
 * Runtime.MalformedHandlerName or Runtime.UserCodeSyntaxError, and the process
 * exits 1. An uncaught exception or unhandled rejection fails the current
 * invocation and ends the process (129 / 128), as on Lambda.
 *
 * console.* is patched as on Lambda: every record is one write to stdout or
 * stderr of "<ISO time>\t<request id>\t<LEVEL>\t<message>". No npm packages:
 * node's http module over one keep-alive connection (maxSockets 1).
 */
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const util = require('util');
const { pathToFileURL } = require('url');

/* ---- Stems ---------------------------------------------------------------
 * A stem (src/sandbox/spawner.c) is this runtime started in a sandbox before
 * any function needs it, with an empty /var/task and a placeholder
 * environment carrying WISP_STEM_FD, a stream socket to the spawner. Once
 * warm it says "R" there and waits until the spawner has mounted a function's
 * code and writes that function's whole environment to the socket
 * (NUL-terminated entries, then end of file);
 * from then on it is exactly an exec'd runtime of that function. End of file
 * with nothing written means the stem is not needed: exit quietly. Before it
 * waits, warmUp runs the invocation path once, so that what Node loads and
 * V8 compiles on first use is ready when the first real event comes. Nothing
 * is written to stdout or stderr before the bind (they become the
 * function's). */
function awaitBind(fd) {
    const chunks = [];
    const buf = Buffer.allocUnsafe(65536);
    for (;;) {
        let n;
        try {
            n = fs.readSync(fd, buf, 0, buf.length, null);
        } catch (e) {
            if (e.code === 'EAGAIN' || e.code === 'EINTR') continue;
            throw e;
        }
        if (n === 0) break;
        chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    fs.closeSync(fd);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text) process.exit(0);
    for (const key of Object.keys(process.env)) delete process.env[key];
    for (const entry of text.split('\0')) {
        const i = entry.indexOf('=');
        if (i > 0) process.env[entry.slice(0, i)] = entry.slice(i + 1);
    }
}

const BASE = '/2018-06-01/runtime';
/* Read from the environment once the runtime is a function's (readEnvironment). */
let API;
let TASK_ROOT;

let currentRequestId = '';

/* ---- Logging ------------------------------------------------------------ */

function patchConsole() {
    const write = (stream, level, args) => {
        const msg = util.format(...args);
        stream.write(`${new Date().toISOString()}\t${currentRequestId || 'undefined'}\t${level}\t${msg}\n`);
    };
    console.log = (...a) => write(process.stdout, 'INFO', a);
    console.info = (...a) => write(process.stdout, 'INFO', a);
    console.debug = (...a) => write(process.stdout, 'DEBUG', a);
    console.warn = (...a) => write(process.stderr, 'WARN', a);
    console.error = (...a) => write(process.stderr, 'ERROR', a);
    console.trace = (...a) => {
        const err = new Error(util.format(...a));
        err.name = 'Trace';
        write(process.stderr, 'TRACE', [err.stack]);
    };
}

/* ---- Runtime API client --------------------------------------------------- */

function splitAddress(address) {
    const i = address.lastIndexOf(':');
    let host = address.slice(0, i) || '127.0.0.1';
    if (host.startsWith('[')) host = host.slice(1, -1);
    return { host, port: Number(address.slice(i + 1)) };
}

let target = null;
let agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function readEnvironment() {
    API = process.env.AWS_LAMBDA_RUNTIME_API;
    TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';
    target = API ? splitAddress(API) : null;
}

/* One request to the Runtime API; resolves to {status, headers, body(Buffer)}. */
function request(method, urlPath, body, headers) {
    return new Promise((resolve, reject) => {
        const h = Object.assign({}, headers || {});
        if (body !== undefined) h['Content-Length'] = Buffer.byteLength(body);
        const req = http.request(
            { host: target.host, port: target.port, method, path: BASE + urlPath, agent, headers: h },
            (res) => {
                const parts = [];
                res.on('data', (c) => parts.push(c));
                res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
                res.on('error', reject);
            });
        req.on('error', reject);
        req.end(body);
    });
}

function die(message) {
    process.stderr.write(`wisp runtime: ${message}\n`, () => process.exit(1));
    setTimeout(() => process.exit(1), 100).unref();
}

/* ---- Errors --------------------------------------------------------------- */

class RuntimeError extends Error {}
function runtimeError(type, message) {
    const err = new RuntimeError(message);
    err.name = `Runtime.${type}`;
    return err;
}

function isErrorLike(e) {
    return e && typeof e.name === 'string' && typeof e.message === 'string' &&
        typeof e.stack === 'string';
}

/* Lambda's error document for any thrown or passed value. */
function errorDocument(err) {
    try {
        if (util.types.isNativeError(err) || isErrorLike(err)) {
            return { errorType: err.name, errorMessage: err.message, trace: String(err.stack).split('\n') };
        }
        return { errorType: typeof err, errorMessage: String(err), trace: [] };
    } catch (_) {
        return {
            errorType: 'handled',
            errorMessage: 'callback called with Error argument, but there was a problem while ' +
                'retrieving one or more of its message, name, and stack',
        };
    }
}

function postError(urlPath, err) {
    const doc = errorDocument(err);
    let text;
    try {
        text = JSON.stringify(doc);
    } catch (_) {
        text = JSON.stringify({ errorType: 'handled', errorMessage: 'unserialisable error' });
    }
    console.error(`${urlPath.startsWith('/init') ? 'Init' : 'Invoke'} Error \t${text}`);
    const type = String(doc.errorType).replace(/[^\x20-\x7e]/g, '').slice(0, 256) || 'Unknown';
    return request('POST', urlPath, text, {
        'Content-Type': 'application/json',
        'Lambda-Runtime-Function-Error-Type': type,
    });
}

/* ---- Handler loading ---------------------------------------------------- */

function packageTypeIsModule(dir) {
    for (;;) {
        if (dir.endsWith('/node_modules')) return false;
        const pj = path.join(dir, 'package.json');
        if (fs.existsSync(pj)) {
            try {
                return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module';
            } catch (_) {
                return false;
            }
        }
        const parent = path.dirname(dir);
        if (parent === dir) return false;
        dir = parent;
    }
}

function isFile(p) {
    try {
        return fs.statSync(p).isFile();
    } catch (_) {
        return false;
    }
}

async function loadModule(root, moduleRoot, name) {
    const base = path.resolve(root, moduleRoot, name);
    if (isFile(base)) return require(base);
    const esm = packageTypeIsModule(path.dirname(base));
    if (isFile(base + '.js')) {
        if (!esm) {
            try {
                return require(base + '.js');
            } catch (e) {
                if (e.code !== 'ERR_REQUIRE_ESM') throw e;
            }
        }
        return import(pathToFileURL(base + '.js').href);
    }
    if (isFile(base + '.mjs')) return import(pathToFileURL(base + '.mjs').href);
    if (isFile(base + '.cjs')) return require(base + '.cjs');
    return require(require.resolve(name, { paths: [root, path.resolve(root, moduleRoot)] }));
}

async function loadHandler(root, full) {
    if (full.includes('..')) {
        throw runtimeError('MalformedHandlerName', `'${full}' is not a valid handler name. ` +
            'Use absolute paths when specifying root directories in handler names.');
    }
    const base = path.basename(full);
    const moduleRoot = full.slice(0, full.length - base.length);
    const m = /^([^.]*)\.(.*)$/.exec(base);
    if (!m || !m[1] || !m[2]) throw runtimeError('MalformedHandlerName', 'Bad handler');
    let mod;
    try {
        mod = await loadModule(root, moduleRoot, m[1]);
    } catch (e) {
        if (e instanceof SyntaxError) throw runtimeError('UserCodeSyntaxError', String(e));
        if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
            throw runtimeError('ImportModuleError', String(e));
        }
        throw e;
    }
    const fn = m[2].split('.').reduce((o, k) => (o == null ? undefined : o[k]), mod);
    if (!fn) throw runtimeError('HandlerNotFound', `${full} is undefined or not exported`);
    if (typeof fn !== 'function') throw runtimeError('HandlerNotFound', `${full} is not a function`);
    return fn;
}

/* ---- Invocations ---------------------------------------------------------- */

/* What runs when the event loop empties during the current invocation. */
let onEmptyLoop = null;
process.on('beforeExit', () => {
    const f = onEmptyLoop;
    onEmptyLoop = null;
    if (f) f();
});

/* The invocation in progress, to fail it from an uncaught exception. */
let current = null;

function parseJsonHeader(value) {
    if (!value) return undefined;
    try {
        return JSON.parse(value);
    } catch (_) {
        return undefined;
    }
}

function buildContext(headers, finish) {
    const env = process.env;
    const deadline = Number(headers['lambda-runtime-deadline-ms']) || 0;
    let waits = true;
    const done = (err, result) => finish(err, result, false);
    return {
        get callbackWaitsForEmptyEventLoop() {
            return waits;
        },
        set callbackWaitsForEmptyEventLoop(v) {
            waits = v;
        },
        succeed: (result) => done(null, result),
        fail: (err) => done(err == null ? 'handled' : err, null),
        done,
        functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
        functionName: env.AWS_LAMBDA_FUNCTION_NAME,
        memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
        clientContext: parseJsonHeader(headers['lambda-runtime-client-context']),
        identity: parseJsonHeader(headers['lambda-runtime-cognito-identity']),
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: headers['lambda-runtime-aws-request-id'],
        getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    };
}

function serialise(result) {
    return JSON.stringify(result === undefined ? null : result);
}

async function runLoop(handler) {
    for (;;) {
        let res;
        try {
            res = await request('GET', '/invocation/next');
        } catch (e) {
            return die(`GET /next failed: ${e.message}`);
        }
        if (res.status !== 200) {
            return die(`GET /next answered ${res.status}: ${res.body.toString().slice(0, 200)}`);
        }
        try {
            await invoke(handler, res);
        } catch (e) {
            return die(`posting the result failed: ${e.message}`);
        }
    }
}

/* Runs one invocation; resolves once its outcome has been posted. */
function invoke(handler, res) {
    const headers = res.headers;
    const id = headers['lambda-runtime-aws-request-id'] || '';
    currentRequestId = id;
    const trace = headers['lambda-runtime-trace-id'];
    if (trace) process.env._X_AMZN_TRACE_ID = trace;
    else delete process.env._X_AMZN_TRACE_ID;

    return new Promise((resolve, reject) => {
        let finished = false;
        let context = null;
        const post = (err, result) => {
            let p;
            if (err != null) {
                p = postError(`/invocation/${id}/error`, err);
            } else {
                let text;
                try {
                    text = serialise(result);
                } catch (e) {
                    p = postError(`/invocation/${id}/error`,
                        new Error(`Unable to stringify response body: ${e.message}`));
                }
                if (!p) p = request('POST', `/invocation/${id}/response`, text, {});
            }
            p.then((r) => {
                if (r.status >= 300) {
                    process.stderr.write(`wisp runtime: result for ${id} refused ` +
                        `(${r.status}): ${r.body.toString().slice(0, 200)}\n`);
                }
                current = null;
                resolve();
            }, reject);
        };
        /* Only the first of callback/succeed/fail/done/promise counts. */
        const finish = (err, result, viaCallback) => {
            if (finished) return;
            finished = true;
            onEmptyLoop = null;
            if (viaCallback && err == null && context.callbackWaitsForEmptyEventLoop) {
                onEmptyLoop = () => setImmediate(() => post(null, result));
            } else {
                post(err, result);
            }
        };
        current = { posted: () => finished };
        context = buildContext(headers, finish);

        let event;
        try {
            event = res.body.length && res.body.toString().trim() ? JSON.parse(res.body.toString()) : {};
        } catch (e) {
            return finish(runtimeError('UnmarshalError', `Unable to unmarshal input: ${e.message}`), null, false);
        }
        /* The loop emptied with no answer: a plain handler answers null, an
         * async one that never settled is an error (as Lambda's runtime). */
        const isAsync = handler.constructor && handler.constructor.name === 'AsyncFunction';
        onEmptyLoop = () => {
            if (isAsync) finish(runtimeError('NodeJsExit', 'Runtime exited without providing a reason'), null, false);
            else finish(null, null, false);
        };
        try {
            const result = handler(event, context, (err, value) => finish(err, value, true));
            if (result && typeof result.then === 'function') {
                result.then((value) => finish(null, value, false),
                    (err) => finish(err == null ? 'handled' : err, null, false));
            }
        } catch (e) {
            finish(e, null, false);
        }
    });
}

/* An error nobody caught fails the current invocation and ends the process. */
function fatal(err, code) {
    const exit = () => process.exit(code);
    if (current && !current.posted()) {
        current = null;
        postError(`/invocation/${currentRequestId}/error`, err).then(exit, exit);
    } else {
        console.error(`Uncaught Exception \t${JSON.stringify(errorDocument(err))}`);
        exit();
    }
}

process.on('uncaughtException', (err) => fatal(err, 129));
process.on('unhandledRejection', (reason) => {
    const err = runtimeError('UnhandledPromiseRejection', String(reason && reason.stack ? `${reason.name}: ${reason.message}` : reason));
    err.reason = reason;
    fatal(err, 128);
});

/* Loads a handler from throwaway files in /tmp (CommonJS and ES module), then a few invocations
 * (one failing) against a Runtime API served by this process on a loopback
 * port of the stem's own network namespace: the first runs of the loader and
 * the HTTP client cost milliseconds that a bound stem would otherwise pay. */
async function warmUp() {
    const dir = fs.mkdtempSync('/tmp/.wisp-stem-');
    const file = path.join(dir, 'warm.js');
    let warmHandler = async (ev) => ({ ok: ev.warm });
    try {
        fs.writeFileSync(file, 'exports.handler = async (ev) => ({ ok: ev.warm });\n');
        warmHandler = await loadHandler(dir, 'warm.handler');
        /* The ES module loader too (its first import() costs ~10 ms). */
        fs.writeFileSync(path.join(dir, 'warm-esm.mjs'), 'export const handler = async () => ({});\n');
        await loadHandler(dir, 'warm-esm.handler');
    } catch (_) {
        /* Keep the inline handler. */
    } finally {
        delete require.cache[file];
        fs.rmSync(dir, { recursive: true, force: true });
    }
    const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
            if (req.url.endsWith('/invocation/next')) {
                res.writeHead(200, {
                    'Content-Type': 'application/json',
                    'Lambda-Runtime-Aws-Request-Id': 'warm-up',
                    'Lambda-Runtime-Deadline-Ms': String(Date.now() + 60000),
                    'Lambda-Runtime-Invoked-Function-Arn': 'arn:aws:lambda:warm-up',
                });
                res.end('{"warm":true}');
            } else {
                res.writeHead(202, { 'Content-Type': 'application/json' });
                res.end('{"status":"OK"}');
            }
        });
    });
    const consoleError = console.error; /* postError logs; not a word before the bind */
    console.error = () => {};
    try {
        await new Promise((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, '127.0.0.1', resolve);
        });
        target = { host: '127.0.0.1', port: server.address().port };
        util.format('%s %d', new Date().toISOString(), 1);
        await invoke(() => { throw new Error('warm-up'); }, await request('GET', '/invocation/next'));
        for (let i = 0; i < 8; i++) await invoke(warmHandler, await request('GET', '/invocation/next'));
    } catch (_) {
        /* Only slower: the bound runtime works all the same. */
    } finally {
        console.error = consoleError;
        agent.destroy();
        agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        server.close();
        target = null;
        currentRequestId = '';
        delete process.env._X_AMZN_TRACE_ID;
    }
}

async function main() {
    if (process.env.WISP_STEM_FD) {
        const fd = Number(process.env.WISP_STEM_FD);
        await warmUp();
        fs.writeSync(fd, 'R');
        awaitBind(fd);
    }
    readEnvironment();
    if (!API) return die('AWS_LAMBDA_RUNTIME_API is not set');
    patchConsole();
    try {
        process.chdir(TASK_ROOT);
    } catch (_) {
        /* Keep the current folder. */
    }
    let handler;
    try {
        handler = await loadHandler(TASK_ROOT, process.env._HANDLER || '');
    } catch (e) {
        try {
            await postError('/init/error', e);
        } catch (pe) {
            return die(`could not report the init error: ${pe.message}`);
        }
        return die(`init failed: ${e && e.name}`);
    }
    return runLoop(handler);
}

main();
