// Runs the pre-provisioning hook the way Lambda does: the same CommonJS source the stack deploys,
// loaded once into its own worker thread (a warm Lambda container: its own `process.env`, globals
// that persist between invocations, console captured), each invocation under a time limit. A hook
// that overruns is cut off: its worker is terminated (a busy loop included) and the next
// invocation starts a cold one. The emulator's own thread never runs hook code, and never pays
// for a per-call watchdog (vm's `timeout` starts a thread per call: ~0.4 ms idle, several under load).
// As in Lambda, loading the source (the init phase) has its own limit; the invocation's starts after.
import { Worker } from 'node:worker_threads';
import { HOOK_TIMEOUT_MS, type HookEvent, type HookResult } from '../shared/protocol.ts';

export type HookOutcome =
  | { ok: true; result: HookResult }
  | { ok: false; reason: 'threw' | 'timeout' | 'bad-result'; message: string };

export interface HookOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Where the hook's console output goes (it never reaches the emulator's stdout directly). */
  log?: (line: string) => void;
  /**
   * Answers the hook's AWS SDK calls (`client.send(new XCommand(input))` of
   * @aws-sdk/client-dynamodb and @aws-sdk/client-iot, which Lambda's Node.js runtime includes).
   * Without it the hook can require node's crypto only.
   */
  sdk?: HookSdk;
}

/** One AWS SDK call of the hook: the service, the operation (the command's name without "Command"), its input. */
export type HookSdk = (service: 'dynamodb' | 'iot', operation: string, input: Record<string, unknown>) => Promise<unknown>;

export interface HookRunner {
  (event: HookEvent): Promise<HookOutcome>;
  /** Ends the warm worker, if any; a later call starts a cold one. */
  close(): Promise<void>;
}

/** The worker: loads the source into a vm context once, then answers {id, event} messages. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const vm = require('node:vm');
const message = (e) => (typeof e === 'object' && e !== null && 'message' in e ? String(e.message) : String(e));
const json = (v) => { try { return JSON.stringify(v); } catch { return String(v); } };
const log = (...args) => parentPort.postMessage({ log: args.map((a) => (typeof a === 'string' ? a : json(a))).join(' ') });
const module = { exports: {} };
// What the hook may require: node's crypto, and (with an SDK bridge) stand-ins for the two AWS SDK
// clients whose send() asks the emulator's thread.
const sdkCalls = new Map();
let nextSdkCall = 0;
const aws = (service) => class {
  constructor(config) { this.config = config; }
  send(command) {
    return new Promise((resolve, reject) => {
      const id = nextSdkCall++;
      sdkCalls.set(id, { resolve, reject });
      parentPort.postMessage({ sdk: { id, service, operation: command.operation, input: command.input } });
    });
  }
  destroy() {}
};
const command = (operation) => class { constructor(input = {}) { this.operation = operation; this.input = input; } };
const commands = (names) => Object.fromEntries(names.map((n) => [n + 'Command', command(n)]));
const modules = { crypto: require('node:crypto'), 'node:crypto': require('node:crypto') };
if (workerData.sdk) {
  modules['@aws-sdk/client-dynamodb'] = { DynamoDBClient: aws('dynamodb'), ...commands(['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchGetItem', 'BatchWriteItem', 'Scan']) };
  modules['@aws-sdk/client-iot'] = { IoTClient: aws('iot'), ...commands(['DescribeCertificate']) };
}
const hookRequire = (name) => {
  if (name in modules) return modules[name];
  throw Object.assign(new Error("Cannot find module '" + name + "'"), { code: 'MODULE_NOT_FOUND' });
};
const context = vm.createContext({
  module, exports: module.exports, require: hookRequire,
  console: { log, info: log, warn: log, error: log, debug: log },
  process: { env: { ...workerData.env } },
  setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (t) => clearTimeout(t),
  Buffer, URL,
});
let handler, loadError;
try {
  new vm.Script(workerData.source, { filename: 'pre-provisioning-hook.js' }).runInContext(context);
  handler = module.exports.handler ?? context.exports.handler;
  if (typeof handler !== 'function') loadError = 'hook source exports no handler';
} catch (e) { loadError = message(e); }
parentPort.postMessage({ ready: true });
const call = new vm.Script('__handler(__event)');
parentPort.on('message', async ({ id, event, sdkReply }) => {
  if (sdkReply) {
    const pending = sdkCalls.get(sdkReply.id);
    sdkCalls.delete(sdkReply.id);
    if (!pending) return;
    if (sdkReply.error) pending.reject(Object.assign(new Error(sdkReply.error.message), sdkReply.error));
    else pending.resolve(sdkReply.result);
    return;
  }
  if (loadError) return parentPort.postMessage({ id, threw: loadError });
  try {
    context.__handler = handler;
    context.__event = event;
    const result = await call.runInContext(context);
    parentPort.postMessage({ id, result: JSON.parse(json(result) ?? 'null') });
  } catch (e) {
    parentPort.postMessage({ id, threw: message(e) });
  }
});
`;

type Reply =
  | { id: number; result?: unknown; threw?: string }
  | { log: string }
  | { ready: true }
  | { sdk: { id: number; service: 'dynamodb' | 'iot'; operation: string; input: Record<string, unknown> } };

/** An SDK error as the hook sees it: its name, message and the fields DynamoDB adds (the old Item). */
function sdkError(error: unknown): Record<string, unknown> {
  const e = error as { name?: string; message?: string; Item?: unknown };
  return { name: e.name ?? 'Error', message: e.message ?? String(error), ...(e.Item ? { Item: e.Item } : {}) };
}

