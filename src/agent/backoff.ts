// Exponential backoff with full jitter (delay = random(0, min(max, initial * 2^attempt))), and a
// retry loop bounded by a deadline. Clock, sleep and randomness are injected so tests are exact.
import { classify, Fault, NoTimeLeftError } from './errors.ts';

export interface BackoffPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
}

/** The delay before retry number `attempt` (0-based). `random` returns [0, 1). */
export function fullJitterDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

/** A transient fault outlived the deadline: exit 75 so that systemd tries again later. */
export class DeadlineError extends Fault {
  constructor(elapsedMs: number, attempts: number, lastCause: string) {
    super('deadline', `gave up after ${attempts} attempts in ${(elapsedMs / 1000).toFixed(1)} s: ${lastCause}`);
    this.name = 'DeadlineError';
  }
}

export interface RetryOptions extends BackoffPolicy {
  deadlineMs: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Told about every transient fault before the wait. */
  onRetry?: (info: { attempt: number; delayMs: number; cause: string }) => void;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` until it succeeds, a permanent fault is thrown (rethrown as is), or the deadline
 * passes (DeadlineError). `attempt` gets the time left, to bound its own waits.
 */
export async function retryUntilDeadline<T>(attempt: (remainingMs: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? realSleep;
  const start = now();
  const deadline = start + options.deadlineMs;
  let lastCause: string | undefined;
  for (let n = 0; ; n++) {
    try {
      return await attempt(Math.max(0, deadline - now()));
    } catch (error) {
      const c = classify(error);
      if (c.kind === 'permanent') throw error;
      // Running out of time is not a cause: report the fault that used the time up.
      if (error instanceof NoTimeLeftError) throw new DeadlineError(now() - start, n + 1, lastCause ?? c.message);
      lastCause = c.message;
      const delayMs = fullJitterDelay(n, options, options.random);
      if (now() + delayMs >= deadline) throw new DeadlineError(now() - start, n + 1, c.message);
      options.onRetry?.({ attempt: n + 1, delayMs, cause: c.message });
      await sleep(delayMs);
    }
  }
}
