// One simulated device: the real agent flow (provision() from src/agent) with its own output dir
// and device id, reduced to a small result (no logs, so memory stays flat however large N is).
// Runs inside a simulate worker thread (worker.ts), which drops the agent's log lines for the whole
// thread: per-device lines would drown the progress bar and grow with N.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DeadlineError } from '../agent/backoff.ts';
import type { Claim } from '../agent/claim.ts';
import { classify } from '../agent/errors.ts';
import { provision } from '../agent/provision.ts';
import type { AgentConfig } from '../shared/config.ts';
import { EXIT } from '../shared/errors.ts';
import type { DeviceResult, Outcome } from './summary.ts';

/** Everything of a device's config but where it keeps its files and who it is. */
export type BaseConfig = Omit<AgentConfig, 'outputDir' | 'deviceId'>;

export interface DeviceContext {
  base: BaseConfig;
  /** Holds one sub-directory per device. */
  runDir: string;
  keep: boolean;
  protocolVersion: 4 | 5;
  /** The fleet's claim, loaded once (shared-claim.ts); a device gets the fault when that failed. */
  claim: Claim | Error;
}

export async function runDevice(id: string, context: DeviceContext): Promise<DeviceResult> {
  const dir = path.join(context.runDir, id);
  const idFile = path.join(dir, 'mac');
  const config: AgentConfig = {
    ...context.base,
    deviceId: { source: 'file', path: idFile, format: 'plain' },
    outputDir: path.join(dir, 'out'),
  };
  let retries = 0;
  let start = performance.now();
  try {
    // Synchronous, as the agent's own file calls in this thread (src/shared/file-calls.ts): each
    // is microseconds here, each fs.promises call a thread-pool round trip.
    mkdirSync(dir, { recursive: true });
    writeFileSync(idFile, `${id}\n`);
    start = performance.now();
    // As a device whose claim files are broken: the same fault, before anything is minted.
    if (context.claim instanceof Error) throw context.claim;
    await provision(config, {
      force: false,
      protocolVersion: context.protocolVersion,
      onRetry: () => retries++,
      claim: context.claim,
    });
    return { outcome: 'success', latencyMs: performance.now() - start, retries };
  } catch (error) {
    const { outcome, message } = outcomeOf(error);
    // Without the id, the causes of many devices group into one line of the summary.
    return { outcome, latencyMs: performance.now() - start, retries, error: message.replaceAll(id, '<id>') };
  } finally {
    // Disk stays bounded too: a finished device's files go at once unless kept.
    if (!context.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** Rejected = the agent would exit 78 (retrying cannot help); anything else that ends a device is a failure. */
export function outcomeOf(error: unknown): { outcome: Exclude<Outcome, 'success'>; message: string } {
  const c = classify(error);
  if (error instanceof DeadlineError || c.kind === 'transient') return { outcome: 'failed', message: c.message };
  return { outcome: c.exitCode === EXIT.config ? 'rejected' : 'failed', message: c.message };
}
