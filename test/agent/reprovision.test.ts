// `provision --force` keeps the old, working identity (files, drop-in, state) until the new one is
// complete and committed: kill -9 at every checkpoint, and a --force that cannot reach the endpoint.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHECKPOINTS } from '../../src/agent/provision-steps.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { makeDevice, waitForStderr, type Device } from './device.ts';

const COMMITTED_AT = CHECKPOINTS.indexOf('committed');

interface Identity {
  certificateId: string;
  certificatePath: string;
  privateKeyPath: string;
  rootCaPath: string;
}

const readState = async (device: Device): Promise<Identity> => JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));

async function expectPair(certPath: string, keyPath: string): Promise<X509Certificate> {
  const cert = new X509Certificate(await readFile(certPath, 'utf8'));
  expect(cert.checkPrivateKey(createPrivateKey(await readFile(keyPath, 'utf8')))).toBe(true);
  return cert;
}

/** state.json names a complete, matching, ACTIVE identity; the drop-in names an existing matching pair; config.d holds only it. */
async function expectConsistent(device: Device, t: TestEmulator): Promise<{ state: Identity; dropIn: Record<string, string> }> {
  const state = await readState(device);
  await expectPair(state.certificatePath, state.privateKeyPath);
  await readFile(state.rootCaPath);
  expect((await t.emulator.control.describeCertificate(state.certificateId))?.status).toBe('ACTIVE');
  expect(await readdir(path.dirname(device.dropIn))).toEqual([path.basename(device.dropIn)]);
  const { system } = parse(await readFile(device.dropIn, 'utf8'));
  await expectPair(system.certificateFilePath, system.privateKeyPath);
  await readFile(system.rootCaPath);
  return { state, dropIn: system };
}

async function provisionedDevice(t: TestEmulator): Promise<{ device: Device; old: Identity }> {
  const device = await makeDevice(t);
  expect((await device.run()).exitCode).toBe(0);
  return { device, old: await readState(device) };
}

describe('fp-agent provision --force survives kill -9', () => {
  it.each(CHECKPOINTS.map((step, i) => [step, i] as const))('at %s', async (step, index) => {
    const t = await startTestEmulator();
    const { device, old } = await provisionedDevice(t);
    const child = device.spawn(['provision', '--force'], { FP_AGENT_TEST_PAUSE_AT: step });
    await waitForStderr(child, `paused at ${step}`);
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');

    // Whatever the kill point: provisioned, consistent, and the old identity until the commit.
    const afterCrash = await expectConsistent(device, t);
    const status = JSON.parse((await device.run(['status', '--json'])).stdout);
    expect(status.provisioned).toBe(true);
    if (index < COMMITTED_AT) expect(afterCrash.state).toEqual(old);
    else expect(afterCrash.state.certificateId).not.toBe(old.certificateId);

    // A rerun without --force mints nothing; it makes the drop-in say what state.json says and
    // removes what no identity uses.
    const certificates = (await t.emulator.control.listCertificates()).length;
    const dropInStale = afterCrash.dropIn.certificateFilePath !== afterCrash.state.certificatePath;
    // Only a kill between the drop-in and the commit leaves the drop-in ahead of state.json.
    expect(dropInStale).toBe(step === 'greengrass-written');
    const restarts = (await device.restarts()).length;
    const rerun = await device.run();
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stderr).toContain('already provisioned');
    expect(rerun.stderr).not.toContain('connecting');
    expect((await t.emulator.control.listCertificates()).length).toBe(certificates);
    // A drop-in that was rewritten is only read by Greengrass after a restart.
    expect((await device.restarts()).length).toBe(restarts + (dropInStale ? 1 : 0));
    const settled = await expectConsistent(device, t);
    expect(settled.state).toEqual(afterCrash.state);
    expect(settled.dropIn).toMatchObject({
      certificateFilePath: settled.state.certificatePath,
      privateKeyPath: settled.state.privateKeyPath,
      rootCaPath: settled.state.rootCaPath,
    });
    const left = (await readdir(device.out)).sort();
    const named = [settled.state.certificatePath, settled.state.privateKeyPath, settled.state.rootCaPath].map((f) => path.basename(f));
    expect(left).toEqual(['device-id', 'state.json', ...named].sort());
  });

  it('switches completely when it finishes, and again on a second --force', async () => {
    const t = await startTestEmulator();
    const { device, old } = await provisionedDevice(t);
    const first = await device.run(['provision', '--force']);
    expect(first.exitCode).toBe(0);
    expect(first.stderr).toContain(`the previous certificate ${old.certificateId} is no longer used by this device`);
    const { state: second } = await expectConsistent(device, t);
    expect(second.certificateId).not.toBe(old.certificateId);
    // The new identity could not take the names in use: it carries its certificate id.
    expect(path.basename(second.certificatePath)).toBe(`device.${second.certificateId.slice(0, 12)}.cert.pem`);
    expect((await device.run(['provision', '--force'])).exitCode).toBe(0);
    const { state: third } = await expectConsistent(device, t);
    expect(path.basename(third.certificatePath)).toBe('device.cert.pem');
    expect((await readdir(device.out)).sort()).toEqual(['device-id', 'device.cert.pem', 'device.key.pem', 'root-ca.pem', 'state.json']);
  });
});

describe('fp-agent provision --force is failure-safe', () => {
  it('keeps the old identity when the endpoint is unreachable; the next run mints nothing', async () => {
    const t = await startTestEmulator();
    const { device, old } = await provisionedDevice(t);
    const dropInBefore = await readFile(device.dropIn, 'utf8');
    const certificates = (await t.emulator.control.listCertificates()).length;
    // Nothing listens on port 1: every attempt fails until the deadline.
    const unreachable = await makeDevice(t, {
      outputDir: device.out,
      port: 1,
      greengrass: { configDropIn: device.dropIn },
      retry: { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 1_000, attemptTimeoutMs: 500 },
    });
    const forced = await unreachable.run(['provision', '--force']);
    expect(forced.exitCode).toBe(75);
    expect(forced.stderr).not.toMatch(/discarded/);

    expect(await readState(device)).toEqual(old);
    expect(await readFile(device.dropIn, 'utf8')).toBe(dropInBefore);
    const status = await device.run(['status']);
    expect(status.stdout).toMatch(/^provisioned:\s+yes$/m);
    expect(status.stdout).toContain(old.certificateId);

    const next = await device.run();
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toContain('already provisioned');
    expect((await t.emulator.control.listCertificates()).length).toBe(certificates);
    await expectConsistent(device, t);
  });
});
