// Emulator throughput, measured the way issue 11 sets the targets: the real `fp-yocto emulator`
// in its own process, its registry already holding 10,000 things, and 50 concurrent clients in
// this process each doing what the agent does (connect with the claim, CreateCertificateFromCsr
// with its own key, RegisterThing through the shared hook, disconnect). Keys and CSRs are made
// before the clock starts. Also: the emulator's CPU time per provisioning (independent of what
// else loads the machine), its peak RSS, and `fp-yocto simulate -n 1000` wall time as a user runs
// it. FP_BENCH_PROFILE=1 (or =<dir> to keep the .cpuprofile) adds a CPU profile of the emulator process.
// FP_BENCH_SIMULATE_ONLY=1 runs the simulate rows alone (a minute instead of several).
import { execa, type ResultPromise } from 'execa';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import mqtt from 'mqtt';
import { createCsr } from '../src/agent/csr.ts';
import { projectPaths } from '../src/cloud/project.ts';
import { readInfo, stopEmulator } from '../src/emulator/discovery.ts';
import { startEmulator } from '../src/emulator/index.ts';
import { Registry } from '../src/emulator/registry.ts';
import { DEVICE_ID_PARAMETER } from '../src/shared/pre-provisioning-hook.ts';
import { accepted, rejected, TOPICS } from '../src/shared/protocol.ts';
import { freePort } from '../test/helpers/project.ts';
import { CLI } from '../test/helpers/run.ts';
import { CLIENT_ID_PREFIX, DEVICE_POLICY, setupFleet, TEMPLATE_NAME, type ClaimFiles } from '../test/helpers/emulator.ts';
import { bucketProfile, formatProfile, readProfileDir, summarizeProfileDir, type ProfileBucket } from './profile.ts';
import type { BenchRow } from './table.ts';

const SUITE = 'emulator';
const CONCURRENCY = 50;
const PREREGISTERED = 10_000;
const DEVICES = Number(process.env.FP_BENCH_EMULATOR_N ?? 1000);
const ROUNDS = Number(process.env.FP_BENCH_ROUNDS ?? 3);
const SIMULATE_N = Number(process.env.FP_BENCH_SIMULATE_N ?? 1000);
const PROFILE_N = Number(process.env.FP_BENCH_PROFILE_N ?? 300);
const HANDSHAKES = 300;
const TARGET_PER_SECOND = 300;
const TARGET_RSS_MB = 200;
const TARGET_SIMULATE_S = 15;

const CLK_TCK = 100;
const mb = (bytes: number) => bytes / 1024 / 1024;

/** CPU seconds (user + system) a process has used so far, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/**
 * The CPU seconds a child has used when it ends: /proc is gone once it exits, so this samples
 * it while it runs (every 100 ms; the last sample is at most that short of the total).
 */
async function lastCpuSeconds(pid: number, exited: PromiseLike<unknown>): Promise<number> {
  let last = 0;
  let done = false;
  void Promise.resolve(exited).finally(() => (done = true));
  while (!done) {
    last = await cpuSeconds(pid).catch(() => last);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return last;
}

/** Peak resident memory of a process so far (VmHWM), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const kb = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/** Fills the registry with things as fleet provisioning leaves them: one ACTIVE certificate each. */
async function preregister(dir: string, count: number, certificatePem: string): Promise<void> {
  const registry = Registry.open(dir);
  try {
    await registry.write((tx) => {
      for (let i = 0; i < count; i++) {
        const certificateId = createHash('sha256').update(`bench-${i}`).digest('hex');
        tx.putCertificate({ certificateId, certificatePem, status: 'ACTIVE', creationDate: new Date().toISOString(), notAfter: '2049-12-31T00:00:00.000Z' });
        tx.attachPolicy(certificateId, DEVICE_POLICY);
        tx.putThing({ thingName: `fp-bench-${i}`, attributes: { deviceId: `bench-${i}` }, thingGroups: [], principals: [certificateId] });
      }
    });
  } finally {
    await registry.close();
  }
}

/** `fp-yocto emulator` in its own process, resolved once it says ready. */
async function spawnEmulator(dir: string, profileDir?: string): Promise<{ child: ResultPromise }> {
  const child = execa('node', [...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), CLI, 'emulator', '--port', '0', '--state-dir', dir], {
    reject: false,
    env: { NO_COLOR: '1' },
    stderr: 'inherit',
  });
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => line.startsWith('ready') && resolve());
    void child.then((r) => reject(new Error(`the emulator exited early (${r.exitCode})`)));
  });
  // Wrapped: an execa child is a thenable, which an async function would wait for.
  return { child };
}

