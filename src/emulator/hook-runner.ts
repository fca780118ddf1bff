// Runs the pre-provisioning hook the way Lambda does: the same CommonJS source the stack deploys,
// loaded once into its own vm context (a warm Lambda container: its own `process.env`, globals
// that persist between invocations, console captured), each invocation under a time limit.
import vm from 'node:vm';
import { HOOK_TIMEOUT_MS, type HookEvent, type HookResult } from '../shared/protocol.ts';

export type HookOutcome =
  | { ok: true; result: HookResult }
  | { ok: false; reason: 'threw' | 'timeout' | 'bad-result'; message: string };

export interface HookOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Where the hook's console output goes (it never reaches the emulator's stdout directly). */
  log?: (line: string) => void;
  /** The hook's `require` (Lambda's runtime has node's modules and the AWS SDK); none by default. */
  require?: (name: string) => unknown;
}

export type HookRunner = (event: HookEvent) => Promise<HookOutcome>;

type Handler = (event: HookEvent) => unknown;

const CALL = new vm.Script('__handler(__event)');

function errorMessage(error: unknown): string {
  // Errors thrown inside the context are of its realm: not `instanceof Error` here.
  return typeof error === 'object' && error !== null && 'message' in error ? String((error as { message: unknown }).message) : String(error);
}

const timedOut = (error: unknown) => /Script execution timed out/.test(errorMessage(error));

/** Loads the hook source once; the runner it returns never throws. */
export function createHookRunner(source: string, options: HookOptions = {}): HookRunner {
  const timeoutMs = options.timeoutMs ?? HOOK_TIMEOUT_MS;
  const sink = options.log ?? (() => undefined);
  const log = (...args: unknown[]) => sink(args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' '));
  const module = { exports: {} as { handler?: Handler } };
  const context = vm.createContext({
    module,
    exports: module.exports,
    require: options.require ?? ((name: string) => {
      throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
    }),
    console: { log, info: log, warn: log, error: log, debug: log },
    process: { env: { ...options.env } },
    // Timers a hook leaves behind must not keep the emulator alive.
    setTimeout: (fn: () => void, ms?: number) => setTimeout(fn, ms).unref(),
    clearTimeout: (t: NodeJS.Timeout) => clearTimeout(t),
    Buffer,
    URL,
  });
  let loadError: string | undefined;
  try {
    // The vm timeout bounds synchronous code (a busy loop); the race below bounds the promise.
    new vm.Script(source, { filename: 'pre-provisioning-hook.js' }).runInContext(context, { timeout: timeoutMs });
    const handler = module.exports.handler ?? (context.exports as { handler?: Handler }).handler;
    if (typeof handler !== 'function') loadError = 'hook source exports no handler';
    context.__handler = handler;
  } catch (error) {
    loadError = timedOut(error) ? `hook did not load within ${timeoutMs} ms` : errorMessage(error);
  }

  return async (event) => {
    if (loadError) return { ok: false, reason: 'threw', message: loadError };
    let timer: NodeJS.Timeout | undefined;
    try {
      context.__event = JSON.parse(JSON.stringify(event));
      const pending = Promise.resolve(CALL.runInContext(context, { timeout: timeoutMs }));
      const timeout = new Promise<typeof TIMEOUT>((resolve) => {
        timer = setTimeout(() => resolve(TIMEOUT), timeoutMs);
      });
      const result = await Promise.race([pending, timeout]);
      if (result === TIMEOUT) return { ok: false, reason: 'timeout', message: `hook did not answer within ${timeoutMs} ms` };
      return checkResult(result);
    } catch (error) {
      if (timedOut(error)) return { ok: false, reason: 'timeout', message: `hook did not answer within ${timeoutMs} ms` };
      return { ok: false, reason: 'threw', message: errorMessage(error) };
    } finally {
      clearTimeout(timer);
    }
  };
}

const TIMEOUT = Symbol('timeout');

/** Loads and runs a hook once (tests, one-off checks). */
export function runHook(source: string, event: HookEvent, options: HookOptions = {}): Promise<HookOutcome> {
  return createHookRunner(source, options)(event);
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

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
