// kill -9 at every checkpoint of `provision` (FP_AGENT_TEST_PAUSE_AT makes the agent stop there):
// the device is then either not provisioned or completely provisioned, and a rerun finishes.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHECKPOINTS } from '../../src/agent/provision-steps.ts';
import { startTestEmulator } from '../helpers/emulator.ts';
import { GG_GID, makeDevice, THING_NAME, waitForStderr, type Device } from './device.ts';

/**
 * Greengrass lite's ggconfigd loads every regular file of config.d: it must hold nothing but the
 * finished drop-in, and that must name a certificate and key that exist and belong together.
 */
async function expectCleanConfigD(device: Device): Promise<void> {
  const configD = path.dirname(device.dropIn);
  const names = await readdir(configD).catch(() => [] as string[]);
  expect(names.filter((n) => n !== path.basename(device.dropIn))).toEqual([]);
  if (names.length === 0) return;
  const { system } = parse(await readFile(device.dropIn, 'utf8'));
  const cert = new X509Certificate(await readFile(system.certificateFilePath, 'utf8'));
  expect(cert.checkPrivateKey(createPrivateKey(await readFile(system.privateKeyPath, 'utf8')))).toBe(true);
  await access(system.rootCaPath);
}

const COMMITTED_AT = CHECKPOINTS.indexOf('committed');

describe('fp-agent provision survives kill -9', () => {
  it.each(CHECKPOINTS.map((step, i) => [step, i] as const))('at %s', async (step, index) => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { removeClaimKeyAfterSuccess: true });
    const child = device.spawn(['provision'], { FP_AGENT_TEST_PAUSE_AT: step });
    await waitForStderr(child, `paused at ${step}`);
    if (step === 'key-written') {
      // The generated key is on disk before its CSR leaves the device, readable by the Greengrass group, never by others.
      const pending = await stat(path.join(device.out, 'device.key.pem.pending'));
      expect({ mode: pending.mode & 0o777, gid: pending.gid }).toEqual({ mode: 0o640, gid: GG_GID });
    }
    if (step === 'greengrass-staged') {
      // The drop-in's temp file is complete, staged beside config.d, not in it.
      const staged = await readdir(path.dirname(path.dirname(device.dropIn)));
      expect(staged).toContainEqual(expect.stringMatching(/^\.zz-fleetprovisioning\.yaml\.fp-tmp-/));
    }
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');
    await expectCleanConfigD(device);

    const afterCrash = JSON.parse((await device.run(['status', '--json'])).stdout);
    expect(afterCrash.provisioned).toBe(index >= COMMITTED_AT);
    // The claim key goes only after the commit, so a crash can never leave a device with neither.
    const claimKeyLeft = await access(t.claim.keyPath).then(() => true, () => false);
    expect(claimKeyLeft).toBe(true);

    const rerun = await device.run();
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stderr).toContain(index >= COMMITTED_AT ? 'already provisioned' : `provisioned as thing ${THING_NAME}`);

    const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
    expect(state.thingName).toBe(THING_NAME);
    const cert = new X509Certificate(await readFile(state.certificatePath, 'utf8'));
    expect(cert.checkPrivateKey(createPrivateKey(await readFile(state.privateKeyPath, 'utf8')))).toBe(true);
    expect((await t.emulator.control.describeCertificate(state.certificateId))?.status).toBe('ACTIVE');
    expect(await readdir(device.out)).not.toContainEqual(expect.stringMatching(/pending|fp-tmp/));
    await expect(access(t.claim.keyPath)).rejects.toThrow();
    await expectCleanConfigD(device);
    expect(await readdir(path.dirname(path.dirname(device.dropIn)))).toEqual(['config.d']);
  });

  it('removes temp files of the drop-in that an older agent left in config.d, and probe files of a killed run', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    const configD = path.dirname(device.dropIn);
    await mkdir(configD, { recursive: true });
    const stale = path.join(configD, '.zz-fleetprovisioning.yaml.fp-tmp-0123456789ab');
    await writeFile(stale, 'system: {thingName: half');
    // Not ours: never touched.
    await writeFile(path.join(configD, 'other.yaml'), 'x: 1\n');
    // What a kill during the local write tests leaves in the staging place and the output dir.
    await writeFile(path.join(path.dirname(configD), '.fp-probe.fp-tmp-0123456789ab'), 'probe\n');
    await mkdir(device.out);
    await writeFile(path.join(device.out, '.fp-probe.fp-tmp-0123456789ab'), 'probe\n');
    expect((await device.run()).exitCode).toBe(0);
    expect((await readdir(configD)).sort()).toEqual(['other.yaml', 'zz-fleetprovisioning.yaml']);
    expect(await readdir(path.dirname(configD))).toEqual(['config.d']);
    expect(await readdir(device.out)).not.toContainEqual(expect.stringContaining('fp-probe'));
  });
});