interface Device {
  mac: string;
  csr: string;
}

function makeDevices(count: number, offset: number): Device[] {
  return Array.from({ length: count }, (_, i) => {
    const mac = (0x020000000000 + offset + i).toString(16).padStart(12, '0');
    return { mac, csr: createCsr(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, mac) };
  });
}

function request(client: mqtt.MqttClient, topic: string, body: unknown): Promise<Record<string, unknown>> {
  const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== accepted(topic) && t !== rejected(topic)) return;
      client.off('message', onMessage);
      const parsed = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (t === rejected(topic)) reject(new Error(`${topic}: ${String(parsed.errorMessage)}`));
      else resolve(parsed);
    };
    client.on('message', onMessage);
  });
  client.publish(topic, JSON.stringify(body), { qos: 1 });
  return reply;
}

/** Provisions every device, CONCURRENCY at a time; resolves with the wall time in seconds. */
async function provisionAll(port: number, secureContext: tls.SecureContext, devices: Device[]): Promise<number> {
  const topics = [TOPICS.createFromCsr, TOPICS.registerThing(TEMPLATE_NAME)].flatMap((t) => [accepted(t), rejected(t)]);
  const one = async ({ mac, csr }: Device) => {
    // The claim's TLS context is built once, as a device builds it once: this measures the emulator.
    const client = await mqtt.connectAsync(
      `mqtts://127.0.0.1:${port}`,
      // MQTT.js hands its options to tls.connect, secureContext included.
      { servername: 'localhost', secureContext, rejectUnauthorized: true, clientId: `${CLIENT_ID_PREFIX}${mac}`, reconnectPeriod: 0, protocolVersion: 5 } as mqtt.IClientOptions,
      false,
    );
    try {
      await client.subscribeAsync(topics, { qos: 1 });
      const created = await request(client, TOPICS.createFromCsr, { certificateSigningRequest: csr });
      await request(client, TOPICS.registerThing(TEMPLATE_NAME), { certificateOwnershipToken: created.certificateOwnershipToken, parameters: { [DEVICE_ID_PARAMETER]: mac } });
    } finally {
      await client.endAsync();
    }
  };
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < devices.length) await one(devices[next++]!);
    }),
  );
  return (performance.now() - started) / 1000;
}

/**
 * Where the emulator thread's time goes, by part: each sample of the profile goes to the
 * innermost frame a rule names (bench/profile.ts). Names are those esbuild keeps in dist/.
 */
const ours = (f: { url: string }) => f.url.includes('/dist/');
const named = (...names: string[]) => (f: { functionName: string; url: string }) => names.includes(f.functionName);
const PROFILE_BUCKETS: ProfileBucket[] = [
  { name: 'SQLite + WAL fsync', match: (f) => f.url.includes('better-sqlite3') || (ours(f) && ['#commit', '#syncWal', '#begin'].includes(f.functionName)) || f.functionName === 'fsync' },
  { name: 'CSR check + signing', match: (f) => ours(f) && ['checkCsr', 'issueClient', 'issueFromCsr'].includes(f.functionName) },
  { name: 'policy checks', match: (f) => ours(f) && ['#allowed', 'isAllowed', '#statements'].includes(f.functionName) },
  { name: 'template', match: (f) => ours(f) && ['evaluateTemplate', 'parseTemplate'].includes(f.functionName) },
  { name: 'hook messages', match: named('postMessage') },
  { name: 'log', match: (f) => f.url.includes('log-writer') },
  { name: 'GC', match: named('(garbage collector)') },
  { name: 'idle/native (TLS handshakes)', match: named('(idle)', '(program)') },
];
const PROFILE_REST = 'MQTT, sockets, node';

