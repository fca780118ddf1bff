// kill -9 at every checkpoint of `provision` (FP_AGENT_TEST_PAUSE_AT makes the agent stop there):
// the device is then either not provisioned or completely provisioned, and a rerun finishes.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKPOINTS } from '../../src/agent/provision-steps.ts';
import { startTestEmulator } from '../helpers/emulator.ts';
import { makeDevice, THING_NAME, waitForStderr } from './device.ts';

const COMMITTED_AT = CHECKPOINTS.indexOf('committed');

describe('fp-agent provision survives kill -9', () => {
  it.each(CHECKPOINTS.map((step, i) => [step, i] as const))('at %s', async (step, index) => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { removeClaimKeyAfterSuccess: true });
    const child = device.spawn(['provision'], { FP_AGENT_TEST_PAUSE_AT: step });
    await waitForStderr(child, `paused at ${step}`);
    if (step === 'key-written') {
      // The generated key is on disk before its CSR leaves the device, and never readable by others.
      expect((await stat(path.join(device.out, 'device.key.pem.pending'))).mode & 0o777).toBe(0o600);
    }
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');

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
  });
});
