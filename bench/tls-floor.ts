// The machine's floor for a provisioning's TLS: OpenSSL's own server and client (`openssl
// s_server` / `openssl s_time -new`), with the emulator's server certificate and the claim, doing
// nothing but mutual TLS 1.3 handshakes. Every device connection costs at least this much CPU,
// in any Node.js program (Node 20 bundles the same OpenSSL 3.0), so it bounds what any emulator
// plus load generator can do on these cores. Measured twice: as OpenSSL serves by default (two
// session tickets a connection) and with none (`-num_tickets 0`).
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { freePort } from '../test/helpers/project.ts';

export interface TlsFloor {
  /** Tickets sent per connection: OpenSSL's default (2), or 0. */
  tickets: number;
  connections: number;
  serverMs: number;
  clientMs: number;
}

export interface TlsFloorFiles {
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  ca: string;
}

const CLK_TCK = 100;
const cpuSeconds = async (pid: number) => {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
};

/** Handshakes for `seconds` of the client's CPU, one at a time, `tickets` per connection. */
export async function measureTlsFloor(files: TlsFloorFiles, tickets: 0 | 2, seconds = 4): Promise<TlsFloor> {
  const port = await freePort();
  const server = execa('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', files.serverCert, '-key', files.serverKey, '-CAfile', files.ca, '-Verify', '1', '-www', '-num_tickets', String(tickets)], {
    reject: false,
    stderr: 'ignore',
  });
  try {
    // It prints ACCEPT once it listens.
    for await (const line of createInterface({ input: server.stdout! })) if (line === 'ACCEPT') break;
    const before = await cpuSeconds(server.pid!);
    const client = execa('openssl', ['s_time', '-connect', `127.0.0.1:${port}`, '-new', '-cert', files.clientCert, '-key', files.clientKey, '-CAfile', files.ca, '-time', String(seconds)], { reject: false });
    // Its CPU, read while it runs (/proc is gone once it exits): the last reading before it ends.
    let clientCpu = 0;
    const sample = setInterval(() => void cpuSeconds(client.pid!).then((s) => (clientCpu = s), () => undefined), 50);
    const result = await client.finally(() => clearInterval(sample));
    const serverCpu = (await cpuSeconds(server.pid!)) - before;
    const connections = Number(/^(\d+) connections in [\d.]+s/m.exec(String(result.stdout))?.[1]);
    if (!(connections > 0)) throw new Error(`bench: openssl s_time made no connection: ${String(result.stdout).slice(0, 300)}`);
    return { tickets, connections, serverMs: (serverCpu * 1000) / connections, clientMs: (clientCpu * 1000) / connections };
  } finally {
    server.kill();
    await server;
  }
}
