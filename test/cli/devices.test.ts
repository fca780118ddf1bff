// fp-yocto devices as an operator runs it: the built CLI against a --local project (a real
// emulator in the background), the allow-list imported by init, then managed, listed, exported.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectPaths } from '../../src/cloud/project.ts';
import { runCli } from '../helpers/run.ts';
import { freePort, stopEmulatorAtEnd } from '../helpers/project.ts';
import { tmpDir } from '../helpers/tmp.ts';

async function cli(args: string[]): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  const r = await runCli(args, { env: { NO_COLOR: '1' } });
  return { exitCode: r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

describe('fp-yocto devices --local', () => {
  it('init --allow-list imports a CSV; import, allow, revoke, reset, list and export work on the same table', { timeout: 120_000 }, async () => {
    const dir = path.join(await tmpDir(), 'project');
    stopEmulatorAtEnd(projectPaths(dir).emulatorDir);
    await writeFile(path.join(path.dirname(dir), 'first.csv'), 'deviceId,model\naa:bb:cc:dd:ee:01,x1\naa:bb:cc:dd:ee:02,x2\n');
    const init = await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(await freePort()), '--allow-list', path.join(path.dirname(dir), 'first.csv'), '--thing-attributes', 'model']);
    expect(init.stderr).toBe('');
    expect(init.stdout).toContain('+ DeviceTable (AWS::DynamoDB::Table)');
    expect(init.stdout).toContain('device table fp-yocto-devices: 2 added, 0 already there');

    const more = path.join(path.dirname(dir), 'more.csv');
    await writeFile(more, ['# second batch', 'deviceId,model', 'AA-BB-CC-DD-EE-02,x2', 'aabbccddee03,x3', 'not-a-mac,x', 'aabbccddee04', 'aabbccddee03,x3'].join('\n'));
    const imported = await cli(['devices', 'import', more, '--dir', dir, '--local']);
    expect(imported.stdout).toContain(`importing 3 device id(s) from ${more} into fp-yocto-devices`);
    expect(imported.stdout).toContain('device table fp-yocto-devices: 2 added, 1 already there, 1 duplicate line(s) skipped');
    expect(imported.stdout).toContain('1 invalid line(s)');
    expect(imported.stdout).toContain('line 5: "not-a-mac": expected a MAC address');
    expect(imported.exitCode).toBe(65);

    expect((await cli(['devices', 'allow', 'aa:bb:cc:dd:ee:04', '00:00:00:00:00:05', '--dir', dir])).stdout).toContain('1 added, 1 already there');
    const revoked = await cli(['devices', 'revoke', 'aabbccddee01', '00:11:22:33:44:55', '--dir', dir]);
    expect(revoked.stdout).toContain('1 revoked, 1 not on the allow-list: 001122334455');
    const reset = await cli(['devices', 'reset', 'aabbccddee02', '--dir', dir]);
    expect(reset.stdout).toContain('aabbccddee02: may provision again (it had not provisioned)');

    const listed = await cli(['devices', 'list', '--json', '--dir', dir]);
    const records = listed.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(records.map((r) => [r.deviceId, r.state, r.attributes]).sort()).toEqual([
      ['aabbccddee01', 'revoked', { model: 'x1' }],
      ['aabbccddee02', 'allowed', { model: 'x2' }],
      ['aabbccddee03', 'allowed', { model: 'x3' }],
      ['aabbccddee04', 'allowed', {}],
      ['000000000005', 'allowed', {}],
    ].sort());
    expect((await cli(['devices', 'list', '--filter', 'revoked', '--dir', dir])).stdout).toBe('aabbccddee01  revoked  model=x1');

    const out = path.join(path.dirname(dir), 'export.csv');
    expect((await cli(['devices', 'export', '--output', out, '--dir', dir])).stdout).toContain(`wrote 4 device id(s) to ${out}`);
    expect(await readFile(out, 'utf8')).toBe('deviceId,model\n000000000005,\naabbccddee02,x2\naabbccddee03,x3\naabbccddee04,\n');

    const status = await cli(['status', '--dir', dir]);
    expect(status.stdout).toContain('devices    allow-list on, 4 id(s) on it; 0 provisioned; one identity per id on (table fp-yocto-devices)');

    const bad = await cli(['devices', 'allow', 'zz', '--dir', dir]);
    expect(bad.stderr.trim()).toBe('error: "zz": not a device id of this project (its devices use mac ids)');
    expect(bad.exitCode).toBe(64);
    expect((await cli(['destroy', '--yes', '--dir', dir])).stdout).toContain('- device table fp-yocto-devices');
  });
});