async function emulatorRows(root: string): Promise<BenchRow[]> {
  const dir = path.join(root, 'state');
  const setup = await startEmulator({ port: 0, dir });
  let claim: ClaimFiles;
  try {
    claim = await setupFleet(setup, root);
  } finally {
    await setup.close();
  }
  await preregister(dir, PREREGISTERED, claim.certPem);
  const secureContext = tls.createSecureContext({ ca: await readFile(claim.rootCaPath), cert: claim.certPem, key: claim.keyPem });
  const rounds: Array<{ perSecond: number; cpuMs: number }> = [];
  let rssPeak = 0;
  let handshakeMs = 0;
  {
    const { child } = await spawnEmulator(dir);
    const pid = child.pid!;
    try {
      const { port } = (await readInfo(dir))!;
      for (let round = 0; round < ROUNDS; round++) {
        const devices = makeDevices(DEVICES, round * DEVICES);
        const cpuBefore = await cpuSeconds(pid);
        const seconds = await provisionAll(port, secureContext, devices);
        rounds.push({ perSecond: DEVICES / seconds, cpuMs: ((await cpuSeconds(pid)) - cpuBefore) * 1000 / DEVICES });
        process.stderr.write(`bench: emulator round ${round + 1}/${ROUNDS}: ${(DEVICES / seconds).toFixed(0)} provisions/s\n`);
      }
      rssPeak = await peakRss(pid);
      const cpuBefore = await cpuSeconds(pid);
      await handshakes(port, secureContext, HANDSHAKES);
      handshakeMs = ((await cpuSeconds(pid)) - cpuBefore) * 1000 / HANDSHAKES;
    } finally {
      child.kill('SIGINT');
      await child;
    }
  }

  // One more round under the profiler, apart from the measured ones (profiling slows it down).
  // FP_BENCH_PROFILE=<dir> keeps the .cpuprofile there (Chrome DevTools opens it); =1 (or any)
  // also prints the functions by self and inclusive time.
  const wanted = process.env.FP_BENCH_PROFILE;
  const profileDir = wanted && wanted !== '1' ? path.resolve(wanted) : path.join(root, 'profile');
  {
    const { child } = await spawnEmulator(dir, profileDir);
    try {
      const { port } = (await readInfo(dir))!;
      await provisionAll(port, secureContext, makeDevices(PROFILE_N, ROUNDS * DEVICES));
    } finally {
      child.kill('SIGINT');
      await child;
    }
  }
  if (wanted) process.stderr.write(formatProfile('emulator process CPU profile', await summarizeProfileDir(profileDir, 20)));
  const shares = bucketProfile(await readProfileDir(profileDir), PROFILE_BUCKETS, PROFILE_REST);
  const profileLine = [...shares]
    .sort((a, b) => b[1] - a[1])
    .map(([name, ms]) => `${name} ${(ms / PROFILE_N).toFixed(2)}`)
    .join(', ');

  const best = Math.max(...rounds.map((r) => r.perSecond));
  const worst = Math.min(...rounds.map((r) => r.perSecond));
  const cpuMs = Math.min(...rounds.map((r) => r.cpuMs));
  const things = PREREGISTERED + ROUNDS * DEVICES;
  return [
    {
      suite: SUITE,
      metric: `provisions/s (${CONCURRENCY} concurrent clients, CSR + RegisterThing, ${PREREGISTERED} things registered; best of ${ROUNDS} x ${DEVICES}, worst ${worst.toFixed(0)})`,
      value: best.toFixed(0),
      target: `>= ${TARGET_PER_SECOND}`,
      ok: best >= TARGET_PER_SECOND,
    },
    { suite: SUITE, metric: '  emulator CPU per provisioning (user + system; 1000 / this = provisions/s one core can serve)', value: `${cpuMs.toFixed(2)} ms` },
    { suite: SUITE, metric: `  of which a mutual-TLS connection alone (${HANDSHAKES} claim connections, handshake + close, no MQTT)`, value: `${handshakeMs.toFixed(2)} ms` },
    { suite: SUITE, metric: `  where the emulator thread's time goes (profiled round of ${PROFILE_N}; ms per provisioning, wall)`, value: profileLine },
    { suite: SUITE, metric: `  emulator peak RSS (${things} things at the end)`, value: `${mb(rssPeak).toFixed(0)} MB`, target: `< ${TARGET_RSS_MB} MB`, ok: mb(rssPeak) < TARGET_RSS_MB },
  ];
}

