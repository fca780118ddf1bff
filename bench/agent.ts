// fp-agent's footprint (issue 13): bundle size, cold start against bare Node in the same run, peak
// RSS and the time of each provisioning phase against a local emulator. Every provisioning run is a
// fresh device (own MAC, so own client id and thing) doing what a device does on first boot:
// `fp-agent provision`, from process start to exit. Times on a busy machine are noisy: the table
// shows medians with their spread (p10-p90) so that a reader can tell.
import { execa } from 'execa';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmulator } from '../src/emulator/index.ts';
import { setupFleet, TEMPLATE_NAME } from '../test/helpers/emulator.ts';
import { AGENT } from '../test/helpers/run.ts';
import { makeSysroot } from '../test/agent/fixtures.ts';
import { stringifySimpleYaml } from '../src/shared/simple-yaml.ts';
import { quantile, type BenchRow } from './table.ts';

const SUITE = 'agent';
/** Issue 13: <= 300 KB; the agent aims at 270 KB to leave room for the proxy, TPM and Device Client work. */
const BUNDLE_TARGET_BYTES = 300 * 1000;
const BUNDLE_AIM_BYTES = 270 * 1000;
const RSS_TARGET_MB = 55;
const COLD_START_TARGET_RATIO = 1.15;
const COLD_START_RUNS = 30;
const PROVISION_RUNS = 30;

/** The checkpoints FP_AGENT_REPORT_PHASES prints, and what the time up to each one is spent on. */
const PHASES: Array<[string, string]> = [
  ['start', 'start-up (process start to provision: Node, bundle, config)'],
  ['identified', 'local checks and device id'],
  ['key-written', 'key pair and CSR (written 0600/0640)'],
  ['connected', 'claim connection (TCP, TLS, CONNECT)'],
  ['certificate-issued', 'CreateCertificateFromCsr'],
  ['thing-registered', 'RegisterThing'],
  ['verified', 'verification (TLS + CONNECT with the new certificate)'],
  ['results-written', 'writes: certificate, key, root CA'],
  ['committed', 'writes: state.json (the commit)'],
];

const ms = (n: number) => `${n.toFixed(n < 10 ? 1 : 0)} ms`;
const spread = (values: number[]) => `${ms(quantile(values, 0.5))} (p10 ${ms(quantile(values, 0.1))}, p90 ${ms(quantile(values, 0.9))})`;

async function timed(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; status: number | undefined; stderr: string }> {
  const start = process.hrtime.bigint();
  // Asynchronously, since the emulator serves from this very process.
  const r = await execa(file, args, { env, reject: false });
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, status: r.exitCode, stderr: String(r.stderr) };
}

/**
 * `fp-agent --version` against bare `node -e 0` with the same Node, interleaved so that load from
 * elsewhere on the machine shows in both (the agent through its shebang would find whatever
 * `node` is on PATH).
 */
async function coldStart(node: string): Promise<BenchRow[]> {
  const version = (await execa(node, ['--version'])).stdout.trim();
  const cold: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < COLD_START_RUNS; i++) {
    cold.push((await timed(node, [AGENT, '--version'], process.env)).ms);
    bare.push((await timed(node, ['-e', '0'], process.env)).ms);
  }
  const ratio = quantile(cold, 0.5) / quantile(bare, 0.5);
  return [
    { suite: SUITE, metric: `cold start, fp-agent --version (median of ${COLD_START_RUNS}, node ${version})`, value: spread(cold) },
    { suite: SUITE, metric: `  baseline: node -e 0 (median of ${COLD_START_RUNS}, node ${version})`, value: spread(bare) },
    {
      suite: SUITE,
      metric: `  cold start / baseline (medians, node ${version})`,
      value: `${ratio.toFixed(2)}x`,
      target: `<= ${COLD_START_TARGET_RATIO}x`,
      ok: ratio <= COLD_START_TARGET_RATIO,
    },
  ];
}

/**
 * What every boot after the first costs: the unit runs `provision`, which finds the identity
 * committed and exits 0. Interleaved with `node -e 0` like the cold start.
 */
async function everyLaterBoot(device: { args: string[]; env: NodeJS.ProcessEnv }): Promise<BenchRow[]> {
  const runs: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < COLD_START_RUNS; i++) {
    const r = await timed(process.execPath, device.args, device.env);
    if (r.status !== 0) throw new Error(`bench: fp-agent provision (already provisioned) exited ${r.status}:\n${r.stderr}`);
    runs.push(r.ms);
    bare.push((await timed(process.execPath, ['-e', '0'], process.env)).ms);
  }
  const ratio = quantile(runs, 0.5) / quantile(bare, 0.5);
  return [
    { suite: SUITE, metric: `every later boot: provision, already provisioned (median of ${COLD_START_RUNS})`, value: spread(runs) },
    { suite: SUITE, metric: '  the same / baseline node -e 0 (medians)', value: `${ratio.toFixed(2)}x` },
  ];
}

