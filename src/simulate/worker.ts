// Entry of a simulate worker thread (bundled as dist/simulate-worker.mjs): runs the devices the
// main thread hands it, each the real agent flow, and posts back one result per device. The
// claim is loaded once here and shared by all of this thread's devices.
import { parentPort, workerData } from 'node:worker_threads';
import { claimLoadCount } from '../agent/claim.ts';
import { setThreadLogSink } from '../agent/log.ts';
import { skipFsyncInThisThread } from '../shared/atomic-file.ts';
import { useSynchronousFileCallsInThisThread } from '../shared/file-calls.ts';
import { runDevice, type DeviceContext } from './device.ts';
import { loadSharedClaim } from './shared-claim.ts';
import type { FromWorker, ToWorker, WorkerSetup } from './worker-protocol.ts';

if (!parentPort) throw new Error('src/simulate/worker.ts runs only as a worker thread of fp-yocto simulate');
const port = parentPort;
const setup = workerData as WorkerSetup;
// A simulated device's files are deleted after the run (or kept for a look, not for a power cut).
skipFsyncInThisThread();
// And their small files are written and read synchronously: on this thread a thread-pool round
// trip per call cost far more than the call (src/shared/file-calls.ts). No watchdog runs here.
useSynchronousFileCallsInThisThread();
// No device's lines are shown (the summary groups their causes), so none is kept.
setThreadLogSink(() => undefined);
const claim = loadSharedClaim(setup.base).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
const running = new Set<Promise<void>>();
let started = 0;

const post = (message: FromWorker) => port.postMessage(message);

port.on('message', (message: ToWorker) => {
  if (message.type === 'stop') {
    void Promise.all(running).then(() => {
      post({ type: 'stopped', claimLoads: claimLoadCount() });
      port.close();
    });
    return;
  }
  if (setup.crashAfter !== undefined && ++started > setup.crashAfter) {
    // Thrown outside any promise: an uncaught exception, as a bug in a device's flow would be.
    setImmediate(() => {
      throw new Error(`test crash after ${setup.crashAfter} device(s)`);
    });
  }
  const done = claim
    .then((loaded) => {
      const context: DeviceContext = { base: setup.base, runDir: setup.runDir, keep: setup.keep, protocolVersion: setup.protocolVersion, claim: loaded };
      return runDevice(message.id, context);
    })
    .then((result) => post({ type: 'result', index: message.index, result }));
  running.add(done);
  void done.finally(() => running.delete(done));
});
