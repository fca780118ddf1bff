// TLS in worker processes (`tlsWorkers`, `--tls-workers`): the TLS rules are the same as with
// TLS in the emulator's thread (each case runs in both modes), a worker that dies is restarted,
// and no worker outlives its emulator, closed or killed -9.
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority, certificateIdOf, createCa } from '../../src/emulator/ca.ts';
import { processGone } from '../../src/emulator/discovery.ts';
import { defaultTlsWorkers } from '../../src/emulator/tls-workers.ts';
import { startEmulator } from '../../src/emulator/index.ts';
import { MQTT_ALPN, TOPICS } from '../../src/shared/protocol.ts';
import { CLIENT_ID_PREFIX, connectMqtt, fleetRequest, setupFleet, spawnCliEmulator, startTestEmulator } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { makeCsr } from './csr.ts';

let ids = 0;
const clientId = () => `${CLIENT_ID_PREFIX}w${process.pid}-${ids++}`;

/** The emulator's log; `lines(pattern, n)` resolves once n lines match, whenever they come. */
function capture() {
  const all: string[] = [];
  const waiting = new Set<() => boolean>();
  const lines = (pattern: RegExp, count = 1) =>
    new Promise<string[]>((resolve) => {
      const check = () => {
        const matching = all.filter((l) => pattern.test(l));
        if (matching.length >= count) resolve(matching);
        return matching.length >= count;
      };
      if (!check()) waiting.add(check);
    });
  const log = (line: string) => {
    all.push(line);
    for (const check of waiting) if (check()) waiting.delete(check);
  };
  return { all, log, lines, next: async (pattern: RegExp) => (await lines(pattern))[0]! };
}

/** A key and a certificate for it, signed by `ca`. */
function clientCredentials(ca: CertificateAuthority) {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certPem: ca.issueClient(pair.publicKey.export({ type: 'spki', format: 'der' }), new Date()),
  };
}

/** The parent process of `pid`, from /proc. */
async function parentOf(pid: number): Promise<number> {
  return Number((await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ')[1]);
}

describe.each([
  { mode: 'TLS in the emulator thread', tlsWorkers: 0 },
  { mode: 'TLS in 2 worker processes', tlsWorkers: 2 },
])('TLS rules ($mode)', ({ tlsWorkers }) => {
  it('refuses certificates the CA did not sign and clients without one, with one log line each', async () => {
    const logs = capture();
    const t = await startTestEmulator({ tlsWorkers, log: logs.log });
    expect(t.emulator.tlsWorkerPids()).toHaveLength(tlsWorkers);
    const stranger = clientCredentials(new CertificateAuthority(createCa()));
    await expect(connectMqtt(t.emulator, stranger, { clientId: clientId(), timeoutMs: 5000 })).rejects.toThrow();
    await logs.next(/^tls: refused a client: /);
    await expect(connectMqtt(t.emulator, { certPem: undefined, keyPem: undefined } as never, { clientId: clientId(), timeoutMs: 5000 })).rejects.toThrow();
    await logs.lines(/^tls: refused a client: /, 2);
    expect(logs.all.filter((l) => l.startsWith('tls: ') && !/^tls: worker \d+ started$/.test(l))).toHaveLength(2);
    expect(logs.all.some((l) => l.startsWith('connect: '))).toBe(false);
  });

  it('passes the client certificate on: an unknown one is refused at CONNECT by its id, a known one provisions', async () => {
    const logs = capture();
    const t = await startTestEmulator({ tlsWorkers, log: logs.log });
    // Signed by the emulator's root but never registered: the TLS handshake passes, CONNECT does not.
    const root = new CertificateAuthority({
      certPem: t.emulator.caPem,
      keyPem: await readFile(path.join(t.emulator.dir, 'root-ca.key.pem'), 'utf8'),
    });
    const unknown = clientCredentials(root);
    await expect(connectMqtt(t.emulator, unknown, { clientId: clientId(), timeoutMs: 5000 })).rejects.toThrow(/Not authorized|not authorized/i);
    expect(await logs.next(/^connect: refused client /)).toContain(`unknown certificate ${certificateIdOf(unknown.certPem)}`);
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    expect(logs.all).toContain(`connect: accepted client ${client.options.clientId} certificate ${t.claim.certificateId}`);
    expect((await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem })).accepted).toBe(true);
  });

  it('port 443 mode: ends a connection without ALPN x-amzn-mqtt-ca and logs why', async () => {
    const logs = capture();
    const t = await startTestEmulator({ tlsWorkers, alpnRequired: true, log: logs.log });
    await expect(connectMqtt(t.emulator, t.claim, { clientId: clientId(), timeoutMs: 5000 })).rejects.toThrow();
    await logs.next(/^tls: refused a client without ALPN x-amzn-mqtt-ca \(port 443 mode\)$/);
    // Offering only other protocols fails the handshake itself (no common protocol).
    await expect(connectMqtt(t.emulator, t.claim, { clientId: clientId(), ALPNProtocols: ['mqtt'], timeoutMs: 5000 })).rejects.toThrow();
    await logs.next(/^tls: refused a client: /);
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), ALPNProtocols: [MQTT_ALPN] });
    expect(client.connected).toBe(true);
  });
});

it('defaults to every core but one from 3 cores up, and to TLS in the thread on 1 or 2', () => {
  expect([1, 2, 3, 4, 16].map((cores) => defaultTlsWorkers(cores))).toEqual([0, 0, 2, 3, 15]);
});

describe('TLS worker processes', () => {
  // With one worker the listening socket dies with it and the primary listens again on the same
  // port; with two the new worker gets it from the other.
  it.each([1, 2])('restarts a worker that dies, logs it, and serves on the same port (%i workers)', async (tlsWorkers) => {
    const logs = capture();
    const t = await startTestEmulator({ tlsWorkers, log: logs.log });
    const [first, ...others] = t.emulator.tlsWorkerPids();
    expect(await parentOf(first!)).toBe(process.pid);
    process.kill(first!, 'SIGKILL');
    await logs.next(new RegExp(`^tls: worker ${first} exited \\(SIGKILL\\); starting another$`));
    const started = await logs.lines(/^tls: worker \d+ started$/, tlsWorkers + 1);
    const pids = t.emulator.tlsWorkerPids();
    expect(pids).toHaveLength(tlsWorkers);
    expect(pids).not.toContain(first);
    expect(pids).toEqual(expect.arrayContaining(others));
    expect(started.at(-1)).toBe(`tls: worker ${pids.find((p) => !others.includes(p))} started`);
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    expect((await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem })).accepted).toBe(true);
  });

  it('ends every worker when the emulator closes', async () => {
    const dir = await tmpDir('fp-tls-workers-');
    const emulator = await startEmulator({ port: 0, dir, tlsWorkers: 2 });
    await setupFleet(emulator, dir);
    const pids = emulator.tlsWorkerPids();
    expect(pids).toHaveLength(2);
    await emulator.close();
    // Closed means reaped: signal 0 finds no such process.
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('leaves no worker behind when the emulator is killed -9', async () => {
    const dir = path.join(await tmpDir('fp-tls-workers-'), 'state');
    const { child, lines } = await spawnCliEmulator(dir, ['--tls-workers', '2']);
    const pids = lines.flatMap((l) => /tls: worker (\d+) started$/.exec(l)?.[1] ?? []).map(Number);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(await parentOf(pid)).toBe(child.pid);
    child.kill('SIGKILL');
    await child;
    // Not our children: no exit event to wait on here, signal 0 tells when they are gone.
    for (const pid of pids) expect(await processGone(pid, 10_000)).toBe(true);
  });
});
