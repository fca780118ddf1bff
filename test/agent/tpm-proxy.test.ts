// key.store tpm through an HTTP CONNECT proxy, for real: a software TPM (swtpm behind tpm2-abrmd,
// test/helpers/swtpm.ts), Debian's tinyproxy, and the emulator playing AWS IoT Core's port 443
// (ALPN required) on its own loopback address. The TPM key's TLS runs in openssl s_client over
// the tunnel proxy/tunnel.ts opened (tpm/tunnel-relay.ts): the proxy's answers must end as the
// same faults, with the same messages, as on the file-key path, and the proxy password must be
// in no process's argv.
import { randomInt } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { classify } from '../../src/agent/errors.ts';
import { openSession, type SessionOptions } from '../../src/agent/mqtt-session.ts';
import type { ProxyRoute } from '../../src/agent/proxy/route.ts';
import { parseProxyUrl } from '../../src/shared/proxy-url.ts';
import { CLIENT_ID_PREFIX, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { startCuttingRelay } from '../helpers/relay.ts';
import { agentPropquery, softwareTpmAvailable, startSoftwareTpm, type SoftwareTpm } from '../helpers/swtpm.ts';
import { freePort, hasTinyproxy, startTinyproxy } from '../helpers/tinyproxy.ts';
import { expectNoSecrets, makeDevice, THING_NAME, type Device } from './device.ts';

const HANDLE = 0x81000002;
const PASSWORD = 'tpm-pr0xy-s3cret';
const canBind443 = process.getuid?.() === 0 || Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) <= 443;
const FAST = { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 20_000, attemptTimeoutMs: 5_000 };

interface Setup {
  t: TestEmulator;
  host: string;
  tpm: SoftwareTpm;
  device: Device;
  emulatorLog: string[];
}

/** A TPM device whose endpoint is the emulator on <own loopback address>:443. */
async function tpmDeviceOn443(config: Record<string, unknown> = {}, onLog: (line: string) => void = () => undefined): Promise<Setup> {
  const host = `127.${randomInt(64, 250)}.${randomInt(0, 255)}.${randomInt(1, 254)}`;
  const emulatorLog: string[] = [];
  const t = await startTestEmulator({
    host,
    port: 443,
    connectRateLimit: false,
    log: (line) => {
      emulatorLog.push(line);
      onLog(line);
    },
  });
  const tpm = await startSoftwareTpm();
  const device = await makeDevice(t, { iotDataEndpoint: host, port: 443, ...config, key: { store: 'tpm', tpmTcti: tpm.tcti } });
  Object.assign(device.env, tpm.env);
  return { t, host, tpm, device, emulatorLog };
}

const run = (device: Device, env: Record<string, string> = {}) => device.run(['provision'], { ...device.env, ...env });
const connectsTo = async (log: () => Promise<string>, host: string) => (await log()).match(new RegExp(`CONNECT ${host.replaceAll('.', '\\.')}:443 HTTP/1\\.1`, 'g'))?.length ?? 0;

/** Every running process's argv (NUL-separated, as /proc holds it) and environment, by pid. */
function processes(): Array<{ pid: string; cmdline: string; environ: string }> {
  const found = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      found.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'latin1'), environ: readFileSync(`/proc/${pid}/environ`, 'latin1') });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Checked while s_client runs: it is there, on the relay's socket, and no process shows the password in its argv. Returns what is wrong. */
function passwordInArgv(): string[] {
  const all = processes();
  const sClients = all.filter((p) => p.cmdline.startsWith('openssl\0s_client\0') && p.cmdline.includes('\0-unix\0'));
  const problems = sClients.length > 0 ? [] : ['no openssl s_client -unix running'];
  for (const p of all) if (p.cmdline.includes(PASSWORD)) problems.push(`/proc/${p.pid}/cmdline holds the password`);
  // Nor in s_client's environment (the agent drops the proxy variables from it).
  for (const p of sClients) if (p.environ.includes(PASSWORD)) problems.push(`/proc/${p.pid}/environ holds the password`);
  return problems;
}