export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const size = (await stat(AGENT)).size;
  rows.push({
    suite: SUITE,
    metric: 'bundle size (dist/fp-agent, minified)',
    value: `${(size / 1000).toFixed(1)} KB`,
    target: `<= ${BUNDLE_TARGET_BYTES / 1000} KB (aim ${BUNDLE_AIM_BYTES / 1000})`,
    ok: size <= BUNDLE_TARGET_BYTES,
  });

  rows.push(...(await coldStart(process.execPath)));
  // The bundle also runs on Node 22 (Yocto wrynose); CI's FP_NODE22 names one (see .ci/run).
  if (process.env.FP_NODE22) rows.push(...(await coldStart(process.env.FP_NODE22)));

  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-bench-agent-'));
  const emulator = await startEmulator({ port: 0, dir: path.join(dir, 'emulator') });
  try {
    const claim = await setupFleet(emulator, dir);
    const claimFiles = { claimCertPath: claim.certPath, claimKeyPath: claim.keyPath, rootCaPath: claim.rootCaPath };

    const latencies: number[] = [];
    const peakRssKb: number[] = [];
    const phaseMs = new Map<string, number[]>(PHASES.map(([name]) => [name, []]));
    let provisioned: { args: string[]; env: NodeJS.ProcessEnv } | undefined;
    for (let i = 0; i < PROVISION_RUNS; i++) {
      const deviceDir = path.join(dir, `device-${i}`);
      const mac = (0x001b21000000 + i).toString(16).padStart(12, '0');
      const sysroot = await makeSysroot(path.join(deviceDir, 'root'), { nics: [{ name: 'eth0', address: mac }], defaultRoute: 'eth0' });
      const configFile = path.join(deviceDir, 'config.yaml');
      // Written as the layer's config recipe writes it (block mappings of JSON values).
      await writeFile(
        configFile,
        stringifySimpleYaml({
          iotDataEndpoint: emulator.endpoint,
          port: emulator.port,
          templateName: TEMPLATE_NAME,
          templateParams: { DeviceId: '${deviceId}' },
          ...claimFiles,
          outputDir: path.join(deviceDir, 'out'),
        }),
      );
      const r = await timed(process.execPath, [AGENT, 'provision', '--config', configFile], {
        ...process.env,
        FP_AGENT_SYSROOT: sysroot,
        FP_AGENT_REPORT_RSS: '1',
        FP_AGENT_REPORT_PHASES: '1',
      });
      if (r.status !== 0) throw new Error(`bench: fp-agent provision exited ${r.status}:\n${r.stderr}`);
      provisioned ??= { args: [AGENT, 'provision', '--config', configFile], env: { ...process.env, FP_AGENT_SYSROOT: sysroot } };
      latencies.push(r.ms);
      const rss = /^maxrss-kb (\d+)$/m.exec(r.stderr);
      if (rss) peakRssKb.push(Number(rss[1]));
      for (const match of r.stderr.matchAll(/^phase (\S+) ([\d.]+) /gm)) phaseMs.get(match[1]!)?.push(Number(match[2]));
    }
    const peakMb = Math.max(...peakRssKb) / 1024;
    rows.push({
      suite: SUITE,
      metric: `peak RSS of fp-agent provision (max of ${PROVISION_RUNS}; median ${(quantile(peakRssKb, 0.5) / 1024).toFixed(1)} MB)`,
      value: `${peakMb.toFixed(1)} MB`,
      target: `<= ${RSS_TARGET_MB} MB`,
      ok: peakMb <= RSS_TARGET_MB,
    });
    for (const [name, label] of PHASES) {
      rows.push({ suite: SUITE, metric: `  phase: ${label}`, value: spread(phaseMs.get(name)!) });
    }
    rows.push(
      { suite: SUITE, metric: `provision end to end, median of ${PROVISION_RUNS} (local emulator)`, value: spread(latencies) },
      { suite: SUITE, metric: `provision end to end, p95 of ${PROVISION_RUNS} (local emulator)`, value: ms(quantile(latencies, 0.95)) },
    );
    rows.push(...(await everyLaterBoot(provisioned!)));
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
