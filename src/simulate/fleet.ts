// Runs N simulated devices, at most `concurrency` at a time, each the real agent flow, on worker
// threads (worker.ts): TLS, key generation and MQTT of the devices use every core, while this
// thread only hands out device indices and keeps the results, so progress, Ctrl-C and the
// summary (latency quantiles over every device) are exact whatever the number of workers.
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { deviceId, MAX_DEVICES, randomRunPrefix } from './device-ids.ts';
import type { BaseConfig } from './device.ts';
import { spawnWorker } from './spawn-worker.ts';
import { addToTally, emptyTally, summarize, type DeviceResult, type Summary, type Tally } from './summary.ts';
import type { FromWorker, ToWorker, WorkerSetup } from './worker-protocol.ts';

export { outcomeOf, type BaseConfig } from './device.ts';

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
  /** Worker threads; default one per available core (defaultWorkers), never more than `concurrency`. */
  workers?: number;
  /** Once aborted, no further device starts; the ones running finish. */
  signal?: AbortSignal;
  /** Called after every device with the counts so far. */
  onProgress?: (tally: Tally) => void;
  /** Test hook: each worker throws an uncaught error once it has started this many devices. */
  crashWorkerAfter?: number;
}

export interface FleetRun {
  summary: Summary;
  idPrefix: string;
  /** Devices never started: the run was aborted, or every worker failed. */
  notStarted: number;
  /** Worker threads used. */
  workers: number;
  /** Times the claim files were read and checked, all workers together (one per worker). */
  claimLoads: number;
  /** Why workers ended early (their running devices count as failed with this cause). */
  workerErrors: string[];
}

/**
 * The default number of worker threads for a run: one per core, but one core left to the local
 * emulator when it runs on this machine too. On 2 cores one worker beside the emulator measured
 * 13.6 ms of CPU a device against 15.4 ms for two (each thread compiles and warms up the agent
 * code on its own), and the same wall time or less (docs/emulator.md, Throughput).
 */
export function defaultWorkers(concurrency: number, count: number, options: { localEmulator?: boolean } = {}): number {
  const cores = os.availableParallelism() - (options.localEmulator ? 1 : 0);
  return Math.max(1, Math.min(cores, concurrency, count));
}

interface Slot {
  worker: Worker;
  /** Devices it may run at once: its share of the concurrency. */
  share: number;
  /** Device ids by index, of the devices it was given and has not answered for. */
  running: Map<number, string>;
  /** Until it answered `stop`, failed or exited. */
  alive: boolean;
  /** `stop` was sent: it gets no more devices. */
  stopping: boolean;
}

export async function runFleet(options: FleetOptions): Promise<FleetRun> {
  const { count, runDir } = options;
  if (!Number.isInteger(count) || count < 1 || count > MAX_DEVICES) throw new RangeError(`device count must be 1..${MAX_DEVICES}`);
  const concurrency = Math.max(1, Math.min(count, Math.floor(options.concurrency)));
  const workerCount = Math.max(1, Math.min(concurrency, Math.floor(options.workers ?? defaultWorkers(concurrency, count))));
  const idPrefix = options.idPrefix ?? randomRunPrefix();
  await mkdir(runDir, { recursive: true, mode: 0o700 });

  const setup: WorkerSetup = {
    base: options.base,
    runDir,
    keep: Boolean(options.keep),
    protocolVersion: options.protocolVersion ?? 5,
    ...(options.crashWorkerAfter === undefined ? {} : { crashAfter: options.crashWorkerAfter }),
  };
  const results: DeviceResult[] = [];
  const workerErrors: string[] = [];
  let tally = emptyTally(count);
  let next = 0;
  let claimLoads = 0;
  const started = performance.now();
  const slots: Slot[] = [];

  try {
    await new Promise<void>((resolve) => {
      const record = (result: DeviceResult) => {
        results.push(result);
        tally = addToTally(tally, result);
        options.onProgress?.(tally);
      };
      const send = (slot: Slot, message: ToWorker) => slot.worker.postMessage(message);
      /** Gives each worker devices up to its share; stops the idle ones once nothing is left to start. */
      const dispatch = () => {
        const canStart = () => next < count && !options.signal?.aborted;
        for (const slot of slots) {
          if (!slot.alive || slot.stopping) continue;
          while (slot.running.size < slot.share && canStart()) {
            const index = next++;
            const id = deviceId(idPrefix, index);
            slot.running.set(index, id);
            send(slot, { type: 'run', index, id });
          }
          if (slot.running.size === 0 && !canStart()) {
            slot.stopping = true;
            send(slot, { type: 'stop' });
          }
        }
        if (slots.every((s) => !s.alive)) resolve();
      };
      const fail = (slot: Slot, cause: string) => {
        if (!slot.alive) return;
        slot.alive = false;
        workerErrors.push(cause);
        // Its devices end here: whatever they did, the summary must not wait for them.
        for (const id of slot.running.values()) record({ outcome: 'failed', latencyMs: 0, retries: 0, error: cause.replaceAll(id, '<id>') });
        slot.running.clear();
        void slot.worker.terminate();
        dispatch();
      };
      options.signal?.addEventListener('abort', () => dispatch(), { once: true });
      for (let i = 0; i < workerCount; i++) {
        const share = Math.floor(concurrency / workerCount) + (i < concurrency % workerCount ? 1 : 0);
        const slot: Slot = { worker: spawnWorker(setup), share, running: new Map(), alive: true, stopping: false };
        slots.push(slot);
        slot.worker.on('message', (message: FromWorker) => {
          if (message.type === 'result') {
            if (!slot.running.delete(message.index)) return;
            record(message.result);
          } else {
            // Its devices have all ended; whatever else it holds open must not keep the run waiting.
            claimLoads += message.claimLoads;
            slot.alive = false;
            void slot.worker.terminate();
          }
          dispatch();
        });
        slot.worker.on('error', (error) => fail(slot, `simulate worker ${i + 1} failed: ${error.message}`));
        slot.worker.on('exit', (code) => fail(slot, `simulate worker ${i + 1} exited (code ${code}) before it was done`));
      }
      dispatch();
    });
  } finally {
    await Promise.all(slots.map((s) => s.worker.terminate()));
    if (!options.keep) await rm(runDir, { recursive: true, force: true });
  }
  const elapsedMs = performance.now() - started;
  return {
    summary: summarize(results, elapsedMs, count),
    idPrefix,
    notStarted: count - results.length,
    workers: workerCount,
    claimLoads,
    workerErrors,
  };
}