describe.runIf(softwareTpmAvailable() && hasTinyproxy && canBind443)('key.store tpm through an HTTP CONNECT proxy (swtpm, tinyproxy)', { timeout: 90_000 }, () => {
  it('provisions through a proxy with Basic credentials: the TPM handshake runs in the tunnel, and no argv holds the password', async () => {
    const proxy = await startTinyproxy({ basicAuth: ['device', PASSWORD] });
    const checks: string[][] = [];
    const setup = await tpmDeviceOn443({ proxy: { url: `http://device:${PASSWORD}@127.0.0.1:${proxy.port}` } }, (line) => {
      // Called by the emulator as it accepts the thing's connection (TPM key): s_client is running.
      if (line.startsWith(`connect: accepted client ${THING_NAME} `)) checks.push(passwordInArgv());
    });
    const r = await run(setup.device);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(checks).toEqual([[]]);
    expect(r.stderr).toContain(`connecting to ${setup.host}:443 through the proxy ${proxy.url} (proxy.url)`);
    expect(`${r.stdout}${r.stderr}`).not.toContain(PASSWORD);
    expectNoSecrets(r.stderr);
    // Both connections went through the proxy: the claim's (file key) and the new certificate's check (TPM key).
    expect(await connectsTo(proxy.log, setup.host)).toBe(2);
    const state = JSON.parse(await readFile(path.join(setup.device.out, 'state.json'), 'utf8'));
    expect(state.privateKeyPath).toBe(`handle:0x${HANDLE.toString(16)}`);
    expect(setup.emulatorLog).toContain(`connect: accepted client ${THING_NAME} certificate ${state.certificateId}`);
    // Greengrass lite gets both: the key's handle and the proxy (credentials in the URL, its curl form), 0640.
    const dropIn = parse(await readFile(setup.device.dropIn, 'utf8'));
    expect(dropIn.system.privateKeyPath).toBe(state.privateKeyPath);
    expect(dropIn.services['aws.greengrass.NucleusLite'].configuration.networkProxy).toEqual({ proxy: { url: `http://device:${PASSWORD}@127.0.0.1:${proxy.port}` } });
    expect((await stat(setup.device.dropIn)).mode & 0o777).toBe(0o640);
  });

  it('takes https_proxy as the file-key path does, and goes direct to a host no_proxy names', async () => {
    const proxy = await startTinyproxy();
    const viaEnv = await tpmDeviceOn443();
    const r = await run(viaEnv.device, { https_proxy: proxy.url });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`through the proxy ${proxy.url} (https_proxy)`);
    expect(await connectsTo(proxy.log, viaEnv.host)).toBe(2);

    const direct = await tpmDeviceOn443();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const bypass = await run(direct.device, { https_proxy: dead, no_proxy: `example.com,${direct.host}` });
    expect(bypass.exitCode, bypass.stderr).toBe(0);
    expect(bypass.stderr).not.toContain('through the proxy');
  });

  it('retries when the proxy drops the TPM connection\'s tunnel mid-handshake, and then provisions', async () => {
    const proxy = await startTinyproxy();
    // Connection 0 is the claim's (file key); 1 is the TPM key's check of the new certificate.
    const relay = await startCuttingRelay(proxy.port, 1, 1);
    const { device } = await tpmDeviceOn443({ proxy: { url: `http://127.0.0.1:${relay.port}` }, retry: FAST });
    const r = await run(device);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/proxy http:\/\/127\.0\.0\.1:\d+: the tunnel closed during the TLS session/);
    expect(relay.connections()).toBeGreaterThanOrEqual(3);
  });

  it('ends every proxy answer in the same fault, with the same message, as the file-key path', async () => {
    const setup = await tpmDeviceOn443();
    expect((await run(setup.device)).exitCode).toBe(0);
    const state = JSON.parse(await readFile(path.join(setup.device.out, 'state.json'), 'utf8'));
    const certPem = await readFile(state.certificatePath, 'utf8');
    let n = 0;
    const base = (route: ProxyRoute): SessionOptions => ({
      host: setup.host,
      port: 443,
      // The claim policy allows the prefix's client ids (a new one each time: no 1 CONNECT/s wait).
      clientId: `${CLIENT_ID_PREFIX}parity-${n++}`,
      certPem: setup.t.claim.certPem,
      keyPem: setup.t.claim.keyPem,
      caPem: setup.t.emulator.caPem,
      timeoutMs: 10_000,
      deadline: Date.now() + 20_000,
      protocolVersion: 4,
      proxy: route,
    });
    const route = (url: string): ProxyRoute => ({ proxy: parseProxyUrl(url)!, source: 'proxy.url' });
    const failure = (options: SessionOptions) =>
      openSession(options).then(
        async (session) => {
          await session.close();
          return 'connected';
        },
        (error: unknown) => classify(error),
      );
    const both = async (url: string) => ({
      file: await failure(base(route(url))),
      tpm: await failure({ ...base(route(url)), clientId: THING_NAME, certPem, keyPem: '', tpmKey: { handle: HANDLE, tcti: setup.tpm.tcti, propquery: await agentPropquery(setup.tpm) } }),
    });

    const bus = process.env.DBUS_SESSION_BUS_ADDRESS;
    process.env.DBUS_SESSION_BUS_ADDRESS = setup.tpm.env.DBUS_SESSION_BUS_ADDRESS;
    try {
      const open = await startTinyproxy();
      expect(await both(open.url)).toEqual({ file: 'connected', tpm: 'connected' });

      const refusing = await startTinyproxy({ connectPorts: [563] });
      const authProxy = await startTinyproxy({ basicAuth: ['device', PASSWORD] });
      const unreachable = `http://127.0.0.1:${await freePort()}`;
      const cases = {
        refused: refusing.url,
        noCredentials: authProxy.url,
        wrongCredentials: `http://device:wrong@127.0.0.1:${authProxy.port}`,
        unreachable,
      };
      const expectedFault = { refused: 'proxyRefused', noCredentials: 'proxyAuth', wrongCredentials: 'proxyAuth', unreachable: 'network' };
      for (const [name, url] of Object.entries(cases)) {
        const { file, tpm } = await both(url);
        expect(tpm, name).toEqual(file);
        expect(typeof tpm === 'string' ? tpm : tpm.fault, name).toBe(expectedFault[name as keyof typeof expectedFault]);
      }
      // With the password right, the TPM path connects through the authenticating proxy.
      expect((await both(`http://device:${PASSWORD}@127.0.0.1:${authProxy.port}`)).tpm).toBe('connected');

      // A tunnel cut mid-handshake: a network fault (retried) on both paths; s_client's words differ from Node's.
      const cutFile = await startCuttingRelay(open.port);
      const cutTpm = await startCuttingRelay(open.port);
      const file = await failure(base(route(`http://127.0.0.1:${cutFile.port}`)));
      const tpm = await failure({ ...base(route(`http://127.0.0.1:${cutTpm.port}`)), clientId: THING_NAME, certPem, keyPem: '', tpmKey: { handle: HANDLE, tcti: setup.tpm.tcti, propquery: await agentPropquery(setup.tpm) } });
      expect([typeof file === 'string' ? file : file.fault, typeof tpm === 'string' ? tpm : tpm.fault]).toEqual(['network', 'network']);
    } finally {
      process.env.DBUS_SESSION_BUS_ADDRESS = bus;
    }
  });
});
