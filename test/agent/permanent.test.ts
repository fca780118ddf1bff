// Permanent faults: exit 78 at once with one line naming the cause; nothing is committed.
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLAIM_POLICY, claimPolicyDocument, startTestEmulator } from '../helpers/emulator.ts';
import { makeDevice, type Device } from './device.ts';

async function expectNothingCommitted(device: Device) {
  const files = await readdir(device.out).catch(() => [] as string[]);
  expect(files.filter((f) => f !== 'device-id')).toEqual([]);
}

const oneLine = (stderr: string) => {
  const lines = stderr.trim().split('\n');
  return lines.at(-1)!;
};

describe('fp-agent provision stops on permanent faults', () => {
  it('names a missing claim certificate', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { claimCertPath: '/nonexistent/claim.cert.pem' });
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(r.stderr.trim()).toBe('fp-agent: claimCertPath /nonexistent/claim.cert.pem: does not exist');
  });

  it('refuses a claim key others can read', async () => {
    const t = await startTestEmulator();
    await chmod(t.claim.keyPath, 0o644);
    const device = await makeDevice(t);
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(r.stderr.trim()).toBe(`fp-agent: claimKeyPath ${t.claim.keyPath}: has mode 0644; expected 0600 or stricter`);
  });

  it('refuses a server the configured root CA does not vouch for', async () => {
    const t = await startTestEmulator();
    // The claim certificate is no CA: the emulator's server certificate cannot chain to it.
    const device = await makeDevice(t, { rootCaPath: t.claim.certPath });
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(oneLine(r.stderr)).toMatch(/^fp-agent: cannot verify the server: [A-Z_]+ \(check rootCaPath and iotDataEndpoint\)$/);
    await expectNothingCommitted(device);
  });

  it('reports a denial by the pre-provisioning hook (a device id that is not a MAC)', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { deviceId: { source: 'machine-id' } });
    await mkdir(path.join(device.env.FP_AGENT_SYSROOT!, 'etc'), { recursive: true });
    await writeFile(path.join(device.env.FP_AGENT_SYSROOT!, 'etc/machine-id'), `${'ab'.repeat(16)}\n`);
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(oneLine(r.stderr)).toBe(
      'fp-agent: provisioning denied by the pre-provisioning hook (403 ACCESS_DENIED: the pre-provisioning hook denied provisioning)',
    );
    expect(r.stderr).not.toContain('attempt 1 failed');
    await expectNothingCommitted(device);
  });

  it('reports a denial injected by the emulator', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    await t.emulator.control.setFaults({ denyHook: true });
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(oneLine(r.stderr)).toMatch(/^fp-agent: provisioning denied by the pre-provisioning hook \(403 ACCESS_DENIED/);
    await expectNothingCommitted(device);
  });

  it('names an unknown template (404)', async () => {
    const t = await startTestEmulator();
    // A claim policy that allows every template, so the request reaches the template lookup.
    await t.emulator.control.updatePolicy(CLAIM_POLICY, claimPolicyDocument('*'));
    const device = await makeDevice(t, { templateName: 'no-such-template' });
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(oneLine(r.stderr)).toBe(
      'fp-agent: RegisterThing rejected: 404 ResourceNotFound: provisioning template no-such-template does not exist or is disabled',
    );
    await expectNothingCommitted(device);
  });

  it('blames the claim policy when every subscription to the template topics is cut off', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { templateName: 'other-template' });
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(oneLine(r.stderr)).toMatch(/other-template/);
    await expectNothingCommitted(device);
  });
});
