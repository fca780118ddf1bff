// One line per event on stderr: journald adds the time stamp and unit, so no colours and no
// time here. Callers pass facts (paths, ids, step names), never key material or tokens.
import type { AsyncLocalStorage } from 'node:async_hooks';
import { writeOut } from './stdio.ts';

const PREFIX = 'fp-agent: ';

/** A log line is one line: newlines and other control characters in a message become spaces. */
export const oneLine = (text: string): string => text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();

/**
 * Per-run log sinks: let many agents share one process (fp-yocto simulate) without stderr noise.
 * Made on first use, so that a device's run does not load async_hooks.
 */
let sinks: AsyncLocalStorage<(message: string) => void> | undefined;

/**
 * Where this thread's lines go when no per-run sink applies: stderr unless set. fp-yocto
 * simulate's worker threads drop them all with it, which costs nothing per promise, unlike a
 * per-run sink (AsyncLocalStorage runs async hooks on every promise on Node 20).
 */
let threadSink: ((message: string) => void) | undefined;
export function setThreadLogSink(sink: (message: string) => void): void {
  threadSink = sink;
}

export function log(message: string): void {
  const line = oneLine(message);
  const sink = sinks?.getStore() ?? threadSink;
  if (sink) sink(line);
  else writeOut(2, `${PREFIX}${line}\n`);
}

/** Runs `body` with every log() line inside it (across awaits) sent to `sink` instead of stderr. */
export async function withLogSink<T>(sink: (message: string) => void, body: () => Promise<T>): Promise<T> {
  if (!sinks) {
    const { AsyncLocalStorage } = await import('node:async_hooks');
    sinks ??= new AsyncLocalStorage();
  }
  return sinks.run(sink, body);
}

/** The one line a failing run ends with. */
export function logFatal(message: string): void {
  log(message);
}
