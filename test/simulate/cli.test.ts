// fp-yocto simulate as a user runs it: the built CLI on a project made by `init --local`, whose
// background emulator each test stops when it ends.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectPaths } from '../../src/cloud/project.ts';
import { connectEmulator } from '../../src/emulator/index.ts';
import { runCli } from '../helpers/run.ts';
import { freePort, stopEmulatorAtEnd } from '../helpers/project.ts';
import { tmpDir } from '../helpers/tmp.ts';

async function cli(args: string[]): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  const r = await runCli(args);
  return { exitCode: r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

describe('fp-yocto simulate', () => {
  it('provisions N devices against the project of init --local, then fails when the hook denies', { timeout: 120_000 }, async () => {
    const dir = path.join(await tmpDir(), 'project');
    const paths = projectPaths(dir);
    stopEmulatorAtEnd(paths.emulatorDir);
    const init = await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(await freePort())]);
    expect(init.exitCode).toBe(0);

    const sim = await cli(['simulate', '-n', '10', '--dir', dir]);
    expect(sim.stderr).toBe('');
    expect(sim.exitCode).toBe(0);
    expect(sim.stdout).toMatch(/simulating 10 device\(s\), 10 at a time, against the local emulator/);
    expect(sim.stdout).toMatch(/^simulate: 10\/10 {2}10 ok/m);
    expect(sim.stdout).toMatch(/^succeeded +10$/m);
    expect(sim.stdout).toMatch(/^rejected +0$/m);
    expect(sim.stdout).toMatch(/^latency +p50 .+ p95 .+ p99 /m);
    expect(sim.stdout).toMatch(/^throughput +[\d.]+ provisions\/s/m);
    expect(sim.stdout).not.toContain('PRIVATE KEY');
    const prefix = /ids ([0-9a-f]{6})000000/.exec(sim.stdout)![1]!;

    const control = (await connectEmulator(paths.emulatorDir))!;
    const things = (await control.listThings()).map((t) => t.thingName).filter((n) => n.startsWith(`fp-yocto-${prefix}`));
    expect(new Set(things).size).toBe(10);
    // Device files are removed without --keep.
    expect(await readdir(path.join(paths.stateDir, 'simulate'))).toEqual([]);

    await control.setFaults({ denyHook: true });
    const denied = await cli(['simulate', '-n', '3', '-c', '2', '--dir', dir]);
    expect(denied.exitCode).toBe(1);
    expect(denied.stdout).toMatch(/^rejected +3$/m);
    expect(denied.stdout).toContain('3 x provisioning denied by the pre-provisioning hook');
    expect(denied.stderr).toContain('error: 3 of 3 device(s) did not provision');
  });

  it('teaches with --help and refuses a missing or bad count', async () => {
    const help = await cli(['simulate', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('fp-yocto simulate -n 1000 --concurrency 50');
    expect(help.stdout).toContain('--concurrency');

    const dir = await tmpDir();
    const missing = await cli(['simulate', '--dir', dir]);
    expect(missing.exitCode).toBe(64);
    expect(missing.stderr).toContain('--count (-n) is required');
    const bad = await cli(['simulate', '-n', 'ten', '--dir', dir]);
    expect(bad.exitCode).toBe(64);
    const noProject = await cli(['simulate', '-n', '1', '--dir', dir]);
    expect(noProject.exitCode).toBe(1);
    expect(noProject.stderr).toContain('no fp-yocto project here');
  });
});
