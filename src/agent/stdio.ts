// Output without Node's stream objects. process.stdout and process.stderr build a net.Socket,
// tty.WriteStream or fs.SyncWriteStream on first use: about 8 M instructions on Node 22, a tenth of
// Node's own start-up, for a program that writes a line or two and exits. Measured with valgrind
// (docs/agent.md, "Footprint").
import { writeSync } from 'node:fs';

/**
 * Writes `text` to stdout (1) or stderr (2) at once. A descriptor that is non-blocking and full
 * (EAGAIN) gets the rest through the stream, which queues it; any other failure (EPIPE: the
 * reader is gone) drops the output, as there is nowhere left to report it.
 */
export function writeOut(fd: 1 | 2, text: string): void {
  let rest = Buffer.from(text);
  try {
    while (rest.length > 0) rest = rest.subarray(writeSync(fd, rest));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN') (fd === 1 ? process.stdout : process.stderr).write(rest);
  }
}
