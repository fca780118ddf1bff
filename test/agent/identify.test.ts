// `fp-agent identify` against fake sysfs/procfs trees (FP_AGENT_SYSROOT), through the real bundle.
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.ts';
import { agent, makeSysroot, writeConfig, type FakeSystem } from './fixtures.ts';

const ETH0 = { name: 'eth0', address: '00:1B:21:3A:4F:5E' };
const WLAN0 = { name: 'wlan0', address: '00:1c:bf:aa:bb:cc' };

async function identify(system: FakeSystem, config: Record<string, unknown> = {}) {
  const dir = await tmpDir('fp-agent-id-');
  const sysroot = await makeSysroot(path.join(dir, 'root'), system);
  const configFile = await writeConfig(dir, config);
  const result = await agent(['identify', '--config', configFile], { FP_AGENT_SYSROOT: sysroot });
  const stored = await readFile(path.join(dir, 'out', 'device-id'), 'utf8').catch(() => undefined);
  return { ...result, stored, dir };
}

describe('fp-agent identify', () => {
  it('takes the MAC of the interface holding the default route, and stores it', async () => {
    const r = await identify({ nics: [ETH0, WLAN0], defaultRoute: 'wlan0' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('001cbfaabbcc');
    expect(r.stored).toBe('001cbfaabbcc\n');
    expect(r.stderr).toContain('MAC of wlan0, the default route');
    expect((await stat(path.join(r.dir, 'out', 'device-id'))).mode & 0o777).toBe(0o644);
  });

  it('skips virtual interfaces and random or locally administered MACs', async () => {
    const r = await identify(
      {
        nics: [
          { name: 'docker0', address: '00:11:22:33:44:55', physical: false },
          { name: 'eth0', address: '00:1b:21:00:00:01', addrAssignType: 1 },
          { name: 'eth1', address: '02:1b:21:00:00:02' },
          { name: 'eth2', address: '00:1b:21:00:00:03' },
          { name: 'lo', address: '00:00:00:00:00:00', physical: false, type: 772 },
        ],
        defaultRoute: 'docker0',
      },
      { retry: { initialDelayMs: 10, maxDelayMs: 50, deadlineMs: 300, attemptTimeoutMs: 200 } },
    );
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('001b21000003');
    expect(r.stderr).toContain('MAC of eth2, the first physical NIC');
  });

  it('waits, bounded, for a link, then falls back to the first physical NIC', async () => {
    const r = await identify({ nics: [WLAN0, ETH0] }, { retry: { initialDelayMs: 10, maxDelayMs: 50, deadlineMs: 400, attemptTimeoutMs: 200 } });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain('waiting for a network link');
    expect(r.stdout).toBe('001b213a4f5e'); // eth0 sorts before wlan0
  });

  it('exits 75 with one line when there is no usable id before the deadline', async () => {
    const r = await identify(
      { nics: [{ name: 'veth1', address: '00:11:22:33:44:55', physical: false }] },
      { retry: { initialDelayMs: 10, maxDelayMs: 50, deadlineMs: 300, attemptTimeoutMs: 200 } },
    );
    expect(r.exitCode).toBe(75);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^fp-agent: gave up .*no usable device id/);
    expect(r.stored).toBeUndefined();
  });

  it('uses a configured interface and format', async () => {
    const r = await identify({ nics: [ETH0, WLAN0], defaultRoute: 'wlan0' }, { deviceId: { source: 'mac', interface: 'eth0', format: 'colon' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('00:1b:21:3a:4f:5e');
  });

  it('reads /etc/machine-id', async () => {
    const r = await identify({ machineId: '4C4C4544004B3610804AB4C04F4D3232\n' }, { deviceId: { source: 'machine-id' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('4c4c4544004b3610804ab4c04f4d3232');
  });

  it('reads the NUL-terminated device-tree serial', async () => {
    const r = await identify({ deviceTreeSerial: '10000000abcdef01\0' }, { deviceId: { source: 'device-tree-serial' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('10000000abcdef01');
  });

  it('reads the DMI serial and refuses firmware placeholders', async () => {
    const ok = await identify({ dmiSerial: 'PF3ABCDE\n' }, { deviceId: { source: 'dmi-serial' } });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toBe('pf3abcde');
    const placeholder = await identify({ dmiSerial: 'To Be Filled By O.E.M.\n' }, { deviceId: { source: 'dmi-serial' } });
    expect(placeholder.exitCode).toBe(78);
    expect(placeholder.stderr.trim()).toMatch(/^fp-agent: deviceId.source dmi-serial: \S*product_serial: holds no usable device id: "/);
  });

  it('reads a configured file, and names it when it is missing', async () => {
    const dir = await tmpDir('fp-agent-id-');
    const idFile = path.join(dir, 'serial.txt');
    await writeFile(idFile, 'Board-42\n');
    const r = await identify({}, { deviceId: { source: 'file', path: idFile } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('board-42');
    const missing = await identify({}, { deviceId: { source: 'file', path: path.join(dir, 'nope') } });
    expect(missing.exitCode).toBe(78);
    expect(missing.stderr.trim()).toBe(`fp-agent: deviceId.path ${path.join(dir, 'nope')}: does not exist`);
  });
});
