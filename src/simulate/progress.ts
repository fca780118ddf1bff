// Progress of a fleet run: on a terminal one bar redrawn in place; otherwise (CI logs, pipes) a
// plain line at every tenth of the run, so a log holds ten lines whatever N is.
import pc from 'picocolors';
import { formatDuration, type Tally } from './summary.ts';

const BAR_WIDTH = 30;
const REDRAW_MS = 100;
/** Columns the bar and the counts need together; narrower terminals get the counts only. */
const WIDE_TERMINAL = 110;

/** One line: bar, counts, rate, elapsed time. Pure, for the tests and for both modes. */
export function renderProgress(tally: Tally, elapsedMs: number, bar = true): string {
  const fraction = tally.total > 0 ? tally.done / tally.total : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  const rate = elapsedMs > 0 ? (tally.success * 1000) / elapsedMs : 0;
  const counts = [
    `${tally.done}/${tally.total}`,
    pc.green(`${tally.success} ok`),
    tally.rejected ? pc.red(`${tally.rejected} rejected`) : `${tally.rejected} rejected`,
    tally.failed ? pc.red(`${tally.failed} failed`) : `${tally.failed} failed`,
    tally.retried ? pc.yellow(`${tally.retried} retried`) : `${tally.retried} retried`,
    `${rate.toFixed(1)}/s`,
    formatDuration(elapsedMs),
  ].join('  ');
  return bar ? `${pc.cyan('█'.repeat(filled))}${pc.dim('░'.repeat(BAR_WIDTH - filled))} ${counts}` : counts;
}

export interface Progress {
  update(tally: Tally): void;
  /** Removes the bar (terminal) so the summary starts on a clean line. */
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream, total: number, now: () => number = () => performance.now()): Progress {
  const started = now();
  if (!stream.isTTY) {
    let lastTenth = 0;
    return {
      update(tally) {
        const tenth = Math.floor((tally.done * 10) / Math.max(1, total));
        if (tenth <= lastTenth) return;
        lastTenth = tenth;
        stream.write(`simulate: ${renderProgress(tally, now() - started, false)}\n`);
      },
      stop: () => undefined,
    };
  }
  let latest: Tally = { total, done: 0, success: 0, rejected: 0, failed: 0, retried: 0 };
  let drawnAt = -Infinity;
  const draw = () => {
    drawnAt = now();
    // A line wider than the terminal wraps, and `\r` would then redraw only its last part.
    stream.write(`\r\x1b[2K${renderProgress(latest, drawnAt - started, (stream.columns ?? 80) >= WIDE_TERMINAL)}`);
  };
  // Devices can sit in backoff for seconds: keep the clock on the bar moving meanwhile.
  const timer = setInterval(draw, 500).unref();
  draw();
  return {
    update(tally) {
      latest = tally;
      if (now() - drawnAt >= REDRAW_MS || tally.done === total) draw();
    },
    stop() {
      clearInterval(timer);
      stream.write('\r\x1b[2K');
    },
  };
}
