// A real HTTP CONNECT proxy for the tests: Debian's tinyproxy on 127.0.0.1, with its own config
// and log in a tmp dir, stopped when the test ends. Readiness is waited on by connecting, within
// a deadline; no sleeps.
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { onTestFinished } from 'vitest';
import { commandWorks } from './commands.ts';
import { tmpDir } from './tmp.ts';

export const hasTinyproxy = commandWorks('tinyproxy', ['-v']);

export interface Tinyproxy {
  port: number;
  /** http://127.0.0.1:<port>, without credentials. */
  url: string;
  log(): Promise<string>;
}

export interface TinyproxyOptions {
  /** BasicAuth user and password: clients without them get 407. */
  basicAuth?: [string, string];
  /** Ports CONNECT may reach (tinyproxy's ConnectPort); default 443 only, as many proxies. */
  connectPorts?: number[];
}

/** A port nobody listens on now (the kernel's choice). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const dir = await tmpDir('fp-tinyproxy-');
  const port = await freePort();
  const logFile = path.join(dir, 'tinyproxy.log');
  const lines = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 60',
    `LogFile "${logFile}"`,
    // Connect level: one line per request, with its CONNECT target.
    'LogLevel Connect',
    'MaxClients 20',
    'Allow 127.0.0.1',
    ...(options.connectPorts ?? [443]).map((p) => `ConnectPort ${p}`),
    ...(options.basicAuth ? [`BasicAuth ${options.basicAuth[0]} ${options.basicAuth[1]}`] : []),
  ];
  const conf = path.join(dir, 'tinyproxy.conf');
  await writeFile(conf, `${lines.join('\n')}\n`);
  // -d: stay in the foreground, so the test owns the process.
  const child = execa('tinyproxy', ['-d', '-c', conf], { reject: false, stdio: 'ignore' });
  onTestFinished(async () => {
    child.kill();
    await child;
  });
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`tinyproxy exited (${child.exitCode}): ${await readFile(logFile, 'utf8').catch(() => '')}`);
    if (Date.now() > deadline) throw new Error('tinyproxy did not listen within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { port, url: `http://127.0.0.1:${port}`, log: () => readFile(logFile, 'utf8').catch(() => '') };
}
