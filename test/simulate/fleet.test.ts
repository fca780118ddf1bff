// runFleet against a real emulator: many real agent flows on worker threads, with faults injected.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFleet } from '../../src/simulate/fleet.ts';
import { startTestEmulator, THING_NAME_PREFIX } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { baseConfig, thingsOfRun } from './fixtures.ts';

describe('runFleet', () => {
  it('provisions every device through throttling, retrying, with distinct things, and cleans up', { timeout: 120_000 }, async () => {
    const t = await startTestEmulator();
    await t.emulator.control.setFaults({ throttle: 12 });
    const runDir = path.join(await tmpDir('fp-sim-'), 'run');
    const seen: number[] = [];
    const run = await runFleet({ count: 20, concurrency: 5, base: baseConfig(t), runDir, onProgress: (tally) => seen.push(tally.done) });

    expect(run.summary).toMatchObject({ total: 20, done: 20, success: 20, rejected: 0, failed: 0, errors: [] });
    expect(run.summary.retried).toBeGreaterThan(0);
    expect(run.summary.retries).toBeGreaterThanOrEqual(12);
    expect(run.summary.latencyMs!.p50).toBeGreaterThan(0);
    expect(run.summary.latencyMs!.p99).toBeGreaterThanOrEqual(run.summary.latencyMs!.p50);
    expect(run.summary.provisionsPerSecond).toBeGreaterThan(0);
    expect(run.notStarted).toBe(0);
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));

    const things = await thingsOfRun(t, run.idPrefix);
    expect(new Set(things).size).toBe(20);
    // Device files are gone unless kept.
    await expect(readdir(runDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('counts hook denials as rejected, not retried', { timeout: 60_000 }, async () => {
    const t = await startTestEmulator();
    await t.emulator.control.setFaults({ denyHook: true });
    const runDir = path.join(await tmpDir('fp-sim-'), 'run');
    const run = await runFleet({ count: 6, concurrency: 3, base: baseConfig(t), runDir });

    expect(run.summary).toMatchObject({ total: 6, done: 6, success: 0, rejected: 6, failed: 0, retried: 0, retries: 0 });
    expect(run.summary.latencyMs).toBeUndefined();
    expect(run.summary.errors).toHaveLength(1);
    expect(run.summary.errors[0]).toMatchObject({ count: 6, message: expect.stringContaining('denied by the pre-provisioning hook') });
    expect(await thingsOfRun(t, run.idPrefix)).toEqual([]);
  });

  it('keeps each device\'s files with keep, under its id', { timeout: 60_000 }, async () => {
    const t = await startTestEmulator();
    const runDir = path.join(await tmpDir('fp-sim-'), 'run');
    const run = await runFleet({ count: 3, concurrency: 3, base: baseConfig(t), runDir, keep: true, idPrefix: '0a0b0c' });

    expect(run.summary.success).toBe(3);
    expect((await readdir(runDir)).sort()).toEqual(['0a0b0c000000', '0a0b0c000001', '0a0b0c000002']);
    const state = JSON.parse(await readFile(path.join(runDir, '0a0b0c000001', 'out', 'state.json'), 'utf8'));
    expect(state).toMatchObject({ thingName: `${THING_NAME_PREFIX}0a0b0c000001` });
  });

  it('starts no more devices once aborted', { timeout: 60_000 }, async () => {
    const t = await startTestEmulator();
    const runDir = path.join(await tmpDir('fp-sim-'), 'run');
    const abort = new AbortController();
    const run = await runFleet({
      count: 50,
      concurrency: 2,
      base: baseConfig(t),
      runDir,
      signal: abort.signal,
      onProgress: (tally) => tally.done === 2 && abort.abort(),
    });
    // The two running when the abort came may still finish; nothing new starts.
    expect(run.summary.done).toBeLessThanOrEqual(3);
    expect(run.notStarted).toBe(50 - run.summary.done);
    expect(run.summary.success).toBe(run.summary.done);
  });
});
