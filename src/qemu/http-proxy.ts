// A real HTTP CONNECT proxy on the host: Debian's tinyproxy on 127.0.0.1, with its own config and
// log in `dir`, for the QEMU proxy scenario (the guest reaches it through slirp's forward) and the
// agent's proxy tests. Readiness: a TCP connect, retried within a deadline.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

export interface HostProxy {
  port: number;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** A port nobody listens on now (the kernel's choice). */
export const freePort = async (): Promise<number> => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
};

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

export interface HostProxyOptions {
  /** BasicAuth user and password: clients without them get 407. */
  basicAuth?: [string, string];
  /** Ports CONNECT may reach (ConnectPort); default 443 only, as many site proxies. */
  connectPorts?: number[];
}

/** tinyproxy; its log has one `CONNECT <host>:<port>` line per tunnel asked for (LogLevel Connect). */
export async function startHostProxy(dir: string, options: HostProxyOptions = {}): Promise<HostProxy> {
  const port = await freePort();
  const logFile = join(dir, 'tinyproxy.log');
  const conf = join(dir, 'tinyproxy.conf');
  const lines = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 120',
    `LogFile "${logFile}"`,
    'LogLevel Connect',
    'Allow 127.0.0.1',
    ...(options.connectPorts ?? [443]).map((p) => `ConnectPort ${p}`),
    ...(options.basicAuth ? [`BasicAuth ${options.basicAuth[0]} ${options.basicAuth[1]}`] : []),
  ];
  await writeFile(conf, `${lines.join('\n')}\n`);
  const child = spawn('tinyproxy', ['-d', '-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => child.once('error', (e) => reject(new Error(`tinyproxy: ${e.message} (apt-get install tinyproxy)`))));
  failed.catch(() => undefined);
  const deadline = Date.now() + 10_000;
  while (!(await Promise.race([accepts(port), failed]))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      // Never leave a proxy behind that nobody holds a handle to.
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      throw new Error(`tinyproxy did not listen on 127.0.0.1:${port}: ${await readFile(logFile, 'utf8').catch(() => '')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    async stop() {
      if (child.exitCode === null) child.kill();
      await exited;
    },
  };
}
