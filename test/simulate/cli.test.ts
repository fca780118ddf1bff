// fp-yocto simulate as a user runs it: the built CLI on a project made by `init --local`, whose
// background emulator each test stops when it ends.
import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { projectPaths } from '../../src/cloud/project.ts';
import { connectEmulator } from '../../src/emulator/index.ts';
import { CLI, runCli } from '../helpers/run.ts';
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

    // From dist/: the worker threads run dist/simulate-worker.mjs.
    const sim = await cli(['simulate', '-n', '10', '--workers', '2', '--dir', dir]);
    expect(sim.stderr).toBe('');
    expect(sim.exitCode).toBe(0);
    expect(sim.stdout).toMatch(/simulating 10 device\(s\), 10 at a time, against the local emulator/);
    expect(sim.stdout).toMatch(/; 2 worker thread\(s\)$/m);
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
    // Device files (in memory without --keep) are removed, and none went to the project.
    expect((await readdir('/dev/shm')).filter((name) => name.endsWith(`-${prefix}`))).toEqual([]);
    expect(await readdir(path.join(paths.stateDir, 'simulate')).catch(() => [])).toEqual([]);

    // With --keep they go to the project and stay.
    const kept = await cli(['simulate', '-n', '2', '--keep', '--dir', dir]);
    expect(kept.exitCode).toBe(0);
    // Without --workers, the local emulator of the project keeps a core of its own.
    expect(kept.stdout).toMatch(new RegExp(`; ${Math.max(1, Math.min(2, os.availableParallelism() - 1))} worker thread\\(s\\)$`, 'm'));
    const keptDir = /^device files kept in (.+)$/m.exec(kept.stdout)?.[1];
    expect(path.dirname(keptDir!)).toBe(path.join(paths.stateDir, 'simulate'));
    expect(await readdir(keptDir!)).toHaveLength(2);

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
    expect(help.stdout).toMatch(/--workers.*one per core/);

    const dir = await tmpDir();
    const missing = await cli(['simulate', '--dir', dir]);
    expect(missing.exitCode).toBe(64);
    expect(missing.stderr).toContain('--count (-n) is required');
    const bad = await cli(['simulate', '-n', 'ten', '--dir', dir]);
    expect(bad.exitCode).toBe(64);
    const badWorkers = await cli(['simulate', '-n', '5', '--workers', '0', '--dir', dir]);
    expect(badWorkers.exitCode).toBe(64);
    expect(badWorkers.stderr).toContain('--workers: expected a whole number from 1 to 256, got "0"');
    const noProject = await cli(['simulate', '-n', '1', '--dir', dir]);
    expect(noProject.exitCode).toBe(1);
    expect(noProject.stderr).toContain('no fp-yocto project here');
  });

  it('on Ctrl-C starts no more devices, lets the running ones finish and prints the summary', { timeout: 120_000 }, async () => {
    const dir = path.join(await tmpDir(), 'project');
    stopEmulatorAtEnd(projectPaths(dir).emulatorDir);
    const init = await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(await freePort())]);
    expect(init.exitCode).toBe(0);

    const child = execa('node', [CLI, 'simulate', '-n', '400', '-c', '4', '--workers', '2', '--dir', dir], { reject: false, env: { NO_COLOR: '1' } });
    // Not a terminal: a progress line at every tenth; Ctrl-C at the first one (40 of 400 done).
    for await (const line of createInterface({ input: child.stdout! })) {
      if (line.startsWith('simulate: ')) {
        child.kill('SIGINT');
        break;
      }
    }
    const r = await child;
    expect(r.exitCode).toBe(1);
    expect(String(r.stderr)).toContain('stopping: no new devices; waiting for the running ones');
    const stdout = String(r.stdout);
    const done = Number(/^devices +(\d+) of 400$/m.exec(stdout)?.[1]);
    // The devices running at the signal (at most 4) finished, and all of them provisioned.
    expect(done).toBeGreaterThanOrEqual(40);
    expect(done).toBeLessThan(400);
    expect(stdout).toMatch(new RegExp(`^succeeded +${done}$`, 'm'));
    expect(stdout).toMatch(new RegExp(`^not started +${400 - done} \\(interrupted\\)$`, 'm'));
    expect(String(r.stderr)).toContain(`error: ${400 - done} of 400 device(s) did not provision`);
  });
});
