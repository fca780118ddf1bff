// Messages between `runFleet` (main thread) and its worker threads (worker.ts). Plain data only:
// they cross threads by structured clone.
import type { BaseConfig } from './device.ts';
import type { DeviceResult } from './summary.ts';

/** workerData of every worker. */
export interface WorkerSetup {
  base: BaseConfig;
  runDir: string;
  keep: boolean;
  protocolVersion: 4 | 5;
  /** Test hook: the worker throws an uncaught error once it has started this many devices. */
  crashAfter?: number;
}

export type ToWorker = { type: 'run'; index: number; id: string } | { type: 'stop' };

export type FromWorker =
  | { type: 'result'; index: number; result: DeviceResult }
  /** The answer to `stop`, once every device it was given has ended. */
  | { type: 'stopped'; claimLoads: number };
