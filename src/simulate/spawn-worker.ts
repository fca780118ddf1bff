// Starts one simulate worker thread, from source or from the build. From source (tsx, vitest) the
// worker is worker.ts, which plain Node cannot load: a small bootstrap registers tsx's loader in
// the new thread first (a loader does not carry over into workers, nor does `--import` in
// execArgv on Node 20). From dist/, scripts/build.ts emits the worker as its own entry,
// dist/simulate-worker.mjs, beside cli.mjs, sharing the CLI's chunks.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerSetup } from './worker-protocol.ts';

/** The file name scripts/build.ts gives the bundled worker, in dist/. */
export const BUNDLED_WORKER = 'simulate-worker.mjs';

export function workerEntry(here = import.meta.url): { url: URL; typescript: boolean } {
  if (here.endsWith('.ts')) return { url: new URL('./worker.ts', here), typescript: true };
  // Bundled: this code is in dist/chunks/<chunk>.mjs (split out of the lazily loaded command) or in dist/ itself.
  const dir = path.dirname(fileURLToPath(here));
  const dist = path.basename(dir) === 'chunks' ? path.dirname(dir) : dir;
  return { url: pathToFileURL(path.join(dist, BUNDLED_WORKER)), typescript: false };
}

export function spawnWorker(setup: WorkerSetup): Worker {
  const { url, typescript } = workerEntry();
  if (!typescript) return new Worker(url, { workerData: setup });
  // tsx's ESM API (the `import` export: the CommonJS one cannot register the ESM loader).
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: setup });
}