/** `count` claim connections, 10 at a time: TLS handshake, then close, no MQTT. */
async function handshakes(port: number, secureContext: tls.SecureContext, count: number): Promise<void> {
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', secureContext, rejectUnauthorized: true }, () => socket.end());
      socket.on('error', reject);
      socket.on('close', () => resolve());
      socket.resume();
    });
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (next++ < count) await one();
  }));
}

/** `fp-yocto init --local`, then `fp-yocto simulate -n N`, timed from outside as a user sees it. */
async function simulateRows(root: string): Promise<BenchRow[]> {
  const dir = path.join(root, 'project');
  const cli = (args: string[]) => execa('node', [CLI, ...args], { reject: false, env: { NO_COLOR: '1' } });
  const init = await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(await freePort())]);
  if (init.exitCode !== 0) throw new Error(`bench: init --local failed: ${init.stderr}`);
  try {
    // Where a simulated device's CPU goes: the simulate process (the devices) and the emulator.
    const emulatorPid = (await readInfo(projectPaths(dir).emulatorDir))!.pid;
    const emulatorBefore = await cpuSeconds(emulatorPid);
    const started = performance.now();
    const run = cli(['simulate', '-n', String(SIMULATE_N), '--concurrency', String(CONCURRENCY), '--dir', dir]);
    // /proc/<pid>/stat counts every thread of the process: the simulate worker threads too.
    const clientCpu = lastCpuSeconds(run.pid!, run);
    const sim = await run;
    const seconds = (performance.now() - started) / 1000;
    const emulatorMs = ((await cpuSeconds(emulatorPid)) - emulatorBefore) * 1000 / SIMULATE_N;
    const clientMs = ((await clientCpu) * 1000) / SIMULATE_N;
    const succeeded = /^succeeded +(\d+)/m.exec(sim.stdout)?.[1] ?? '0';
    const throughput = /^throughput +([\d.]+)/m.exec(sim.stdout)?.[1] ?? '-';
    const workers = /; (\d+) worker thread\(s\)$/m.exec(sim.stdout)?.[1] ?? '?';
    return [
      {
        suite: SUITE,
        metric: `fp-yocto simulate -n ${SIMULATE_N} --concurrency ${CONCURRENCY} (CLI, ${workers} worker threads; emulator of init --local in its own process): wall`,
        value: `${seconds.toFixed(1)} s`,
        target: `< ${TARGET_SIMULATE_S} s`,
        ok: seconds < TARGET_SIMULATE_S && Number(succeeded) === SIMULATE_N,
      },
      { suite: SUITE, metric: '  devices provisioned / its own throughput line', value: `${succeeded}/${SIMULATE_N}, ${throughput} provisions/s` },
      {
        suite: SUITE,
        metric: '  CPU per simulated device (user + system, load-proof): simulate process (all threads; two TLS connections each) / emulator',
        value: `${clientMs.toFixed(1)} ms / ${emulatorMs.toFixed(1)} ms`,
      },
    ];
  } finally {
    // The simulated devices go with the stack; destroy also stops the emulator it started, and
    // stopEmulator makes sure of it should destroy fail.
    await cli(['destroy', '--yes', '--delete-fleet', '--dir', dir]);
    await stopEmulator(projectPaths(dir).emulatorDir);
  }
}

export async function run(): Promise<BenchRow[]> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'fp-bench-emulator-'));
  const load = () => os.loadavg()[0]!.toFixed(1);
  const loadBefore = load();
  try {
    const only = process.env.FP_BENCH_SIMULATE_ONLY === '1';
    const rows = [...(only ? [] : await emulatorRows(root)), ...(await simulateRows(root))];
    rows.push({ suite: SUITE, metric: `  machine load (1-min load average, ${os.cpus().length} cores) before -> after`, value: `${loadBefore} -> ${load()}` });
    return rows;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

// `tsx bench/emulator.ts` runs this suite alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { printTable } = await import('./table.ts');
  printTable(await run());
}
