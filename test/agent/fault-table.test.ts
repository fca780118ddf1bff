// Walks the fault table (src/agent/faults.ts): every kind has at least one case here (the type
// checker refuses a kind without one), each case is the real bundle against the emulator or a
// real file system, and each ends with the kind's exit code and ONE line naming the cause.
// Configuration faults found by the local checks end before any connection: nothing is minted.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { parse } from 'yaml';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { classify } from '../../src/agent/errors.ts';
import { exitCodeOf, FAULTS, isTransient, type FaultKind } from '../../src/agent/faults.ts';
import { bounded } from '../../src/agent/local-files.ts';
import { CLAIM_POLICY, claimPolicyDocument, startTestEmulator, templateBody, type TestEmulator } from '../helpers/emulator.ts';
import { commandWorks } from '../helpers/commands.ts';
import { AGENT, ROOT } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hasTinyproxy, startTinyproxy } from '../helpers/tinyproxy.ts';
import { softwareTpmAvailable, startSoftwareTpm, tpm2OpensslPackageVersion } from '../helpers/swtpm.ts';
import { agent, makeSysroot, NO_PROXY_ENV, writeConfig } from './fixtures.ts';
import { expectNoSecrets, makeDevice, waitForStderr, type Device } from './device.ts';

interface Outcome {
  exitCode: number;
  stderr: string;
}

interface Case {
  title: string;
  /** The one line the run ends with (after "fp-agent: "). */
  line: RegExp;
  run: () => Promise<Outcome & { t?: TestEmulator }>;
  /** A local check: the run must end before connecting, and mint nothing. */
  local?: boolean;
}

/** Faults no emulator produces on purpose: the classification of the error itself. */
interface UnitCase {
  title: string;
  error: () => unknown;
}

const FAST = { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 1_500, attemptTimeoutMs: 700 };

async function device(config: Record<string, unknown> = {}, setup?: (t: TestEmulator) => Promise<void>) {
  const t = await startTestEmulator();
  await setup?.(t);
  return { t, device: await makeDevice(t, config) };
}

async function provisionWith(config: Record<string, unknown> = {}, setup?: (t: TestEmulator) => Promise<void>, env: Record<string, string> = {}) {
  const { t, device: d } = await device(config, setup);
  return { t, ...(await d.run(['provision'], env)) };
}

/** A claim key file with other contents, 0600. */
async function withClaimKey(contents: string | Buffer, config: Record<string, unknown> = {}) {
  const { t, device: d } = await device(config);
  const keyPath = path.join(d.dir, 'bad-claim.key.pem');
  await writeFile(keyPath, contents, { mode: 0o600 });
  const configFile = await writeConfig(d.dir, { ...(await currentConfig(d)), claimKeyPath: keyPath });
  return { t, ...(await d.run(['provision', '--config', configFile])) };
}

const currentConfig = async (d: Device) => parse(await readFile(d.configFile, 'utf8')) as Record<string, unknown>;

const otherKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const CASES: Record<Exclude<FaultKind, 'unexpected' | 'bug'>, Case[]> = {
  usage: [{ title: 'an unknown option', line: /^Unknown option '--bogus'.*\(see fp-agent --help\)$/, run: () => agent(['status', '--bogus']) }],
  configFile: [
    {
      title: 'a NUL byte in deviceId.interface',
      line: /: deviceId\.interface: expected text without NUL bytes$/,
      local: true,
      run: async () => {
        const { t, device: d } = await device();
        const text = (await readFile(d.configFile, 'utf8')) + 'deviceId:\n  interface: "eth\\0"\n';
        await writeFile(d.configFile, text);
        return { t, ...(await d.run()) };
      },
    },
    { title: 'a missing config file', line: /^\/nonexistent\/config\.yaml: cannot read the config file \(ENOENT\)$/, run: () => agent(['provision', '--config', '/nonexistent/config.yaml']) },
  ],
  claimFiles: [
    {
      title: 'a claim key that is not the claim certificate’s',
      line: /^claimKeyPath \S+: is not the key of the claim certificate \(claimCertPath \S+\)$/,
      local: true,
      run: () => withClaimKey(otherKey()),
    },
    { title: 'a garbage PEM claim key', line: /^claimKeyPath \S+: is not a PEM private key$/, local: true, run: () => withClaimKey('-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n') },
    { title: 'a binary claim key', line: /^claimKeyPath \S+: is binary; expected PEM text$/, local: true, run: () => withClaimKey(Buffer.concat([Buffer.from([0x30, 0x82, 0, 0]), randomBytes(64)])) },
    { title: 'an empty claim key', line: /^claimKeyPath \S+: is empty$/, local: true, run: () => withClaimKey('\n') },
    { title: 'a missing claim certificate', line: /^claimCertPath \/nonexistent\/claim\.cert\.pem: does not exist$/, local: true, run: () => provisionWith({ claimCertPath: '/nonexistent/claim.cert.pem' }) },
  ],
  deviceKey: [
    {
      title: 'a configured device key others may read',
      line: /^key\.devicePrivateKeyPath \S+: has mode 0644; expected 0600 or stricter, or 0640 with group ggcore$/,
      local: true,
      run: async () => {
        const dir = await tmpDir('fp-agent-key-');
        const keyPath = path.join(dir, 'device.key.pem');
        await writeFile(keyPath, otherKey(), { mode: 0o644 });
        return provisionWith({ key: { devicePrivateKeyPath: keyPath } });
      },
    },
  ],
  tpmMissing: [
    {
      title: 'key.store tpm on a device without a TPM',
      line: /^key\.store is "tpm" but this device has no TPM at \/nonexistent\/tpmrm0 \(key\.tpmTcti device:\/nonexistent\/tpmrm0\): .*set key\.store: file$/,
      local: true,
      run: () => provisionWith({ key: { store: 'tpm', tpmTcti: 'device:/nonexistent/tpmrm0' } }),
    },
    {
      // /dev/null passes for the TPM's character device; OPENSSL_MODULES hides tpm2.so from OpenSSL.
      title: "key.store tpm without OpenSSL's tpm2 provider",
      line: /^openssl list: OpenSSL's tpm2 provider \(tpm2\.so\) is not installed; the image needs tpm2-openssl$/,
      local: true,
      run: () => provisionWith({ key: { store: 'tpm', tpmTcti: 'device:/dev/null' } }, undefined, { OPENSSL_MODULES: '/nonexistent' }),
    },
  ],
  tpm: [
    {
      title: 'key.store tpm with a TPM that does not answer',
      // The first TPM step: loading OpenSSL's tpm2 provider, before anything is minted.
      line: /^openssl list: cannot reach the TPM through key\.tpmTcti swtpm:host=127\.0\.0\.1,port=9 \(Failed to connect .*Connection refused\)$/,
      local: true,
      // Port 9 (discard) on loopback: nothing listens there.
      run: () => provisionWith({ key: { store: 'tpm', tpmTcti: 'swtpm:host=127.0.0.1,port=9' } }),
    },
  ],
  tpmProvider: [
    {
      // Debian 12's tpm2-openssl is 1.1.1; the TCTI is swtpm's own socket, no tpm2-abrmd.
      title: 'key.store tpm with tpm2-openssl 1.1.x and no tpm2-abrmd',
      line: /^key\.store tpm: tpm2-openssl 1\.1\.\d+ hashes the TLS handshake inside the TPM, .* through key\.tpmTcti swtpm:host=127\.0\.0\.1,port=\d+; run tpm2-abrmd and set key\.tpmTcti: tabrmd, or install tpm2-openssl 1\.2\.0 or later$/,
      local: true,
      run: async () => provisionWith({ key: { store: 'tpm', tpmTcti: (await startSoftwareTpm({ broker: false })).tcti } }),
    },
  ],
  deviceIdSource: [
    {
      title: 'deviceId.path a directory',
      line: /^deviceId\.path \S+: is a directory; expected a file holding the device id$/,
      local: true,
      run: async () => provisionWith({ deviceId: { source: 'file', path: await tmpDir('fp-agent-id-') } }),
    },
  ],
  outputDir: [
    {
      title: 'outputDir an existing file',
      line: /^outputDir \S+: is not a directory$/,
      local: true,
      run: async () => {
        const file = path.join(await tmpDir('fp-agent-out-'), 'file');
        await writeFile(file, 'x');
        return provisionWith({ outputDir: file });
      },
    },
    { title: 'outputDir under /proc', line: /^outputDir \/proc\/fp-agent-test\/out: is on proc, which cannot hold files; expected a directory on a disk$/, local: true, run: () => provisionWith({ outputDir: '/proc/fp-agent-test/out' }) },
  ],
  greengrassDropIn: [
    {
      title: 'greengrass.configDropIn a directory',
      line: /^greengrass\.configDropIn \S+: is a directory; expected the path of a file$/,
      local: true,
      run: async () => {
        const dir = path.join(await tmpDir('fp-agent-gg-'), 'config.d', 'zz.yaml');
        await mkdir(dir, { recursive: true });
        return provisionWith({ greengrass: { configDropIn: dir } });
      },
    },
  ],
  deviceClientConfig: [
    {
      title: 'a Device Client config that is not JSON',
      line: /^deviceClient\.configFile \S+: is not JSON; expected the AWS IoT Device Client's JSON config \(or no file\)$/,
      local: true,
      run: async () => {
        const file = path.join(await tmpDir('fp-agent-dc-'), 'aws-iot-device-client.conf');
        await writeFile(file, '{ "endpoint": ');
        return provisionWith({ handoff: 'device-client', greengrass: { enabled: false }, deviceClient: { configFile: file } });
      },
    },
  ],
  greengrassGroup: [{ title: 'a group the device lacks', line: /^greengrass\.group: group "nogroup-fp" does not exist on this device/, local: true, run: () => provisionWith({ greengrass: { group: 'nogroup-fp' } }) }],
  serverUntrusted: [
    { title: 'a root CA that does not vouch for the server', line: /^cannot verify the server: [A-Z_]+ \(check rootCaPath and iotDataEndpoint\)$/, run: () => provisionWith({}, async (t) => void (await writeFile(t.claim.rootCaPath, (await readFile(t.claim.certPath, 'utf8'))))) },
  ],
  notAuthorized: [
    {
      title: 'an inactive claim certificate (CONNACK 5)',
      line: /^the server refused the connection \(CONNACK 5: not authorized\)$/,
      run: () => provisionWith({}, (t) => t.emulator.control.updateCertificate(t.claim.certificateId, 'INACTIVE')),
    },
  ],
  claimPolicy: [{ title: 'a template the claim policy does not cover', line: /does the claim policy allow template other-template\?$/, run: () => provisionWith({ templateName: 'other-template' }) }],
  hookDenied: [
    { title: 'a denial by the hook', line: /^provisioning denied by the pre-provisioning hook \(403 ACCESS_DENIED/, run: () => provisionWith({}, (t) => t.emulator.control.setFaults({ denyHook: true })) },
    { title: 'templateParams without DeviceId', line: /^templateParams\.DeviceId is missing, and the pre-provisioning hook denied the device \(403 [A-Z_]+\); the fp-yocto hook needs DeviceId: "\$\{deviceId\}"$/, run: () => provisionWith({ templateParams: { Serial: '${deviceId}' } }) },
  ],
  rejected: [
    {
      title: 'an unknown template (404)',
      line: /^RegisterThing rejected: 404 ResourceNotFound: provisioning template no-such-template does not exist or is disabled$/,
      run: () => provisionWith({ templateName: 'no-such-template' }, (t) => t.emulator.control.updatePolicy(CLAIM_POLICY, claimPolicyDocument('*'))),
    },
  ],
  badReply: [
    {
      title: 'a template that makes no thing',
      line: /^RegisterThing accepted without a thing name: does the template create an AWS::IoT::Thing\?$/,
      run: () =>
        provisionWith({ templateName: 'fp-no-thing' }, async (t) => {
          const body = JSON.parse(templateBody());
          delete body.Resources.thing;
          delete body.Parameters.ThingNamePrefix;
          body.DeviceConfiguration = {};
          await t.emulator.control.createProvisioningTemplate({ templateName: 'fp-no-thing', templateBody: JSON.stringify(body), enabled: true, provisioningRoleArn: 'arn:aws:iam::000000000000:role/x' });
          await t.emulator.control.updatePolicy(CLAIM_POLICY, claimPolicyDocument('*'));
        }),
    },
  ],
  proxyAuth: [
    {
      title: 'credentials the proxy refuses (tinyproxy BasicAuth)',
      line: /^the proxy http:\/\/127\.0\.0\.1:\d+ \(proxy\.url\) refused the credentials \(40[17] [^)]*\): check the proxy user and password of proxy\.url$/,
      run: async () => {
        const proxy = await startTinyproxy({ basicAuth: ['device', 'right-password'] });
        return provisionWith({ proxy: { url: proxy.url, username: 'device', password: 'wrong-password' } });
      },
    },
  ],
  proxyRefused: [
    {
      title: 'a proxy whose rules refuse CONNECT to the port (tinyproxy ConnectPort)',
      line: /^the proxy http:\/\/127\.0\.0\.1:\d+ \(proxy\.url\) refused to connect to localhost:\d+ \(403 Access violation\): its rules must allow CONNECT to port \d+$/,
      run: async () => provisionWith({ proxy: { url: (await startTinyproxy({ connectPorts: [443] })).url } }),
    },
  ],
  network: [{ title: 'nothing listening', line: /^gave up after \d+ attempts in [\d.]+ s: ECONNREFUSED/, run: () => provisionWith({ port: 1, retry: FAST }) }],
  timeout: [{ title: 'replies slower than attemptTimeoutMs', line: /^gave up after \d+ attempts in [\d.]+ s: CreateCertificateFromCsr: no answer within \d+ ms$/, run: () => provisionWith({ retry: FAST }, (t) => t.emulator.control.setFaults({ delayMs: 10_000 })) }],
  throttled: [{ title: 'throttling to the deadline', line: /^gave up after \d+ attempts in [\d.]+ s: CreateCertificateFromCsr rejected: 429 ThrottlingException/, run: () => provisionWith({ retry: FAST }, (t) => t.emulator.control.setFaults({ throttle: 1_000 })) }],
  clock: [{ title: 'a clock before the claim certificate', line: /^gave up after \d+ attempts in [\d.]+ s: time not synced: the clock \(2001-01-01T00:00:00.000Z\)/, run: () => provisionWith({ retry: FAST }, undefined, { FP_AGENT_TEST_NOW: '2001-01-01T00:00:00Z' }) }],
  noDeviceId: [
    {
      title: 'no network interface',
      line: /^gave up after \d+ attempts in [\d.]+ s: no usable device id: no physical network interface with a universal MAC address$/,
      run: async () => {
        const dir = await tmpDir('fp-agent-nonic-');
        const sysroot = await makeSysroot(path.join(dir, 'root'), {});
        return agent(['identify', '--config', await writeConfig(dir, { retry: { ...FAST, deadlineMs: 600 } })], { FP_AGENT_SYSROOT: sysroot });
      },
    },
  ],
  filesystem: [
    {
      title: 'a full disk at the commit (a 16 KB tmpfs in a private mount namespace)',
      line: /^ENOSPC: no space left on device/,
      run: async () => {
        const { t, device: d } = await device({ greengrass: { enabled: false } });
        await mkdir(d.out);
        // Private mounts: the tmpfs is seen by this agent only, and goes with it.
        const r = await runThrough(['unshare', '--mount', 'sh', '-c', `mount -t tmpfs -o size=16k tmpfs '${d.out}' && exec "$0" "$@"`], d, ['provision']);
        // The disk filled after the local checks passed: at the commit, not before.
        expect(r.stderr).toContain('registered thing');
        return { t, ...r };
      },
    },
  ],
  deadline: [{ title: 'transient faults to the deadline', line: /^gave up after \d+ attempts in [\d.]+ s: /, run: () => provisionWith({ port: 1, retry: FAST }) }],
};

