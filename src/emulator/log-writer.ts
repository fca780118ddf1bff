// The emulator's log: timestamped lines, written once per turn of the event loop instead of once
// per line. A provisioning logs about ten lines (connect, subscribes, publishes, the result), and
// a write to a pipe or file is a synchronous system call in Node: line by line it cost a tenth of
// the emulator's CPU under load. Nothing is lost on a normal exit (flushed on 'exit'); a kill -9
// loses at most the lines of the turn it interrupts, never a registry change (those are in SQLite).

export interface LogWriter {
  /** Queues one line, stamped with the time it was logged. */
  line(text: string): void;
  /** Writes what is queued, now. */
  flush(): void;
}

export function createLogWriter(write: (text: string) => void, now: () => number = Date.now): LogWriter {
  let queued: string[] = [];
  let scheduled = false;
  // Lines logged in the same millisecond share one formatted stamp.
  let stampMs = Number.NaN;
  let stamp = '';
  const flush = () => {
    scheduled = false;
    if (queued.length === 0) return;
    const text = `${queued.join('\n')}\n`;
    queued = [];
    write(text);
  };
  return {
    line(text) {
      const ms = now();
      if (ms !== stampMs) stamp = new Date((stampMs = ms)).toISOString();
      queued.push(`${stamp} ${text}`);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}
