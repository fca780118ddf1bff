// A growing list of log lines (the emulator's log) that callers wait on, event driven: a waiter
// is checked when a line arrives, never by polling, and always has a deadline.
export class LineLog {
  readonly lines: string[] = [];
  private readonly listeners = new Set<() => void>();

  push(line: string): void {
    this.lines.push(line);
    for (const l of [...this.listeners]) l();
  }

  /** The first line at index >= `from` matching `re`; rejects after `timeoutMs` with the last lines. */
  waitFor(re: RegExp, timeoutMs: number, from = 0, what = 'the emulator log'): Promise<string> {
    return new Promise((resolve, reject) => {
      let scanned = from;
      const check = () => {
        for (; scanned < this.lines.length; scanned++) {
          if (re.test(this.lines[scanned]!)) return finish(() => resolve(this.lines[scanned]!));
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`no line of ${what} matched ${re} within ${timeoutMs} ms\n--- last lines ---\n${this.lines.slice(-20).join('\n')}`)),
          ),
        timeoutMs,
      );
      const finish = (f: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        f();
      };
      this.listeners.add(check);
      check();
    });
  }
}
