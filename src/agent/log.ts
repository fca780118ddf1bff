// One line per event on stderr: journald adds the time stamp and unit, so no colours and no
// time here. Callers pass facts (paths, ids, step names), never key material or tokens.
import { AsyncLocalStorage } from 'node:async_hooks';

const PREFIX = 'fp-agent: ';

/** Per-run log sink: lets many agents share one process (fp-yocto simulate) without stderr noise. */
const sinks = new AsyncLocalStorage<(message: string) => void>();

export function log(message: string): void {
  const sink = sinks.getStore();
  if (sink) sink(message);
  else process.stderr.write(`${PREFIX}${message}\n`);
}

/** Runs `body` with every log() line inside it (across awaits) sent to `sink` instead of stderr. */
export function withLogSink<T>(sink: (message: string) => void, body: () => Promise<T>): Promise<T> {
  return sinks.run(sink, body);
}

/** The one line a failing run ends with. */
export function logFatal(message: string): void {
  log(message.replaceAll('\n', ' '));
}
