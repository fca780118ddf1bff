// fp-yocto simulate: N=1000 devices, 50 at a time, each the real agent flow on this process's
// worker threads, against an in-process emulator (on the main thread) that throttles some
// requests (429) so retries show up too. The emulator in its own process, as a user runs it:
// the simulate rows of bench/emulator.ts.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmulator } from '../src/emulator/index.ts';
import { CONFIG_DEFAULTS } from '../src/shared/config.ts';
import { DEVICE_ID_PARAMETER } from '../src/shared/pre-provisioning-hook.ts';
import { runFleet } from '../src/simulate/fleet.ts';
import { formatDuration } from '../src/simulate/summary.ts';
import { CLIENT_ID_PREFIX, setupFleet, TEMPLATE_NAME } from '../test/helpers/emulator.ts';
import type { BenchRow } from './table.ts';

const SUITE = 'simulate';
const COUNT = Number(process.env.FP_BENCH_SIMULATE_N ?? 1000);
const CONCURRENCY = 50;
/** About 2% of the fleet's requests answered 429, as a busy account would. */
const THROTTLED = Math.ceil(COUNT / 50);

const SHM = '/dev/shm';
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

export async function run(): Promise<BenchRow[]> {
  // On tmpfs when there is one: the emulator rewrites and fsyncs its whole registry as it grows,
  // and the agents fsync their files; on a shared disk that measures the disk, not the fleet.
  const dir = await mkdtemp(path.join(existsSync(SHM) ? SHM : os.tmpdir(), 'fp-bench-simulate-'));
  const emulator = await startEmulator({ port: 0, dir: path.join(dir, 'emulator') });
  try {
    const { control } = emulator;
    const claim = await setupFleet(emulator, dir);
    const claimFiles = { claimCertPath: claim.certPath, claimKeyPath: claim.keyPath, rootCaPath: claim.rootCaPath };
    await control.setFaults({ throttle: THROTTLED });

    // Sampled per device: shows whether memory grows with N (it should not: no per-device logs).
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    const cpuBefore = process.cpuUsage();
    // The agent's defaults (1 s first backoff, 60 s cap, 5 min deadline): what `fp-yocto simulate` uses.
    const { summary, workers, claimLoads } = await runFleet({
      count: COUNT,
      concurrency: CONCURRENCY,
      runDir: path.join(dir, 'run'),
      base: {
        ...CONFIG_DEFAULTS,
        ...claimFiles,
        iotDataEndpoint: emulator.endpoint,
        port: emulator.port,
        templateName: TEMPLATE_NAME,
        templateParams: { [DEVICE_ID_PARAMETER]: '${deviceId}' },
        clientIdPrefix: CLIENT_ID_PREFIX,
        key: { ...CONFIG_DEFAULTS.key },
        greengrass: { ...CONFIG_DEFAULTS.greengrass, enabled: false },
        retry: { ...CONFIG_DEFAULTS.retry },
      },
      onProgress: () => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())),
    });
    const cpu = process.cpuUsage(cpuBefore);
    const l = summary.latencyMs;
    const label = `N=${COUNT}, concurrency ${CONCURRENCY}, ${THROTTLED} requests throttled${dir.startsWith(SHM) ? ', state on tmpfs' : ''}`;
    return [
      { suite: SUITE, metric: `provisioned (${label})`, value: `${summary.success}/${summary.total}`, target: `${summary.total}/${summary.total}`, ok: summary.success === summary.total },
      { suite: SUITE, metric: '  provisions per second (in-process emulator and agents)', value: summary.provisionsPerSecond.toFixed(1) },
      { suite: SUITE, metric: '  wall time', value: formatDuration(summary.elapsedMs) },
      { suite: SUITE, metric: '  latency p50 / p95 / p99', value: l ? `${formatDuration(l.p50)} / ${formatDuration(l.p95)} / ${formatDuration(l.p99)}` : '-' },
      { suite: SUITE, metric: '  devices retried (retries in all)', value: `${summary.retried} (${summary.retries})` },
      { suite: SUITE, metric: '  worker threads / claim loads (one per thread)', value: `${workers} / ${claimLoads}` },
      { suite: SUITE, metric: '  CPU per device, this process (devices and emulator together; user + system)', value: `${((cpu.user + cpu.system) / 1000 / COUNT).toFixed(1)} ms` },
      { suite: SUITE, metric: '  RSS before the run -> peak during it', value: `${mb(rssBefore)} -> ${mb(rssPeak)}` },
    ];
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// `tsx bench/simulate.ts` runs this suite alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { printTable } = await import('./table.ts');
  printTable(await run());
}
