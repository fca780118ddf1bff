// runFleet's worker threads against a real emulator: the summary does not depend on how many
// threads ran the devices, each thread loads the claim once, an abort lets the running devices
// finish, and a worker that fails ends the run with its devices counted, never a hang.
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimLoadCount } from '../../src/agent/claim.ts';
import { provision } from '../../src/agent/provision.ts';
import { defaultWorkers, runFleet, type FleetRun } from '../../src/simulate/fleet.ts';
import { loadSharedClaim } from '../../src/simulate/shared-claim.ts';
import { startTestEmulator, THING_NAME_PREFIX } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { baseConfig, thingsOfRun } from './fixtures.ts';

/** What must not depend on the number of worker threads (latency and wall time do). */
const countsOf = ({ summary: { latencyMs: _l, elapsedMs: _e, provisionsPerSecond: _p, retried: _r, ...counts } }: FleetRun) => counts;

describe('the default number of worker threads', () => {
  it('is one per core, one core left to a local emulator, never more than the devices at once', () => {
    const cores = os.availableParallelism();
    expect(defaultWorkers(1000, 1000)).toBe(cores);
    expect(defaultWorkers(1000, 1000, { localEmulator: true })).toBe(Math.max(1, cores - 1));
    expect(defaultWorkers(1, 1000)).toBe(1);
    expect(defaultWorkers(50, 1, { localEmulator: false })).toBe(1);
  });
});

describe('runFleet on worker threads', () => {
  it('gives the summary of one thread with two, loading the claim once per thread', { timeout: 180_000 }, async () => {
    const t = await startTestEmulator();
    const runs: FleetRun[] = [];
    for (const workers of [1, 2]) {
      // Every throttled request costs its device exactly one retry, wherever the device runs.
      await t.emulator.control.setFaults({ throttle: 5 });
      const seen: number[] = [];
      const run = await runFleet({ count: 12, concurrency: 4, workers, base: baseConfig(t), runDir: path.join(await tmpDir('fp-sim-'), 'run'), onProgress: (tally) => seen.push(tally.done) });
      expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(run.workers).toBe(workers);
      // 12 devices, yet the claim files were read once per thread.
      expect(run.claimLoads).toBe(workers);
      expect(run.workerErrors).toEqual([]);
      expect(new Set(await thingsOfRun(t, run.idPrefix)).size).toBe(12);
      const l = run.summary.latencyMs!;
      expect(0 < l.p50 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max).toBe(true);
      runs.push(run);
    }
    expect(countsOf(runs[1]!)).toEqual(countsOf(runs[0]!));
    expect(countsOf(runs[0]!)).toEqual({ total: 12, done: 12, success: 12, rejected: 0, failed: 0, retries: 5, errors: [] });

    // The causes of devices on different threads add up into one line.
    await t.emulator.control.setFaults({ denyHook: true });
    const denied = await runFleet({ count: 6, concurrency: 4, workers: 2, base: baseConfig(t), runDir: path.join(await tmpDir('fp-sim-'), 'run') });
    expect(denied.summary).toMatchObject({ done: 6, rejected: 6, errors: [{ count: 6, message: expect.stringContaining('denied by the pre-provisioning hook') }] });
  });

  it('lets the running devices finish after an abort, on every thread', { timeout: 120_000 }, async () => {
    const t = await startTestEmulator();
    const abort = new AbortController();
    const run = await runFleet({
      count: 60,
      concurrency: 4,
      workers: 2,
      base: baseConfig(t),
      runDir: path.join(await tmpDir('fp-sim-'), 'run'),
      signal: abort.signal,
      onProgress: (tally) => tally.done === 3 && abort.abort(),
    });
    // At most the 4 running when the abort came finish after it; nothing new starts.
    expect(run.summary.done).toBeGreaterThanOrEqual(3);
    expect(run.summary.done).toBeLessThanOrEqual(3 + 4);
    expect(run.summary.success).toBe(run.summary.done);
    expect(run.notStarted).toBe(60 - run.summary.done);
    expect(run.workerErrors).toEqual([]);
    expect((await thingsOfRun(t, run.idPrefix)).length).toBe(run.summary.done);
  });

  it('counts the devices of a worker that crashes as failed, and ends', { timeout: 120_000 }, async () => {
    const t = await startTestEmulator();
    const run = await runFleet({ count: 10, concurrency: 4, workers: 2, base: baseConfig(t), runDir: path.join(await tmpDir('fp-sim-'), 'run'), crashWorkerAfter: 2 });
    expect(run.workerErrors.sort()).toEqual([1, 2].map((n) => `simulate worker ${n} failed: test crash after 2 device(s)`));
    // Each thread ran two devices, was given a third and crashed: what it was running failed with the cause.
    expect(run.summary.failed).toBeGreaterThanOrEqual(2);
    expect(run.summary.errors.every((e) => e.message.startsWith('simulate worker'))).toBe(true);
    expect(run.summary.success + run.summary.failed + run.notStarted).toBe(10);
    expect(run.notStarted).toBeGreaterThan(0);
  });

  it('rejects every device with the claim fault when the shared claim cannot be loaded', { timeout: 60_000 }, async () => {
    const t = await startTestEmulator();
    const base = { ...baseConfig(t), claimKeyPath: path.join(await tmpDir('fp-sim-'), 'missing.key.pem') };
    const run = await runFleet({ count: 5, concurrency: 4, workers: 2, base, runDir: path.join(await tmpDir('fp-sim-'), 'run') });
    // As five devices with that config would end: exit 78, one line naming the field and the file.
    expect(run.summary).toMatchObject({ done: 5, success: 0, rejected: 5, errors: [{ count: 5, message: `claimKeyPath ${base.claimKeyPath}: does not exist` }] });
    expect(run.workerErrors).toEqual([]);
  });

  it('provisions with a claim loaded by the caller without reading the claim files again', { timeout: 60_000 }, async () => {
    const t = await startTestEmulator();
    const base = baseConfig(t);
    const claim = await loadSharedClaim(base);
    const loads = claimLoadCount();
    // Gone from disk: a device that read them again would fail with a claimFiles fault.
    await Promise.all([base.claimCertPath, base.claimKeyPath, base.rootCaPath].map((file) => rm(file)));
    const dir = await tmpDir('fp-sim-');
    const idFile = path.join(dir, 'mac');
    await writeFile(idFile, '02aabbccdd01\n');
    await provision({ ...base, deviceId: { source: 'file', path: idFile, format: 'plain' }, outputDir: path.join(dir, 'out') }, { force: false, protocolVersion: 5, log: () => undefined, claim });
    expect(claimLoadCount()).toBe(loads);
    expect((await t.emulator.control.listThings()).map((thing) => thing.thingName)).toContain(`${THING_NAME_PREFIX}02aabbccdd01`);
  });
});
