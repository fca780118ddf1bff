// Pure parts of fp-yocto simulate: device ids, statistics, outcome classification, progress line.
import { describe, expect, it } from 'vitest';
import { DeadlineError } from '../../src/agent/backoff.ts';
import { Fault, RejectedError } from '../../src/agent/errors.ts';
import { deviceId, MAX_DEVICES, randomRunPrefix } from '../../src/simulate/device-ids.ts';
import { outcomeOf } from '../../src/simulate/fleet.ts';
import { renderProgress } from '../../src/simulate/progress.ts';
import { addToTally, emptyTally, formatDuration, quantileSorted, summarize, summaryRows, type DeviceResult } from '../../src/simulate/summary.ts';
import { isUniversalMac } from '../../src/agent/device-id.ts';

// The hook's own acceptance test for the plain form (src/shared/pre-provisioning-hook.ts).
const HOOK_PLAIN = /^[0-9a-f]{12}$/i;

describe('device ids', () => {
  it('are distinct, MAC-shaped and never universally administered', () => {
    const prefix = randomRunPrefix();
    expect(prefix).toMatch(/^[0-9a-f]{6}$/);
    const ids = Array.from({ length: 1000 }, (_, i) => deviceId(prefix, i));
    expect(new Set(ids).size).toBe(1000);
    for (const id of ids) {
      expect(id).toMatch(HOOK_PLAIN);
      expect(id.startsWith(prefix)).toBe(true);
      expect(isUniversalMac(id)).toBe(false);
    }
    expect(deviceId(prefix, MAX_DEVICES - 1)).toBe(`${prefix}ffffff`);
  });

  it('set the locally administered bit and clear the multicast bit whatever the random bytes', () => {
    expect(randomRunPrefix(() => new Uint8Array([0xff, 0xab, 0x01]))).toBe('feab01');
    expect(randomRunPrefix(() => new Uint8Array([0x00, 0x00, 0x00]))).toBe('020000');
    expect(randomRunPrefix(() => new Uint8Array([0x01, 0x10, 0x20]))).toBe('021020');
  });

  it('refuse indexes beyond the prefix and malformed prefixes', () => {
    expect(() => deviceId('020000', MAX_DEVICES)).toThrow(RangeError);
    expect(() => deviceId('020000', -1)).toThrow(RangeError);
    expect(() => deviceId('02:00:00', 0)).toThrow(RangeError);
  });
});

describe('statistics', () => {
  const ok = (latencyMs: number, retries = 0): DeviceResult => ({ outcome: 'success', latencyMs, retries });

  it('takes nearest-rank quantiles of the successful devices only', () => {
    const results = [
      ...Array.from({ length: 100 }, (_, i) => ok(i + 1, i < 7 ? 2 : 0)),
      { outcome: 'rejected', latencyMs: 99_999, retries: 0, error: 'denied' },
      { outcome: 'failed', latencyMs: 88_888, retries: 5, error: 'gave up' },
    ] satisfies DeviceResult[];
    const s = summarize(results, 4000, 105);
    expect(s).toMatchObject({ total: 105, done: 102, success: 100, rejected: 1, failed: 1, retried: 8, retries: 19 });
    expect(s.latencyMs).toEqual({ p50: 50, p95: 95, p99: 99, max: 100 });
    expect(s.provisionsPerSecond).toBe(25);
    expect(s.errors).toEqual([
      { message: 'denied', count: 1 },
      { message: 'gave up', count: 1 },
    ]);
  });

  it('has no latency without a success and no rate without time', () => {
    const s = summarize([{ outcome: 'rejected', latencyMs: 5, retries: 0, error: 'x' }], 0);
    expect(s.latencyMs).toBeUndefined();
    expect(s.provisionsPerSecond).toBe(0);
    expect(summaryRows(s).map(([label]) => label)).toEqual(['devices', 'succeeded', 'rejected', 'failed', 'retried', 'throughput']);
    expect(quantileSorted([], 0.5)).toBeNaN();
  });

  it('groups causes, most frequent first, at most five', () => {
    const fail = (error: string): DeviceResult => ({ outcome: 'failed', latencyMs: 1, retries: 0, error });
    const results = ['a', 'b', 'b', 'c', 'c', 'c', 'd', 'e', 'f', 'g'].map(fail);
    expect(summarize(results, 1).errors).toEqual([
      { message: 'c', count: 3 },
      { message: 'b', count: 2 },
      { message: 'a', count: 1 },
      { message: 'd', count: 1 },
      { message: 'e', count: 1 },
    ]);
  });

  it('keeps a running tally without mutating the old one', () => {
    const before = emptyTally(3);
    const after = addToTally(before, ok(10, 1));
    expect(before.done).toBe(0);
    expect(after).toEqual({ total: 3, done: 1, success: 1, rejected: 0, failed: 0, retried: 1 });
  });

  it('formats durations for people', () => {
    expect(formatDuration(850.4)).toBe('850 ms');
    expect(formatDuration(12_345)).toBe('12.3 s');
    expect(formatDuration(Number.NaN)).toBe('-');
  });
});

describe('outcomes', () => {
  it('counts permanent faults (exit 78) as rejected and the rest as failed', () => {
    const denied = new RejectedError('RegisterThing', { statusCode: 403, errorCode: 'AccessDeniedException', errorMessage: 'denied by pre-provisioning hook' });
    expect(outcomeOf(denied)).toMatchObject({ outcome: 'rejected', message: expect.stringContaining('pre-provisioning hook') });
    expect(outcomeOf(new Fault('claimFiles', 'claim key missing')).outcome).toBe('rejected');
    expect(outcomeOf(new DeadlineError(300_000, 9, 'ThrottlingException')).outcome).toBe('failed');
    expect(outcomeOf(new Fault('network', 'ECONNRESET')).outcome).toBe('failed');
    expect(outcomeOf(new TypeError('x is undefined')).outcome).toBe('failed');
  });
});

describe('progress line', () => {
  it('shows the bar, the counts, the rate and the time', () => {
    const tally = { total: 10, done: 5, success: 4, rejected: 1, failed: 0, retried: 2 };
    const line = renderProgress(tally, 2000, false);
    expect(line).toContain('5/10');
    expect(line).toContain('4 ok');
    expect(line).toContain('1 rejected');
    expect(line).toContain('2 retried');
    expect(line).toContain('2.0/s');
    expect(line).toContain('2.0 s');
    expect(renderProgress(tally, 2000, true)).toMatch(/^[█░\u001b\[\dm]+ 5\/10/u);
  });
});
