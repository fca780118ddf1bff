// fp-agent: bundle size, cold start, peak RSS and end-to-end provisioning latency against a local
// emulator. Every provisioning run is a fresh device (own MAC, so own client id and thing) doing
// what a device does on first boot: `fp-agent provision`, from process start to exit.
import { execa } from 'execa';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startEmulator } from '../src/emulator/index.ts';
import { setupFleet, TEMPLATE_NAME } from '../test/helpers/emulator.ts';
import { AGENT } from '../test/helpers/run.ts';
import { makeSysroot } from '../test/agent/fixtures.ts';
import { quantile, type BenchRow } from './table.ts';

const SUITE = 'agent';
const BUNDLE_TARGET_BYTES = 400 * 1000;
const COLD_START_RUNS = 20;
const PROVISION_RUNS = 30;

const ms = (n: number) => `${n.toFixed(0)} ms`;

/** Runs the agent and times it; asynchronously, since the emulator serves from this very process. */
async function timeRun(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; status: number | undefined; stderr: string }> {
  const start = process.hrtime.bigint();
  const r = await execa(AGENT, args, { env, reject: false });
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, status: r.exitCode, stderr: String(r.stderr) };
}

export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const size = (await stat(AGENT)).size;
  rows.push({
    suite: SUITE,
    metric: 'bundle size (dist/fp-agent, minified)',
    value: `${(size / 1000).toFixed(1)} KB`,
    target: '<= 400 KB',
    ok: size <= BUNDLE_TARGET_BYTES,
  });

  // Interleaved with bare `node -e 0`, so load from elsewhere on the machine shows in both.
  const cold: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < COLD_START_RUNS; i++) {
    cold.push((await timeRun(['--version'], process.env)).ms);
    const start = process.hrtime.bigint();
    await execa(process.execPath, ['-e', '0']);
    bare.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  rows.push(
    { suite: SUITE, metric: `cold start, fp-agent --version (median of ${COLD_START_RUNS}, node ${process.version})`, value: ms(quantile(cold, 0.5)) },
    { suite: SUITE, metric: `  baseline: node -e 0 (median of ${COLD_START_RUNS})`, value: ms(quantile(bare, 0.5)) },
  );

  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-bench-agent-'));
  const emulator = await startEmulator({ port: 0, dir: path.join(dir, 'emulator') });
  try {
    const claim = await setupFleet(emulator, dir);
    const claimFiles = { claimCertPath: claim.certPath, claimKeyPath: claim.keyPath, rootCaPath: claim.rootCaPath };

    const latencies: number[] = [];
    const peakRssKb: number[] = [];
    for (let i = 0; i < PROVISION_RUNS; i++) {
      const deviceDir = path.join(dir, `device-${i}`);
      const mac = (0x001b21000000 + i).toString(16).padStart(12, '0');
      const sysroot = await makeSysroot(path.join(deviceDir, 'root'), { nics: [{ name: 'eth0', address: mac }], defaultRoute: 'eth0' });
      const configFile = path.join(deviceDir, 'config.yaml');
      await writeFile(
        configFile,
        stringify({
          iotDataEndpoint: emulator.endpoint,
          port: emulator.port,
          templateName: TEMPLATE_NAME,
          templateParams: { DeviceId: '${deviceId}' },
          ...claimFiles,
          outputDir: path.join(deviceDir, 'out'),
        }),
      );
      const r = await timeRun(['provision', '--config', configFile], { ...process.env, FP_AGENT_SYSROOT: sysroot, FP_AGENT_REPORT_RSS: '1' });
      if (r.status !== 0) throw new Error(`bench: fp-agent provision exited ${r.status}:\n${r.stderr}`);
      latencies.push(r.ms);
      const rss = /^maxrss-kb (\d+)$/m.exec(r.stderr);
      if (rss) peakRssKb.push(Number(rss[1]));
    }
    rows.push(
      { suite: SUITE, metric: 'peak RSS of fp-agent provision (max over runs)', value: `${(Math.max(...peakRssKb) / 1024).toFixed(1)} MB` },
      { suite: SUITE, metric: `provision end to end, median of ${PROVISION_RUNS} (local emulator)`, value: ms(quantile(latencies, 0.5)) },
      { suite: SUITE, metric: `provision end to end, p95 of ${PROVISION_RUNS} (local emulator)`, value: ms(quantile(latencies, 0.95)) },
    );
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