const UNIT_CASES: Record<'unexpected' | 'bug', UnitCase[]> = {
  unexpected: [{ title: 'an error nobody knows', error: () => new Error('the flux capacitor') }],
  bug: [{ title: 'a TypeError', error: () => new TypeError('x is undefined') }],
};

const canUnshare = process.getuid?.() === 0 && commandWorks('unshare', ['--mount', 'true']);

describe('the fault table', () => {
  it('has a case for every kind, and only for kinds it lists', () => {
    expect(Object.keys({ ...CASES, ...UNIT_CASES }).sort()).toEqual(Object.keys(FAULTS).sort());
  });

  const e2e = Object.entries(CASES).flatMap(([kind, cases]) => cases.map((c) => [kind as FaultKind, c.title, c] as const));
  it.each(e2e)('%s: %s', async (kind, _title, c) => {
    if (kind === 'filesystem' && !canUnshare) return;
    if (kind.startsWith('proxy') && !hasTinyproxy) return;
    if (kind === 'tpmProvider' && !(softwareTpmAvailable() && /^1\.[01]\./.test(tpm2OpensslPackageVersion() ?? ''))) return;
    const r = await c.run();
    const lines = r.stderr.trim().split('\n');
    const last = lines.at(-1)!;
    // Transient kinds end as "gave up ..." (75) once the deadline passes; the rest at once.
    expect(r.exitCode, r.stderr).toBe(isTransient(kind) ? 75 : exitCodeOf(kind));
    expect(last.replace(/^fp-agent: /, ''), r.stderr).toMatch(c.line);
    expectNoSecrets(r.stderr);
    if (c.local) {
      expect(r.stderr).not.toContain('connecting');
      const certificates = await r.t!.emulator.control.listCertificates();
      expect(certificates.map((x) => x.certificateId)).toEqual([r.t!.claim.certificateId]);
    }
  });

  const units = Object.entries(UNIT_CASES).flatMap(([kind, cases]) => cases.map((c) => [kind as FaultKind, c.title, c] as const));
  it.each(units)('%s: %s', (kind, _title, c) => {
    const classified = classify(c.error());
    expect(classified.fault).toBe(kind);
    expect(classified.exitCode).toBe(exitCodeOf(kind));
  });

  it('is listed in docs/agent.md, kind by kind with its exit code', async () => {
    const doc = await readFile(path.join(ROOT, 'docs', 'agent.md'), 'utf8');
    for (const kind of Object.keys(FAULTS) as FaultKind[]) expect(doc).toContain(`| \`${kind}\` | ${exitCodeOf(kind)} |`);
  });

  it('bounds a filesystem step that never ends', async () => {
    const never = new Promise<never>(() => undefined);
    await expect(bounded(never, 50, () => new Error('outputDir /x: the filesystem did not answer'))).rejects.toThrow('did not answer');
  });
});

