// key.store tpm against a real software TPM (swtpm behind tpm2-abrmd) and the emulator: the key is
// made in the TPM, the CSR and the TLS handshake of the verifying connection are signed there, no
// private key file ever exists, and the Greengrass drop-in names the handle. `provision --force`
// keeps the committed key usable until the new identity is committed, kill -9 included.
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { execa } from 'execa';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse, stringify } from 'yaml';
import { classify } from '../../src/agent/errors.ts';
import { openSession } from '../../src/agent/mqtt-session.ts';
import { openTpmTls } from '../../src/agent/tpm/openssl-tls.ts';
import { providerVersion, tlsDigestProblem, tlsPropquery } from '../../src/agent/tpm/tools.ts';
import type { EmulatorOptions } from '../../src/emulator/index.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { agentPropquery, softwareTpmAvailable, startSoftwareTpm, type SoftwareTpm } from '../helpers/swtpm.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { expectNoSecrets, makeDevice, THING_NAME, waitForStderr, type Device } from './device.ts';

const HANDLE = 0x81000002;
const PENDING = 0x81000003;
const uri = (handle: number) => `handle:0x${handle.toString(16)}`;

interface State {
  certificateId: string;
  certificatePath: string;
  privateKeyPath: string;
}

const readState = async (device: Device): Promise<State> => JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

async function tpmDevice(
  config: Record<string, unknown> = {},
  emulator: Partial<EmulatorOptions> = {},
): Promise<{ t: TestEmulator; tpm: SoftwareTpm; device: Device; emulatorLog: string[] }> {
  const emulatorLog: string[] = [];
  const t = await startTestEmulator({ log: (line) => emulatorLog.push(line), ...emulator });
  const tpm = await startSoftwareTpm();
  const device = await makeDevice(t, { ...config, key: { store: 'tpm', tpmTcti: tpm.tcti, ...(config.key as object | undefined) } });
  Object.assign(device.env, tpm.env);
  return { t, tpm, device, emulatorLog };
}

const run = (device: Device, args = ['provision'], env: Record<string, string> = {}) => device.run(args, { ...device.env, ...env });

/** The certificate state.json names is for the TPM key at the handle it names. */
async function expectTpmIdentity(device: Device, tpm: SoftwareTpm, handle: number): Promise<State> {
  const state = await readState(device);
  expect(state.privateKeyPath).toBe(uri(handle));
  const cert = new X509Certificate(await readFile(state.certificatePath, 'utf8'));
  const inTpm = createPublicKey(await tpm.publicKeyPem(handle)).export({ type: 'spki', format: 'der' });
  expect(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(inTpm)).toBe(true);
  return state;
}

/** No file of the device holds a private key. */
async function expectNoKeyFiles(device: Device): Promise<void> {
  for (const file of await filesUnder(device.dir)) {
    if (file === device.configFile) continue;
    const text = await readFile(file, 'utf8').catch(() => '');
    // The claim key lives outside the device dir (the emulator's project dir).
    expect(text, file).not.toMatch(/PRIVATE KEY/);
  }
}

