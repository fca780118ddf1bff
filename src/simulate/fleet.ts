// Runs N simulated devices, at most `concurrency` at a time, each the real agent flow in this
// process (provision() from src/agent) with its own output dir and device id. Only a small
// result per device is kept (no logs), so memory stays flat however large N is.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DeadlineError } from '../agent/backoff.ts';
import { classify } from '../agent/errors.ts';
import { provision } from '../agent/provision.ts';
import type { AgentConfig } from '../shared/config.ts';
import { EXIT } from '../shared/errors.ts';
import { deviceId, MAX_DEVICES, randomRunPrefix } from './device-ids.ts';
import { addToTally, emptyTally, summarize, type DeviceResult, type Outcome, type Summary, type Tally } from './summary.ts';

/** Everything of a device's config but where it keeps its files and who it is. */
export type BaseConfig = Omit<AgentConfig, 'outputDir' | 'deviceId'>;

export interface FleetOptions {
  count: number;
  concurrency: number;
  base: BaseConfig;
  /** Holds one sub-directory per device; created if missing. */
  runDir: string;
  /** Keep each device's files (certificate, key, state.json) after the run. */
  keep?: boolean;
  /** Six hex digits; random by default (see device-ids.ts). */
  idPrefix?: string;
  protocolVersion?: 4 | 5;
  /** Once aborted, no further device starts; the ones running finish. */
  signal?: AbortSignal;
  /** Called after every device with the counts so far. */
  onProgress?: (tally: Tally) => void;
}

export interface FleetRun {
  summary: Summary;
  idPrefix: string;
  /** Devices never started because the run was aborted. */
  notStarted: number;
}

export async function runFleet(options: FleetOptions): Promise<FleetRun> {
  const { count, runDir } = options;
  if (!Number.isInteger(count) || count < 1 || count > MAX_DEVICES) throw new RangeError(`device count must be 1..${MAX_DEVICES}`);
  const concurrency = Math.max(1, Math.min(count, Math.floor(options.concurrency)));
  const idPrefix = options.idPrefix ?? randomRunPrefix();
  await mkdir(runDir, { recursive: true, mode: 0o700 });

  const results: DeviceResult[] = [];
  let tally = emptyTally(count);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count && !options.signal?.aborted) {
      const index = next++;
      const result = await runDevice(deviceId(idPrefix, index), options);
      results.push(result);
      tally = addToTally(tally, result);
      options.onProgress?.(tally);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    if (!options.keep) await rm(runDir, { recursive: true, force: true });
  }
  const elapsedMs = performance.now() - started;
  return { summary: summarize(results, elapsedMs, count), idPrefix, notStarted: count - results.length };
}

async function runDevice(id: string, options: FleetOptions): Promise<DeviceResult> {
  const dir = path.join(options.runDir, id);
  const idFile = path.join(dir, 'mac');
  const config: AgentConfig = {
    ...options.base,
    deviceId: { source: 'file', path: idFile, format: 'plain' },
    outputDir: path.join(dir, 'out'),
  };
  let retries = 0;
  let start = performance.now();
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(idFile, `${id}\n`);
    start = performance.now();
    await provision(config, {
      force: false,
      protocolVersion: options.protocolVersion ?? 5,
      log: () => undefined, // per-device lines would drown the progress bar and grow with N
      onRetry: () => retries++,
    });
    return { outcome: 'success', latencyMs: performance.now() - start, retries };
  } catch (error) {
    const { outcome, message } = outcomeOf(error);
    // Without the id, the causes of many devices group into one line of the summary.
    return { outcome, latencyMs: performance.now() - start, retries, error: message.replaceAll(id, '<id>') };
  } finally {
    // Disk stays bounded too: a finished device's files go at once unless kept.
    if (!options.keep) await rm(dir, { recursive: true, force: true });
  }
}

/** Rejected = the agent would exit 78 (retrying cannot help); anything else that ends a device is a failure. */
export function outcomeOf(error: unknown): { outcome: Exclude<Outcome, 'success'>; message: string } {
  const c = classify(error);
  if (error instanceof DeadlineError || c.kind === 'transient') return { outcome: 'failed', message: c.message };
  return { outcome: c.exitCode === EXIT.config ? 'rejected' : 'failed', message: c.message };
}
