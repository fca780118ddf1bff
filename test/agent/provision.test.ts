// `fp-agent provision` end to end: the real bundle, against the real emulator over mutual TLS.
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestEmulator } from '../helpers/emulator.ts';
import { DEVICE_ID, expectNoSecrets, GREENGRASS_RESTART_CALLS, makeDevice, THING_NAME, type Device } from './device.ts';

const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

/** Everything a complete provisioning leaves behind, checked against the emulator's registry. */
async function expectProvisioned(device: Device, t: Awaited<ReturnType<typeof startTestEmulator>>) {
  const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
  expect(state).toMatchObject({ version: 1, thingName: THING_NAME, deviceId: DEVICE_ID });
  const certPem = await readFile(state.certificatePath, 'utf8');
  const keyPem = await readFile(state.privateKeyPath, 'utf8');
  expect(new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
  // Greengrass enabled: its group reads the key (test/agent/access.test.ts has the owners).
  expect(await modeOf(state.privateKeyPath)).toBe(0o640);
  const cert = await t.emulator.control.describeCertificate(state.certificateId);
  expect(cert?.status).toBe('ACTIVE');
  const thing = await t.emulator.control.describeThing(THING_NAME);
  expect(thing?.principals).toContainEqual(expect.stringMatching(new RegExp(`cert/${state.certificateId}$`)));
  return state as { certificateId: string; certificatePath: string; privateKeyPath: string; rootCaPath: string };
}

describe('expectNoSecrets', () => {
  it('catches an ownership token but not certificate ids or paths', () => {
    const token = randomBytes(48).toString('base64');
    expect(() => expectNoSecrets(`fp-agent: registering with ${token}`)).toThrow(/token-like/);
    expect(() => expectNoSecrets(`fp-agent: certificate ${'ab12'.repeat(16)} issued to /tmp/x/out/device.cert.pem`)).not.toThrow();
  });
});

describe('fp-agent provision', () => {
  it('provisions: device key and CSR, thing named from the MAC, key for root and Greengrass only, state.json last, Greengrass restarted', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    const r = await device.run();
    expect(r.stderr).toContain(`provisioned as thing ${THING_NAME}`);
    expect(r.exitCode).toBe(0);

    const state = await expectProvisioned(device, t);
    expect(state.privateKeyPath).toBe(path.join(device.out, 'device.key.pem'));
    expect(await readFile(state.rootCaPath, 'utf8')).toBe(await readFile(t.claim.rootCaPath, 'utf8'));
    expect((await readdir(device.out)).sort()).toEqual(['device-id', 'device.cert.pem', 'device.key.pem', 'root-ca.pem', 'state.json']);

    // state.json is the commit point: nothing was written after it.
    const mtimes = await Promise.all(
      ['device.cert.pem', 'device.key.pem', 'root-ca.pem'].map(async (f) => (await stat(path.join(device.out, f))).mtimeMs),
    );
    const dropInTime = (await stat(device.dropIn)).mtimeMs;
    expect((await stat(path.join(device.out, 'state.json'))).mtimeMs).toBeGreaterThanOrEqual(Math.max(...mtimes, dropInTime));

    expect(parse(await readFile(device.dropIn, 'utf8'))).toEqual({
      system: {
        thingName: THING_NAME,
        certificateFilePath: state.certificatePath,
        privateKeyPath: state.privateKeyPath,
        rootCaPath: state.rootCaPath,
      },
      services: {
        'aws.greengrass.NucleusLite': {
          configuration: {
            awsRegion: 'us-east-1',
            iotCredEndpoint: 'creds.localhost',
            iotDataEndpoint: 'localhost',
            iotRoleAlias: 'fp-token-exchange',
          },
        },
      },
    });
    expect(await device.systemctlCalls()).toEqual(GREENGRASS_RESTART_CALLS);
    expectNoSecrets(`${r.stdout}${r.stderr}`);
  });

  it('exits 0 at once when already provisioned, and re-provisions with --force', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    expect((await device.run()).exitCode).toBe(0);
    const first = await expectProvisioned(device, t);

    const again = await device.run();
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toContain('already provisioned');
    expect(again.stderr).not.toContain('connecting');

    const forced = await device.run(['provision', '--force']);
    expect(forced.exitCode).toBe(0);
    const second = await expectProvisioned(device, t);
    expect(second.certificateId).not.toBe(first.certificateId);
    expect(await device.restarts()).toHaveLength(2);
  });
});