describe.skipIf(!softwareTpmAvailable())('key.store tpm (swtpm)', { timeout: 90_000 }, () => {
  it('makes the key in the TPM, signs the CSR and the verifying handshake there, and hands the handle to Greengrass', async () => {
    const { t, tpm, device, emulatorLog } = await tpmDevice();
    const result = await run(device);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain(`made a ec-p256 key in the TPM at ${uri(HANDLE)}`);
    expectNoSecrets(result.stderr);

    const state = await expectTpmIdentity(device, tpm, HANDLE);
    expect(await tpm.persistentHandles()).toEqual([HANDLE]);
    // The emulator accepted the thing's connection with the new certificate: TLS proved the TPM holds its key.
    expect(emulatorLog).toContain(`connect: accepted client ${THING_NAME} certificate ${state.certificateId}`);
    expect((await t.emulator.control.describeCertificate(state.certificateId))?.status).toBe('ACTIVE');

    // Greengrass lite's form (docs/TPM_SUPPORT.md): privateKeyPath: "handle:0x81000002".
    const dropIn = await readFile(device.dropIn, 'utf8');
    expect(parse(dropIn).system.privateKeyPath).toBe(uri(HANDLE));
    expect(dropIn).toContain(`privateKeyPath: "${uri(HANDLE)}"`);
    await expectNoKeyFiles(device);
    expect((await readdir(device.out)).sort()).toEqual(['device-id', 'device.cert.pem', 'root-ca.pem', 'state.json'].sort());

    // A rerun: provisioned (the handle counts as the key), nothing minted.
    const rerun = await run(device);
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stderr).toContain('already provisioned');
    const status = JSON.parse((await run(device, ['status', '--json'])).stdout);
    expect(status.provisioned).toBe(true);

    // A TPM that does not answer is a fault, never "not provisioned" (which would invite a new identity).
    const config = parse(await readFile(device.configFile, 'utf8'));
    await writeFile(device.configFile, stringify({ ...config, key: { ...config.key, tpmTcti: 'swtpm:host=127.0.0.1,port=9' } }));
    const silent = await run(device, ['status', '--json']);
    expect(silent.exitCode).toBe(78);
    expect(silent.stdout).not.toContain('"provisioned": false');
    expect(silent.stderr).toMatch(/tpm2_getcap/);
  });

  it('reuses a key already at key.tpmHandle (made at manufacturing) and never replaces it without --force', async () => {
    const { tpm, device } = await tpmDevice();
    const dir = path.dirname(device.configFile);
    await tpm.tool('tpm2_createprimary', ['-Q', '-C', 'o', '-G', 'ecc256:aes128cfb', '-c', path.join(dir, 'p.ctx')]);
    await tpm.tool('tpm2_create', ['-Q', '-C', path.join(dir, 'p.ctx'), '-G', 'ecc256', '-c', path.join(dir, 'k.ctx')]);
    await tpm.tool('tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', path.join(dir, 'k.ctx'), '0x81000002']);
    const before = await tpm.publicKeyPem(HANDLE);

    const result = await run(device);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain(`using the existing TPM key at ${uri(HANDLE)}`);
    await expectTpmIdentity(device, tpm, HANDLE);
    expect(await tpm.publicKeyPem(HANDLE)).toBe(before);
  });

  it('never evicts an object it did not make at its second handle (a storage root key, say)', async () => {
    const { tpm, device } = await tpmDevice();
    const ctx = path.join(path.dirname(device.configFile), 'srk.ctx');
    await tpm.tool('tpm2_createprimary', ['-Q', '-C', 'o', '-G', 'ecc256:aes128cfb', '-c', ctx]);
    await tpm.tool('tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', ctx, '0x81000003']);
    const srk = await tpm.publicKeyPem(PENDING);

    // Provisioned at the first handle; tidying the second one only warns.
    const first = await run(device);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toContain('the persistent object at 0x81000003 is not a key fp-agent made');
    // --force would make its new key there: it stops instead, and the identity stays.
    const forced = await run(device, ['provision', '--force']);
    expect(forced.exitCode).toBe(78);
    expect(forced.stderr).toContain('the persistent object at 0x81000003 is not a key fp-agent made');
    expect(await tpm.publicKeyPem(PENDING)).toBe(srk);
    await expectTpmIdentity(device, tpm, HANDLE);
  });

  it('--force makes the new key at the other handle, switches at the commit and evicts the old key after it', async () => {
    const { t, tpm, device } = await tpmDevice();
    expect((await run(device)).exitCode).toBe(0);
    const old = await expectTpmIdentity(device, tpm, HANDLE);

    const forced = await run(device, ['provision', '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    const next = await expectTpmIdentity(device, tpm, PENDING);
    expect(next.certificateId).not.toBe(old.certificateId);
    expect(await tpm.persistentHandles()).toEqual([PENDING]);
    expect(parse(await readFile(device.dropIn, 'utf8')).system.privateKeyPath).toBe(uri(PENDING));
    expect(forced.stderr).toContain(`evicted the TPM key at ${uri(HANDLE)}`);

    // And back: the handles take turns.
    expect((await run(device, ['provision', '--force'])).exitCode).toBe(0);
    await expectTpmIdentity(device, tpm, HANDLE);
    expect(await tpm.persistentHandles()).toEqual([HANDLE]);
    expect((await t.emulator.control.listCertificates()).length).toBeGreaterThanOrEqual(4);
  });

  it('does the same with an RSA-2048 key (RSA-PSS in the TLS 1.3 handshake)', async () => {
    const { tpm, device, emulatorLog } = await tpmDevice({ key: { algorithm: 'rsa-2048' } });
    const result = await run(device);
    expect(result.exitCode, result.stderr).toBe(0);
    const state = await expectTpmIdentity(device, tpm, HANDLE);
    expect(new X509Certificate(await readFile(state.certificatePath, 'utf8')).publicKey.asymmetricKeyType).toBe('rsa');
    expect(emulatorLog).toContain(`connect: accepted client ${THING_NAME} certificate ${state.certificateId}`);
  });

  it('speaks TLS 1.2 to a server that offers only TLS 1.2 (RSA key, RSA server certificate)', async () => {
    // The pair tpm2-openssl 1.1.1 (Debian 12) supports over TLS 1.2; >= 1.2.0 (meta-tpm) supports the EC ones too (openssl-tls.ts).
    const { tpm, device } = await tpmDevice({ key: { algorithm: 'rsa-2048' } });
    expect((await run(device)).exitCode).toBe(0);
    const state = await readState(device);
    const certPem = await readFile(state.certificatePath, 'utf8');
    const propquery = await agentPropquery(tpm);
    const dir = await tmpDir('fp-tls12-');
    const file = (name: string) => path.join(dir, name);
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-subj', '/CN=tls12 test CA', '-days', '1']);
    await execa('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost']);
    await writeFile(file('ext.cnf'), 'subjectAltName=DNS:localhost\n');
    await execa('openssl', ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.pem'), '-days', '1', '-extfile', file('ext.cnf')]);
    const seen = new Promise<{ protocol: string | null; peer: string; line: string }>((resolve, reject) => {
      const server = createTlsServer(
        {
          cert: readFileSync(file('server.pem')),
          key: readFileSync(file('server.key')),
          requestCert: true,
          // The client certificate is the emulator's; the handshake proves the TPM holds its key, checked below.
          rejectUnauthorized: false,
          minVersion: 'TLSv1.2',
          maxVersion: 'TLSv1.2',
        },
        (socket) => {
          socket.once('data', (data: Buffer) => {
            resolve({ protocol: socket.getProtocol(), peer: socket.getPeerX509Certificate()?.fingerprint256 ?? '', line: data.toString() });
            socket.end();
          });
        },
      );
      server.on('tlsClientError', reject);
      server.listen(0, '127.0.0.1', () => {
        onTestFinished(() => new Promise<void>((done) => server.close(() => done())));
        const { port } = server.address() as AddressInfo;
        void openTpmTls({ host: 'localhost', port, certPem, caPem: readFileSync(file('ca.pem'), 'utf8'), handle: HANDLE, tcti: tpm.tcti, propquery }).then((stream) => {
          onTestFinished(() => void stream.destroy());
          stream.on('error', reject);
          stream.write('hello over TLS 1.2');
        }, reject);
      });
    });
    const env = process.env.DBUS_SESSION_BUS_ADDRESS;
    process.env.DBUS_SESSION_BUS_ADDRESS = tpm.env.DBUS_SESSION_BUS_ADDRESS;
    try {
      expect(await seen).toEqual({ protocol: 'TLSv1.2', peer: new X509Certificate(certPem).fingerprint256, line: 'hello over TLS 1.2' });
    } finally {
      process.env.DBUS_SESSION_BUS_ADDRESS = env;
    }
  });

  it('connects by IP address too, and refuses a server its root CA does not vouch for (serverUntrusted)', async () => {
    // The thing connects again right after the agent's own check: not AWS's 1 CONNECT/s case.
    const { t, tpm, device } = await tpmDevice({}, { connectRateLimit: false });
    expect((await run(device)).exitCode).toBe(0);
    const state = await readState(device);
    const certPem = await readFile(state.certificatePath, 'utf8');
    const options = {
      host: '127.0.0.1',
      port: t.emulator.port,
      clientId: THING_NAME,
      certPem,
      keyPem: '',
      caPem: t.emulator.caPem,
      tpmKey: { handle: HANDLE, tcti: tpm.tcti, propquery: await agentPropquery(tpm) },
      timeoutMs: 10_000,
      deadline: Date.now() + 20_000,
      protocolVersion: 4 as const,
    };
    const env = process.env.DBUS_SESSION_BUS_ADDRESS;
    process.env.DBUS_SESSION_BUS_ADDRESS = tpm.env.DBUS_SESSION_BUS_ADDRESS;
    try {
      const session = await openSession(options);
      await session.close();
      // A root CA that did not sign the emulator's server certificate: the claim certificate's issuer is another one.
      const otherCa = await readFile(state.certificatePath, 'utf8');
      const refused = await openSession({ ...options, clientId: `${THING_NAME}-2`, caPem: otherCa }).then(() => undefined, (error: unknown) => error);
      expect(classify(refused).fault).toBe('serverUntrusted');
    } finally {
      process.env.DBUS_SESSION_BUS_ADDRESS = env;
    }
  });

  it.each(['verified', 'greengrass-written', 'committed'] as const)('--force killed at %s: the committed key still works, a rerun settles', async (step) => {
    const { tpm, device } = await tpmDevice();
    expect((await run(device)).exitCode).toBe(0);
    const old = await readState(device);

    const child = device.spawn(['provision', '--force'], { ...device.env, FP_AGENT_TEST_PAUSE_AT: step });
    await waitForStderr(child, `paused at ${step}`);
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');

    const afterCrash = await readState(device);
    const committed = step === 'committed';
    expect(afterCrash.certificateId === old.certificateId).toBe(!committed);
    // Both keys are still there: the old one until the commit's cleanup, which the kill cut off.
    expect(await tpm.persistentHandles()).toEqual([HANDLE, PENDING]);
    await expectTpmIdentity(device, tpm, committed ? PENDING : HANDLE);

    const rerun = await run(device);
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    expect(rerun.stderr).toContain('already provisioned');
    expect(await tpm.persistentHandles()).toEqual([committed ? PENDING : HANDLE]);
    const settled = await expectTpmIdentity(device, tpm, committed ? PENDING : HANDLE);
    expect(parse(await readFile(device.dropIn, 'utf8')).system.privateKeyPath).toBe(settled.privateKeyPath);
    await expectNoKeyFiles(device);
  });
});

