// A real HTTP CONNECT proxy for the tests: Debian's tinyproxy on 127.0.0.1 (src/qemu/http-proxy.ts,
// which the QEMU proxy scenario uses too), in a tmp dir, stopped when the test ends.
import { onTestFinished } from 'vitest';
import { startHostProxy, type HostProxyOptions } from '../../src/qemu/http-proxy.ts';
import { commandWorks } from './commands.ts';
import { tmpDir } from './tmp.ts';

export { freePort } from '../../src/qemu/http-proxy.ts';

export const hasTinyproxy = commandWorks('tinyproxy', ['-v']);

export interface Tinyproxy {
  port: number;
  /** http://127.0.0.1:<port>, without credentials. */
  url: string;
  log(): Promise<string>;
}

export async function startTinyproxy(options: HostProxyOptions = {}): Promise<Tinyproxy> {
  const proxy = await startHostProxy(await tmpDir('fp-tinyproxy-'), options);
  onTestFinished(() => proxy.stop());
  return { port: proxy.port, url: `http://127.0.0.1:${proxy.port}`, log: proxy.log };
}
