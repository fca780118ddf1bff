// For tests that run `fp-yocto init --local` as a user would: a free port for the emulator it
// starts in the background, and stopping that emulator when the test ends.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { processGone } from '../../src/emulator/discovery.ts';

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Stops the background emulator of a project when the test ends, and checks that it did stop. */
export function stopEmulatorAtEnd(emulatorDir: string): void {
  onTestFinished(async () => {
    const info = await readFile(path.join(emulatorDir, 'emulator.json'), 'utf8').then(JSON.parse, () => undefined);
    if (!info) return;
    try {
      process.kill(info.pid, 'SIGTERM');
    } catch {
      return;
    }
    if (!(await processGone(info.pid, 5_000))) process.kill(info.pid, 'SIGKILL');
  });
}