describe('the tpm2 provider check (tools.ts)', () => {
  it('reads the version openssl list prints, and picks the property query by it', () => {
    expect(providerVersion('Providers:\n  tpm2\n    name: TPM 2.0 Provider\n    version: 1.1.1\n    status: active\n')).toBe('1.1.1');
    expect(providerVersion('Providers:\n  tpm2\n')).toBeUndefined();
    expect(tlsPropquery('1.1.1')).toBe('?provider=tpm2');
    expect(tlsPropquery('1.2.0')).toBe('?provider=default');
    expect(tlsPropquery('1.3.0')).toBe('?provider=default');
    expect(tlsPropquery('2.0.0')).toBe('?provider=default');
  });

  it('refuses tpm2-openssl before 1.2.0 through anything but tpm2-abrmd', () => {
    expect(tlsDigestProblem('1.1.1', 'device:/dev/tpmrm0')).toMatch(/^key\.store tpm: tpm2-openssl 1\.1\.1 hashes the TLS handshake inside the TPM/);
    expect(tlsDigestProblem('1.1.1', 'swtpm:port=2321')).toMatch(/run tpm2-abrmd and set key\.tpmTcti: tabrmd/);
    expect(tlsDigestProblem('1.1.1', 'tabrmd')).toBeUndefined();
    expect(tlsDigestProblem('1.1.1', 'tabrmd:bus_type=session')).toBeUndefined();
    expect(tlsDigestProblem('1.2.0', 'device:/dev/tpmrm0')).toBeUndefined();
    expect(tlsDigestProblem(undefined, 'device:/dev/tpmrm0')).toBeUndefined();
  });
});
