// Reading the files the config names, and every other local step, within a bounded time: a file
// under /proc or a hung mount must never keep the agent from ending (issue 13). Messages name the
// config field first: "claimKeyPath /etc/...: is empty".
import type { Stats } from 'node:fs';
import { readText, statPath } from '../shared/file-calls.ts';
import { Fault } from './errors.ts';
import type { FaultKind } from './faults.ts';

/** How long one local filesystem step may take before the agent gives up on it. */
export const FS_STEP_TIMEOUT_MS = 10_000;

/** Resolves as `promise`, or rejects with `onTimeout()` after `ms` (the step itself is not cancelled). */
export function bounded<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A local step bounded by FS_STEP_TIMEOUT_MS; the fault names the field and the path. */
export function boundedStep<T>(kind: FaultKind, field: string, file: string, step: Promise<T>): Promise<T> {
  return bounded(step, FS_STEP_TIMEOUT_MS, () => new Fault(kind, `${field} ${file}: the filesystem did not answer within ${FS_STEP_TIMEOUT_MS / 1000} s`));
}

const errnoOf = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? 'error';

/** The stats of a regular file a config field names, or a Fault of `kind`: missing, unreadable, a directory, not a file. */
export async function statRegularFile(kind: FaultKind, field: string, file: string, expected = 'a file'): Promise<Stats> {
  const fail = (problem: string) => new Fault(kind, `${field} ${file}: ${problem}`);
  const info = await boundedStep(kind, field, file, statPath(file)).catch((error: unknown) => {
    if (error instanceof Fault) throw error;
    const code = errnoOf(error);
    throw fail(code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code})`);
  });
  if (info.isDirectory()) throw fail(`is a directory; expected ${expected}`);
  if (!info.isFile()) throw fail('is not a regular file');
  return info;
}

/** The text of a regular file a config field names (statRegularFile's faults, and "cannot be read"). */
export async function readRegularFile(kind: FaultKind, field: string, file: string, expected?: string): Promise<string> {
  await statRegularFile(kind, field, file, expected);
  return boundedStep(kind, field, file, readText(file)).catch((error: unknown) => {
    if (error instanceof Fault) throw error;
    throw new Fault(kind, `${field} ${file}: cannot be read (${errnoOf(error)})`);
  });
}

/** The PEM text of a file the config names: readRegularFile, and neither empty nor binary (NUL bytes, invalid UTF-8). */
export async function readConfiguredFile(kind: FaultKind, field: string, file: string): Promise<string> {
  const text = await readRegularFile(kind, field, file);
  if (text.trim() === '') throw new Fault(kind, `${field} ${file}: is empty`);
  if (/[\0\uFFFD]/.test(text)) throw new Fault(kind, `${field} ${file}: is binary; expected PEM text`);
  return text;
}