describe('local details', () => {
  it('gives directories their final mode whatever the umask (000 here)', async () => {
    const t = await startTestEmulator();
    const d = await makeDevice(t, {
      outputDir: path.join(await tmpDir('fp-agent-umask-'), 'var', 'lib', 'fp'),
    });
    const config = await currentConfig(d);
    const out = config.outputDir as string;
    const r = await runThrough(['sh', '-c', 'umask 000; exec "$0" "$@"'], d, ['provision']);
    expect(r.exitCode, r.stderr).toBe(0);
    const mode = async (p: string) => (await stat(p)).mode & 0o777;
    expect(await mode(out)).toBe(0o750);
    expect(await mode(path.dirname(out))).toBe(0o755);
    expect(await mode(path.dirname(path.dirname(out)))).toBe(0o755);
    expect(await mode(path.dirname(d.dropIn))).toBe(0o755);
    expect(await mode(path.dirname(path.dirname(d.dropIn)))).toBe(0o755);
  });

  it('ends a run whose step hangs a little after retry.deadlineMs, with exit 75 and one line', async () => {
    const t = await startTestEmulator();
    const d = await makeDevice(t, { retry: { ...FAST, deadlineMs: 1_000 } });
    // A step that never ends, as a hung mount would: the agent stops at a checkpoint forever.
    const r = await d.run(['provision'], { FP_AGENT_TEST_PAUSE_AT: 'key-written' });
    expect(r.exitCode).toBe(75);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('fp-agent: gave up: the run did not end within retry.deadlineMs (1000 ms) + 5 s');
  });

  it("still gives up on time when its own file never opens (a FIFO at state.json): the agent's file calls keep off the event loop", async () => {
    const t = await startTestEmulator();
    const d = await makeDevice(t, { retry: { ...FAST, deadlineMs: 1_000 } });
    const out = (await currentConfig(d)).outputDir as string;
    await mkdir(out, { recursive: true, mode: 0o700 });
    // Opening a FIFO for reading waits for a writer, for ever: a synchronous read would stop the
    // event loop, and the watchdog's timer with it (src/shared/file-calls.ts).
    await execa('mkfifo', [path.join(out, 'state.json')]);
    const child = d.spawn(['provision']);
    await waitForStderr(child, 'fp-agent: gave up: the run did not end within retry.deadlineMs (1000 ms) + 5 s');
    // Node 20's process.exit then waits for the thread-pool thread stuck in open(2) (libuv joins
    // its pool at exit): that the process does not end by itself is a known gap, not this test's.
    child.kill('SIGKILL');
    await child;
  });

  it('warns in one line naming the key about an unknown YAML tag, and reads the value untagged', async () => {
    const dir = await tmpDir('fp-agent-tag-');
    const file = await writeConfig(dir);
    await writeFile(file, `${await readFile(file, 'utf8')}port: !custom 8883\n`);
    const r = await agent(['status', '--config', file]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual([`fp-agent: warning: ${file}: port: unknown tag !custom, read as if untagged`]);
  });
});

/** Runs the device's agent through a wrapper command (`sh -c` for a umask, `unshare` for a mount). */
async function runThrough(wrapper: string[], d: Device, args: string[]): Promise<Outcome> {
  const [command, ...rest] = wrapper;
  const r = await execa(command!, [...rest, AGENT, ...args, '--config', d.configFile], { reject: false, env: { NO_COLOR: '1', ...NO_PROXY_ENV, ...d.env } });
  return { exitCode: r.exitCode ?? -1, stderr: String(r.stderr) };
}