/** Lambda gives a function's init phase 10 s of its own; the invocation limit starts after it. */
const INIT_TIMEOUT_MS = 10_000;

/** Loads the hook source once (lazily, in a worker); the runner it returns never throws. */
export function createHookRunner(source: string, options: HookOptions = {}): HookRunner {
  const timeoutMs = options.timeoutMs ?? HOOK_TIMEOUT_MS;
  const log = options.log ?? (() => undefined);
  const pending = new Map<number, (outcome: HookOutcome) => void>();
  let worker: { thread: Worker; ready: Promise<boolean> } | undefined;
  let nextId = 0;

  const start = () => {
    const thread = new Worker(WORKER_SOURCE, { eval: true, workerData: { source, env: options.env ?? {}, sdk: Boolean(options.sdk) }, env: {}, stdout: true, stderr: true });
    // Hook workers must not keep the emulator alive.
    thread.unref();
    let becameReady!: (ok: boolean) => void;
    const ready = new Promise<boolean>((resolve) => (becameReady = resolve));
    const initTimer = setTimeout(() => stop(thread, { ok: false, reason: 'timeout', message: `hook did not load within ${INIT_TIMEOUT_MS} ms` }), INIT_TIMEOUT_MS);
    initTimer.unref();
    thread.on('message', (reply: Reply) => {
      if ('ready' in reply) {
        clearTimeout(initTimer);
        return becameReady(true);
      }
      if ('log' in reply) return log(reply.log);
      if ('sdk' in reply) {
        const { id, service, operation, input } = reply.sdk;
        void Promise.resolve()
          .then(() => options.sdk!(service, operation, input))
          .then(
            (result) => thread.postMessage({ sdkReply: { id, result } }),
            (error: unknown) => thread.postMessage({ sdkReply: { id, error: sdkError(error) } }),
          );
        return;
      }
      const settle = pending.get(reply.id);
      pending.delete(reply.id);
      settle?.(reply.threw !== undefined ? { ok: false, reason: 'threw', message: reply.threw } : checkResult(reply.result));
    });
    thread.on('error', (error) => stop(thread, { ok: false, reason: 'threw', message: error.message }));
    thread.on('exit', () => {
      clearTimeout(initTimer);
      becameReady(false);
      stop(thread, { ok: false, reason: 'threw', message: 'the hook runtime exited' });
    });
    return { thread, ready };
  };

  /** Ends a worker and answers whatever was waiting on it. */
  const stop = (thread: Worker, outcome: HookOutcome) => {
    if (worker?.thread !== thread) return;
    worker = undefined;
    void thread.terminate();
    for (const settle of pending.values()) settle(outcome);
    pending.clear();
  };

  const run = async (event: HookEvent): Promise<HookOutcome> => {
    const w = (worker ??= start());
    const id = nextId++;
    const answer = new Promise<HookOutcome>((resolve) => pending.set(id, resolve));
    // The invocation's time limit starts once the hook is loaded, as in Lambda.
    if (!(await w.ready)) return answer;
    const timer = setTimeout(() => stop(w.thread, { ok: false, reason: 'timeout', message: `hook did not answer within ${timeoutMs} ms` }), timeoutMs);
    timer.unref();
    w.thread.postMessage({ id, event });
    return answer.finally(() => clearTimeout(timer));
  };
  return Object.assign(run, {
    close: async () => {
      if (worker) stop(worker.thread, { ok: false, reason: 'threw', message: 'the hook runtime was shut down' });
    },
  });
}

/** Loads and runs a hook once (tests, one-off checks). */
export async function runHook(source: string, event: HookEvent, options: HookOptions = {}): Promise<HookOutcome> {
  const run = createHookRunner(source, options);
  try {
    return await run(event);
  } finally {
    await run.close();
  }
}

function checkResult(result: unknown): HookOutcome {
  const r = result as Partial<HookResult> | null;
  if (!r || typeof r !== 'object' || typeof r.allowProvisioning !== 'boolean')
    return { ok: false, reason: 'bad-result', message: 'hook result has no boolean allowProvisioning' };
  const overrides = r.parameterOverrides;
  if (overrides !== undefined && (typeof overrides !== 'object' || overrides === null || Object.values(overrides).some((v) => typeof v !== 'string')))
    return { ok: false, reason: 'bad-result', message: 'hook parameterOverrides must map names to strings' };
  return { ok: true, result: { allowProvisioning: r.allowProvisioning, ...(overrides ? { parameterOverrides: { ...overrides } } : {}) } };
}
