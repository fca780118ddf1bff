// The harness's software TPM (src/qemu/swtpm.ts) on the host, without a VM: the guest's swtpm is
// started and stopped by the harness (ready when its control socket exists, gone when stopped),
// and a persistent key made in a TPM state directory is read back by a later swtpm on the same
// directory, which is what the tpm scenario relies on after the guest is off.
import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readTpmState, startGuestTpm } from '../../src/qemu/swtpm.ts';
import { commandWorks } from '../helpers/commands.ts';

const available = ['swtpm', 'tpm2_getcap', 'tpm2_readpublic'].every((c) => commandWorks('which', [c]));
if (!available && process.env.CI) throw new Error('swtpm and tpm2-tools are required when CI is set (see .ci/run)');

describe.skipIf(!available)('the QEMU harness\'s swtpm', () => {
  const dirs: string[] = [];
  const tmp = async () => {
    const d = await mkdtemp(join(tmpdir(), 'fp-qemu-swtpm-'));
    dirs.push(d);
    return d;
  };
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('serves the guest TPM on its control socket until stopped', async () => {
    const dir = await tmp();
    const tpm = await startGuestTpm(dir);
    expect(existsSync(tpm.socket)).toBe(true);
    expect(() => process.kill(tpm.pid, 0)).not.toThrow();
    await tpm.stop();
    // Stopped and reaped: the process is gone.
    expect(() => process.kill(tpm.pid, 0)).toThrow(/ESRCH/);
  });

  it('reads back a persistent key from the state directory with a second swtpm', async () => {
    const dir = await tmp();
    const handle = 0x81000002;
    const made = await readTpmState(dir, async (tpm) => {
      expect(tpm.persistentHandles).toEqual([]);
      const ctx = join(dir, 'primary.ctx');
      await tpm.tool('tpm2_createprimary', ['-Q', '-C', 'o', '-G', 'ecc', '-c', ctx]);
      await tpm.tool('tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', ctx, `0x${handle.toString(16)}`]);
      return tpm.publicKeyPem(handle);
    });
    const later = await readTpmState(dir, async (tpm) => ({ handles: tpm.persistentHandles, pem: await tpm.publicKeyPem(handle) }));
    expect(later.handles).toEqual([handle]);
    expect(createPublicKey(later.pem).export({ type: 'spki', format: 'der' })).toEqual(createPublicKey(made).export({ type: 'spki', format: 'der' }));
    // A handle with nothing at it is one error naming the command.
    await expect(readTpmState(dir, (tpm) => tpm.publicKeyPem(0x81000003))).rejects.toThrow(/tpm2_readpublic -Q -c 0x81000003 .*failed/);
  });
});
