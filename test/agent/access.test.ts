// Who may read the identity (issue 10): with Greengrass, its group reads key, certificate and root
// CA through a 0750 directory and nobody else can; standalone, root alone. Real chown (the tests
// run as root), a real group in the device's own /etc/group (FP_AGENT_SYSROOT), never the host's.
import { generateKeyPairSync } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { gidOf } from '../../src/agent/file-access.ts';
import { startTestEmulator } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { GG_GID, makeDevice, type Device } from './device.ts';

const ROOT_UID = process.getuid!();
const ROOT_GID = process.getgid!();

async function ownerAndMode(file: string) {
  const s = await stat(file);
  return { uid: s.uid, gid: s.gid, mode: s.mode & 0o777 };
}

async function identityFiles(device: Device) {
  const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
  return { key: state.privateKeyPath as string, cert: state.certificatePath as string, rootCa: state.rootCaPath as string };
}

describe('gidOf', () => {
  it('finds a group by exact name only', () => {
    const text = 'root:x:0:\nggcore2:x:10:\nggcore:x:991:ggcore\n#comment\n';
    expect(gidOf(text, 'ggcore')).toBe(991);
    expect(gidOf(text, 'ggcor')).toBeUndefined();
    expect(gidOf('', 'ggcore')).toBeUndefined();
  });
});

describe.skipIf(ROOT_UID !== 0)('identity ownership (as root)', () => {
  it('with Greengrass: dir root:ggcore 0750, key 0640, cert and CA 0644 for ggcore, state and device-id root 0644', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    // Left by an older agent or a do_install with other modes: corrected at the next run.
    await mkdir(device.out, { mode: 0o777 });
    await chmod(device.out, 0o777);
    const r = await device.run();
    expect(r.exitCode).toBe(0);

    const files = await identityFiles(device);
    expect(await ownerAndMode(device.out)).toEqual({ uid: ROOT_UID, gid: GG_GID, mode: 0o750 });
    expect(await ownerAndMode(files.key)).toEqual({ uid: ROOT_UID, gid: GG_GID, mode: 0o640 });
    expect(await ownerAndMode(files.cert)).toEqual({ uid: ROOT_UID, gid: GG_GID, mode: 0o644 });
    expect(await ownerAndMode(files.rootCa)).toEqual({ uid: ROOT_UID, gid: GG_GID, mode: 0o644 });
    expect(await ownerAndMode(path.join(device.out, 'state.json'))).toEqual({ uid: ROOT_UID, gid: ROOT_GID, mode: 0o644 });
    expect(await ownerAndMode(path.join(device.out, 'device-id'))).toEqual({ uid: ROOT_UID, gid: ROOT_GID, mode: 0o644 });
    expect(await ownerAndMode(device.dropIn)).toEqual({ uid: ROOT_UID, gid: ROOT_GID, mode: 0o644 });
    expect(await readdir(path.dirname(device.dropIn))).toEqual([path.basename(device.dropIn)]);
  });

  it('sets the directory at every run: a provisioned device whose directory was changed is corrected', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    expect((await device.run()).exitCode).toBe(0);
    await chmod(device.out, 0o755);
    const again = await device.run();
    expect(again.stderr).toContain('already provisioned');
    expect(await ownerAndMode(device.out)).toEqual({ uid: ROOT_UID, gid: GG_GID, mode: 0o750 });
  });

  it('standalone: everything root:root, directory 0700, key 0600', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { greengrass: { enabled: false } });
    await mkdir(device.out, { mode: 0o755 });
    await chmod(device.out, 0o755);
    expect((await device.run()).exitCode).toBe(0);
    const files = await identityFiles(device);
    expect(await ownerAndMode(device.out)).toEqual({ uid: ROOT_UID, gid: ROOT_GID, mode: 0o700 });
    expect(await ownerAndMode(files.key)).toEqual({ uid: ROOT_UID, gid: ROOT_GID, mode: 0o600 });
    expect(await ownerAndMode(files.cert)).toEqual({ uid: ROOT_UID, gid: ROOT_GID, mode: 0o644 });
  });

  it('identify alone prepares the directory the same way', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    const r = await device.run(['identify']);
    expect(r.exitCode).toBe(0);
    expect(await ownerAndMode(device.out)).toEqual({ uid: ROOT_UID, gid: GG_GID, mode: 0o750 });
    expect(await ownerAndMode(path.join(device.out, 'device-id'))).toEqual({ uid: ROOT_UID, gid: ROOT_GID, mode: 0o644 });
  });

  it('a Greengrass group missing from the device: exit 78 naming greengrass.group, before anything is minted', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { greengrass: { group: 'gg-nobody' } });
    const before = (await t.emulator.control.listCertificates()).length;
    const r = await device.run();
    expect(r.exitCode).toBe(78);
    expect(r.stderr.trim().split('\n')).toEqual([
      `fp-agent: greengrass.group: group "gg-nobody" does not exist on this device (not in ${path.join(device.env.FP_AGENT_SYSROOT!, 'etc/group')}); set greengrass.group to the group Greengrass lite runs as`,
    ]);
    expect((await t.emulator.control.listCertificates()).length).toBe(before);
    expect((await device.run(['identify'])).exitCode).toBe(78);
  });

  it('accepts a configured device key that the Greengrass group may read (0640 root:ggcore)', async () => {
    const t = await startTestEmulator();
    const keyPath = path.join(await tmpDir('fp-agent-se-'), 'se.key.pem');
    await writeFile(keyPath, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o640 });
    await chown(keyPath, 0, GG_GID);
    await chmod(keyPath, 0o640);
    const configured = await makeDevice(t, { key: { devicePrivateKeyPath: keyPath } });
    const r = await configured.run();
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toContain('warning');
  });
});
