import { describe, expect, it } from 'vitest';
import { DeadlineError, fullJitterDelay, retryUntilDeadline } from '../../src/agent/backoff.ts';
import { Fault, NoTimeLeftError } from '../../src/agent/errors.ts';

const policy = { initialDelayMs: 100, maxDelayMs: 1_000 };

describe('fullJitterDelay', () => {
  it('spans [0, min(max, initial * 2^attempt))', () => {
    expect(fullJitterDelay(0, policy, () => 0)).toBe(0);
    expect(fullJitterDelay(0, policy, () => 0.999_999)).toBe(99);
    expect(fullJitterDelay(3, policy, () => 0.5)).toBe(400);
    expect(fullJitterDelay(4, policy, () => 0.999_999)).toBe(999);
    // Capped at maxDelayMs however many attempts, without overflowing to Infinity.
    expect(fullJitterDelay(10_000, policy, () => 0.5)).toBe(500);
  });
});

/** A fake clock: sleeping advances it, so tests run instantly and exactly. */
function fakeClock() {
  let t = 0;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    advance: (ms: number) => (t += ms),
    sleeps,
  };
}

describe('retryUntilDeadline', () => {
  it('retries transient faults with growing jittered delays, then returns', async () => {
    const clock = fakeClock();
    let calls = 0;
    const result = await retryUntilDeadline(
      async () => {
        calls++;
        if (calls < 4) throw new Fault('throttled', 'throttled');
        return 'done';
      },
      { ...policy, deadlineMs: 10_000, now: clock.now, sleep: clock.sleep, random: () => 0.5 },
    );
    expect(result).toBe('done');
    expect(clock.sleeps).toEqual([50, 100, 200]);
  });

  it('rethrows permanent faults at once', async () => {
    const clock = fakeClock();
    const error = new Fault('rejected', 'bad template');
    await expect(
      retryUntilDeadline(() => Promise.reject(error), { ...policy, deadlineMs: 10_000, now: clock.now, sleep: clock.sleep }),
    ).rejects.toBe(error);
    expect(clock.sleeps).toEqual([]);
  });

  it('gives up with the last cause when the next wait would pass the deadline', async () => {
    const clock = fakeClock();
    const promise = retryUntilDeadline(
      async () => {
        clock.advance(300);
        throw new Fault('network', 'ECONNREFUSED');
      },
      { ...policy, deadlineMs: 1_000, now: clock.now, sleep: clock.sleep, random: () => 0.99 },
    );
    await expect(promise).rejects.toBeInstanceOf(DeadlineError);
    await expect(promise).rejects.toMatchObject({ exitCode: 75, message: expect.stringContaining('ECONNREFUSED') });
  });

  it('reports the fault that used the time up, not "no time left"', async () => {
    const clock = fakeClock();
    const causes = [new Fault('network', 'ECONNREFUSED'), new NoTimeLeftError('connect to x:1 (1 CONNECT/s per client id)')];
    const promise = retryUntilDeadline(
      async () => {
        throw causes.shift() ?? new Error('called too often');
      },
      { ...policy, deadlineMs: 1_000, now: clock.now, sleep: clock.sleep, random: () => 0 },
    );
    await expect(promise).rejects.toBeInstanceOf(DeadlineError);
    await expect(promise).rejects.toThrow(/^gave up after 2 attempts in [\d.]+ s: ECONNREFUSED$/);
  });

  it('hands each attempt the time left', async () => {
    const clock = fakeClock();
    const seen: number[] = [];
    await retryUntilDeadline(
      async (remaining) => {
        seen.push(remaining);
        clock.advance(100);
        if (seen.length < 2) throw new Fault('network', 'x');
      },
      { ...policy, deadlineMs: 1_000, now: clock.now, sleep: clock.sleep, random: () => 0.5 },
    );
    expect(seen).toEqual([1_000, 850]);
  });
});
