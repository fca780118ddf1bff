// Pure statistics of a simulated fleet run: counts by outcome, latency quantiles of the devices
// that provisioned, and throughput over the whole run's wall time.

/** success: provisioned; rejected: a permanent fault (exit 78: hook denial, 4xx, bad config);
 *  failed: anything else (a transient fault outlived the retry deadline, an internal error). */
export type Outcome = 'success' | 'rejected' | 'failed';

export interface DeviceResult {
  outcome: Outcome;
  /** From the start of provision() to its end. */
  latencyMs: number;
  /** Transient faults the agent retried after. */
  retries: number;
  /** The one-line cause when not a success (device id already replaced by `<id>`). */
  error?: string;
}

/** Running counts, cheap to update after every device (the progress bar shows them). */
export interface Tally {
  total: number;
  done: number;
  success: number;
  rejected: number;
  failed: number;
  /** Devices that retried at least once. */
  retried: number;
}

export const emptyTally = (total: number): Tally => ({ total, done: 0, success: 0, rejected: 0, failed: 0, retried: 0 });

export function addToTally(tally: Tally, result: DeviceResult): Tally {
  return {
    ...tally,
    done: tally.done + 1,
    [result.outcome]: tally[result.outcome] + 1,
    retried: tally.retried + (result.retries > 0 ? 1 : 0),
  };
}

export interface Latency {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface Summary extends Tally {
  /** Retries summed over all devices. */
  retries: number;
  /** Of the successful devices; undefined when none succeeded. */
  latencyMs?: Latency;
  elapsedMs: number;
  provisionsPerSecond: number;
  /** Distinct causes of failure, most frequent first (at most MAX_ERRORS). */
  errors: Array<{ message: string; count: number }>;
}

const MAX_ERRORS = 5;

/** The q-quantile (0..1) of ascending values, nearest-rank; NaN for none. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function summarize(results: readonly DeviceResult[], elapsedMs: number, total = results.length): Summary {
  const tally = results.reduce(addToTally, emptyTally(total));
  const latencies = results
    .filter((r) => r.outcome === 'success')
    .map((r) => r.latencyMs)
    .sort((a, b) => a - b);
  const errorCounts = new Map<string, number>();
  for (const r of results) if (r.error) errorCounts.set(r.error, (errorCounts.get(r.error) ?? 0) + 1);
  return {
    ...tally,
    retries: results.reduce((sum, r) => sum + r.retries, 0),
    latencyMs: latencies.length
      ? { p50: quantileSorted(latencies, 0.5), p95: quantileSorted(latencies, 0.95), p99: quantileSorted(latencies, 0.99), max: latencies.at(-1)! }
      : undefined,
    elapsedMs,
    provisionsPerSecond: elapsedMs > 0 ? (tally.success * 1000) / elapsedMs : 0,
    errors: [...errorCounts]
      .map(([message, count]) => ({ message, count }))
      .sort((a, b) => b.count - a.count || a.message.localeCompare(b.message))
      .slice(0, MAX_ERRORS),
  };
}

/** 850 ms, 12.3 s. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The summary as label/value rows, the order the CLI prints them in. */
export function summaryRows(s: Summary): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ['devices', `${s.done} of ${s.total}`],
    ['succeeded', String(s.success)],
    ['rejected', String(s.rejected)],
    ['failed', String(s.failed)],
    ['retried', `${s.retried} device(s), ${s.retries} retries in all`],
  ];
  if (s.latencyMs) {
    const l = s.latencyMs;
    rows.push(['latency', `p50 ${formatDuration(l.p50)}  p95 ${formatDuration(l.p95)}  p99 ${formatDuration(l.p99)}  max ${formatDuration(l.max)}`]);
  }
  rows.push(['throughput', `${s.provisionsPerSecond.toFixed(1)} provisions/s over ${formatDuration(s.elapsedMs)}`]);
  return rows;
}
