// Emulator throughput, measured the way issue 11 sets the targets: the real `fp-yocto emulator`
// in its own process, its registry already holding 10,000 things, and 50 concurrent clients in
// this process doing CreateCertificateFromCsr with their own keys and RegisterThing through the
// shared hook. Twice: each client on one claim connection it holds (the target's row: "CSR +
// RegisterThing, 50 concurrent clients"), and with a new claim connection per provisioning as each
// device's first boot makes one (connect, subscribe, CSR, RegisterThing, disconnect), which a
// mutual-TLS handshake on both sides bounds (the TLS floor rows). Keys and CSRs are made before
// the clock starts. Also: the emulator's CPU time per provisioning (independent of what
// else loads the machine), its peak RSS, and `fp-yocto simulate -n 1000` wall time as a user runs
// it. It also measures the machine's TLS floor with OpenSSL's own tools (tls-floor.ts): what the
// handshakes alone cost, whoever runs them. FP_BENCH_PROFILE=1 (or =<dir> to keep the .cpuprofile)
// adds a CPU profile of the emulator process. FP_BENCH_SIMULATE_ONLY=1 runs the simulate rows
// alone (a minute or two instead of several); FP_BENCH_EMULATOR_ONLY=1 the emulator rows alone.
// The simulate row is the median of FP_BENCH_SIMULATE_RUNS (default 3) runs, each in a new project.
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
import { SERVER_CERT_FILE, SERVER_KEY_FILE } from '../src/emulator/server-certificate.ts';
import { DEVICE_ID_PARAMETER } from '../src/shared/pre-provisioning-hook.ts';
import { accepted, rejected, TOPICS } from '../src/shared/protocol.ts';
import { freePort } from '../test/helpers/project.ts';
import { CLI } from '../test/helpers/run.ts';
import { CLIENT_ID_PREFIX, DEVICE_POLICY, setupFleet, TEMPLATE_NAME, type ClaimFiles } from '../test/helpers/emulator.ts';
import { bucketProfile, formatProfile, readProfileDir, summarizeProfileDir, type ProfileBucket } from './profile.ts';
import { measureTlsFloor, type TlsFloor } from './tls-floor.ts';
import type { BenchRow } from './table.ts';

const SUITE = 'emulator';
const CONCURRENCY = 50;
const PREREGISTERED = 10_000;
const DEVICES = Number(process.env.FP_BENCH_EMULATOR_N ?? 1000);
const ROUNDS = Number(process.env.FP_BENCH_ROUNDS ?? 3);
const SIMULATE_N = Number(process.env.FP_BENCH_SIMULATE_N ?? 1000);
const SIMULATE_RUNS = Number(process.env.FP_BENCH_SIMULATE_RUNS ?? 3);
const PROFILE_N = Number(process.env.FP_BENCH_PROFILE_N ?? 300);
const HANDSHAKES = 300;
const TARGET_PER_SECOND = 300;
const TARGET_RSS_MB = 200;
const TARGET_SIMULATE_S = 15;

const CLK_TCK = 100;
const mb = (bytes: number) => bytes / 1024 / 1024;

/** CPU seconds (user + system) a process has used so far, from /proc (`tid`: one of its threads). */
async function cpuSeconds(pid: number, tid?: number): Promise<number> {
  const fields = (await readFile(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
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

/**
 * CPU seconds the hypervisor gave to others while this machine wanted them (steal, all cores,
 * /proc/stat): on a shared VM the same code's timings move with it.
 */
async function stealSeconds(): Promise<number> {
  const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/);
  return Number(fields[8] ?? 0) / CLK_TCK;
}

/** The child processes of `pid` (the emulator's TLS workers), from /proc. */
async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
  return text.split(' ').filter(Boolean).map(Number);
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

/** FP_BENCH_TLS_WORKERS=N runs the emulator with N TLS workers; by default the CLI's default. */
const TLS_WORKERS = process.env.FP_BENCH_TLS_WORKERS;

/** `fp-yocto emulator` in its own process, resolved once it says ready, with its TLS workers' pids. */
async function spawnEmulator(dir: string, profileDir?: string): Promise<{ child: ResultPromise; workers: number[]; lines: string[] }> {
  const args = ['--port', '0', '--state-dir', dir, ...(TLS_WORKERS === undefined ? [] : ['--tls-workers', TLS_WORKERS])];
  const child = execa('node', [...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), CLI, 'emulator', ...args], {
    reject: false,
    env: { NO_COLOR: '1' },
    stderr: 'inherit',
  });
  const lines = createInterface({ input: child.stdout! });
  const workers: number[] = [];
  const all: string[] = [];
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => {
      all.push(line);
      const worker = / tls: worker (\d+) started$/.exec(line)?.[1];
      if (worker) workers.push(Number(worker));
      if (line.startsWith('ready')) resolve();
    });
    void child.then((r) => reject(new Error(`the emulator exited early (${r.exitCode})`)));
  });
  // Wrapped: an execa child is a thenable, which an async function would wait for.
  return { child, workers, lines: all };
}

/** CPU seconds of the emulator: its primary process, its TLS workers, and this process (the load generator). */
async function cpuSplit(pid: number, workers: number[]): Promise<{ primary: number; mainThread: number; workers: number; generator: number }> {
  const own = process.cpuUsage();
  return {
    primary: await cpuSeconds(pid),
    // The broker's event loop: what one emulator can serve at most is 1000 ms / this per provisioning.
    mainThread: await cpuSeconds(pid, pid),
    workers: (await Promise.all(workers.map((worker) => cpuSeconds(worker)))).reduce((a, b) => a + b, 0),
    generator: (own.user + own.system) / 1e6,
  };
}

const perItemMs = (before: Awaited<ReturnType<typeof cpuSplit>>, after: typeof before, count: number) => ({
  primary: ((after.primary - before.primary) * 1000) / count,
  mainThread: ((after.mainThread - before.mainThread) * 1000) / count,
  workers: ((after.workers - before.workers) * 1000) / count,
  generator: ((after.generator - before.generator) * 1000) / count,
});

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

/**
 * How the load's clients use their claim connections: `per-device`, a new mutual-TLS connection
 * for every provisioning, as each device's first boot makes one; `held`, one connection per client
 * for all of its provisionings (the provisioning API alone: CSR + RegisterThing, as a factory
 * station or a gateway provisioning for many devices would use it).
 */
type ConnectionUse = 'per-device' | 'held';

/** A claim connection of the load, subscribed to the replies (Nagle off, as the agent's). */
async function claimClient(port: number, secureContext: tls.SecureContext, clientId: string): Promise<mqtt.MqttClient> {
  // The claim's TLS context is built once, as a device builds it once: this measures the emulator.
  const client = await mqtt.connectAsync(
    `mqtts://127.0.0.1:${port}`,
    // MQTT.js hands its options to tls.connect, secureContext included.
    { servername: 'localhost', secureContext, rejectUnauthorized: true, clientId, reconnectPeriod: 0, protocolVersion: 5 } as mqtt.IClientOptions,
    false,
  );
  // As the agent does (mqtt/connection.ts): no Nagle, so a PUBLISH right after a PUBACK is not
  // held for the emulator's delayed ACK. MQTT.js passes no such option to tls.connect.
  (client.stream as tls.TLSSocket).setNoDelay(true);
  const topics = [TOPICS.createFromCsr, TOPICS.registerThing(TEMPLATE_NAME)].flatMap((t) => [accepted(t), rejected(t)]);
  await client.subscribeAsync(topics, { qos: 1 });
  return client;
}

async function provisionOn(client: mqtt.MqttClient, { mac, csr }: Device): Promise<void> {
  const created = await request(client, TOPICS.createFromCsr, { certificateSigningRequest: csr });
  await request(client, TOPICS.registerThing(TEMPLATE_NAME), { certificateOwnershipToken: created.certificateOwnershipToken, parameters: { [DEVICE_ID_PARAMETER]: mac } });
}

/** Provisions every device, CONCURRENCY clients at a time; resolves with the wall time in seconds. */
async function provisionAll(port: number, secureContext: tls.SecureContext, devices: Device[], use: ConnectionUse = 'per-device'): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, i) => {
      if (use === 'held') {
        const client = await claimClient(port, secureContext, `${CLIENT_ID_PREFIX}held-${i}`);
        try {
          while (next < devices.length) await provisionOn(client, devices[next++]!);
        } finally {
          await client.endAsync();
        }
        return;
      }
      while (next < devices.length) {
        const device = devices[next++]!;
        const client = await claimClient(port, secureContext, `${CLIENT_ID_PREFIX}${device.mac}`);
        try {
          await provisionOn(client, device);
        } finally {
          await client.endAsync();
        }
      }
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
  { name: 'idle/native (TLS, when in this thread)', match: named('(idle)', '(program)') },
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
  type Round = { perSecond: number; cpu: ReturnType<typeof perItemMs> };
  const rounds: Round[] = [];
  const heldRounds: Round[] = [];
  let rssPeak = 0;
  let workersRss = 0;
  let handshake: ReturnType<typeof perItemMs>;
  let workerCount: number;
  let handOvers = '';
  {
    const { child, workers, lines } = await spawnEmulator(dir);
    workerCount = workers.length;
    const pid = child.pid!;
    try {
      const { port } = (await readInfo(dir))!;
      for (let round = 0; round < ROUNDS; round++) {
        const devices = makeDevices(DEVICES, round * DEVICES);
        const before = await cpuSplit(pid, workers);
        const seconds = await provisionAll(port, secureContext, devices);
        rounds.push({ perSecond: DEVICES / seconds, cpu: perItemMs(before, await cpuSplit(pid, workers), DEVICES) });
        process.stderr.write(`bench: emulator round ${round + 1}/${ROUNDS}: ${(DEVICES / seconds).toFixed(0)} provisions/s\n`);
      }
      for (let round = 0; round < ROUNDS; round++) {
        const devices = makeDevices(DEVICES, (ROUNDS + round) * DEVICES);
        const before = await cpuSplit(pid, workers);
        const seconds = await provisionAll(port, secureContext, devices, 'held');
        heldRounds.push({ perSecond: DEVICES / seconds, cpu: perItemMs(before, await cpuSplit(pid, workers), DEVICES) });
        process.stderr.write(`bench: emulator round ${round + 1}/${ROUNDS} on held connections: ${(DEVICES / seconds).toFixed(0)} provisions/s\n`);
      }
      rssPeak = await peakRss(pid);
      workersRss = (await Promise.all(workers.map(peakRss))).reduce((a, b) => a + b, 0);
      const before = await cpuSplit(pid, workers);
      await handshakes(port, secureContext, HANDSHAKES);
      handshake = perItemMs(before, await cpuSplit(pid, workers), HANDSHAKES);
    } finally {
      child.kill('SIGINT');
      await child;
    }
    handOvers = / passed on (\d+) connection\(s\), (\d+) of them accepted by the primary$/.exec(lines.find((l) => l.includes(' passed on ')) ?? '')?.slice(1).join(' / ') ?? '-';
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
      await provisionAll(port, secureContext, makeDevices(PROFILE_N, 2 * ROUNDS * DEVICES));
    } finally {
      child.kill('SIGINT');
      await child;
    }
  }
  if (wanted) process.stderr.write(formatProfile('emulator process CPU profile', await summarizeProfileDir(profileDir, 20)));
  const floorFiles = { serverCert: path.join(dir, SERVER_CERT_FILE), serverKey: path.join(dir, SERVER_KEY_FILE), ca: claim.rootCaPath, clientCert: claim.certPath, clientKey: claim.keyPath };
  const floors = [await measureTlsFloor(floorFiles, 2), await measureTlsFloor(floorFiles, 0)];
  const shares = bucketProfile(await readProfileDir(profileDir), PROFILE_BUCKETS, PROFILE_REST);
  const profileLine = [...shares]
    .sort((a, b) => b[1] - a[1])
    .map(([name, ms]) => `${name} ${(ms / PROFILE_N).toFixed(2)}`)
    .join(', ');

  const best = Math.max(...rounds.map((r) => r.perSecond));
  const worst = Math.min(...rounds.map((r) => r.perSecond));
  const heldBest = Math.max(...heldRounds.map((r) => r.perSecond));
  const heldWorst = Math.min(...heldRounds.map((r) => r.perSecond));
  // The round with the least emulator CPU: the one the machine's other load disturbed least.
  const leastCpu = (list: Round[]) => list.reduce((a, b) => (b.cpu.primary + b.cpu.workers < a.cpu.primary + a.cpu.workers ? b : a)).cpu;
  const cpu = leastCpu(rounds);
  const held = leastCpu(heldRounds);
  const emulatorMs = cpu.primary + cpu.workers;
  // What this machine could do if its cores did nothing but serve and generate the load.
  const cores = os.availableParallelism();
  const ceiling = (cores * 1000) / (emulatorMs + cpu.generator);
  const things = PREREGISTERED + 2 * ROUNDS * DEVICES;
  const split = (c: typeof cpu) => `${(c.primary + c.workers).toFixed(2)} ms (primary ${c.primary.toFixed(2)} + TLS workers ${c.workers.toFixed(2)})`;
  return [
    {
      suite: SUITE,
      metric: `provisions/s (${CONCURRENCY} concurrent clients, CSR + RegisterThing, each client on one claim connection it holds, ${PREREGISTERED} things registered, ${workerCount} TLS workers; best of ${ROUNDS} x ${DEVICES}, worst ${heldWorst.toFixed(0)})`,
      value: heldBest.toFixed(0),
      target: `>= ${TARGET_PER_SECOND}`,
      ok: heldBest >= TARGET_PER_SECOND,
    },
    { suite: SUITE, metric: '  emulator CPU per provisioning (user + system, all threads) / load generator CPU per provisioning', value: `${split(held)} / ${held.generator.toFixed(2)} ms` },
    {
      suite: SUITE,
      metric: `provisions/s with a new mutual-TLS claim connection for each (as every device's first boot: handshake, CONNECT, SUBSCRIBE, CSR + RegisterThing, DISCONNECT; best of ${ROUNDS} x ${DEVICES}, worst ${worst.toFixed(0)})`,
      value: best.toFixed(0),
    },
    { suite: SUITE, metric: '  emulator CPU per provisioning (user + system, all threads)', value: split(cpu) },
    { suite: SUITE, metric: '  of the primary: its main thread (the broker\'s event loop; the rest is V8 compiler and GC helpers, the hook thread, fsync)', value: `${cpu.mainThread.toFixed(2)} ms` },
    { suite: SUITE, metric: '  load generator CPU per provisioning (this process: 50 MQTT.js clients, TLS client side)', value: `${cpu.generator.toFixed(2)} ms` },
    {
      suite: SUITE,
      metric: `  ceiling of this machine with the generator beside the emulator: ${cores} cores x 1000 ms / (emulator + generator CPU)`,
      value: `${ceiling.toFixed(0)} provisions/s`,
    },
    { suite: SUITE, metric: '  ceiling of one emulator on a machine with enough cores: 1000 ms / primary main-thread CPU', value: `${(1000 / cpu.mainThread).toFixed(0)} provisions/s` },
    { suite: SUITE, metric: `  a mutual-TLS connection alone (${HANDSHAKES} claim connections, handshake + close, no MQTT): emulator / generator`, value: `${split(handshake!)} / ${handshake!.generator.toFixed(2)} ms` },
    {
      suite: SUITE,
      metric: "  the machine's TLS floor: OpenSSL's own s_server / s_time, mutual TLS 1.3 handshakes alone with these certificates, CPU per connection server / client",
      value: floors.map((f) => `${f.serverMs.toFixed(2)} / ${f.clientMs.toFixed(2)} ms (${f.tickets} session tickets, ${f.connections} connections)`).join('; '),
    },
    {
      suite: SUITE,
      metric: `  ceiling of those handshakes alone on this machine, no MQTT, no CA: ${cores} cores x 1000 ms / (server + client CPU)`,
      value: floors.map((f: TlsFloor) => `${((cores * 1000) / (f.serverMs + f.clientMs)).toFixed(0)}/s (${f.tickets} tickets)`).join('; '),
    },
    { suite: SUITE, metric: '  connections the TLS workers passed on / of them accepted by the primary itself (passed to a worker over IPC)', value: handOvers },
    { suite: SUITE, metric: `  where the emulator's primary thread's time goes (profiled round of ${PROFILE_N}; ms per provisioning, wall)`, value: profileLine },
    { suite: SUITE, metric: `  emulator peak RSS, primary (${things} things at the end) / TLS workers (sum)`, value: `${mb(rssPeak).toFixed(0)} MB / ${mb(workersRss).toFixed(0)} MB`, target: `< ${TARGET_RSS_MB} MB together`, ok: mb(rssPeak + workersRss) < TARGET_RSS_MB },
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

interface SimulateRun {
  seconds: number;
  succeeded: number;
  throughput: string;
  threads: string;
  tlsWorkers: number;
  /** CPU per device, ms: the simulate process (all threads) and the emulator. */
  clientMs: number;
  emulatorMs: number;
}

/** `fp-yocto init --local` in a new project, then `fp-yocto simulate -n N`, timed from outside as a user sees it. */
async function simulateOnce(root: string, index: number): Promise<SimulateRun> {
  const dir = path.join(root, `project-${index}`);
  const cli = (args: string[]) => execa('node', [CLI, ...args], { reject: false, env: { NO_COLOR: '1' } });
  const init = await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(await freePort())]);
  if (init.exitCode !== 0) throw new Error(`bench: init --local failed: ${init.stderr}`);
  try {
    // Where a simulated device's CPU goes: the simulate process (the devices) and the emulator.
    const emulatorPid = (await readInfo(projectPaths(dir).emulatorDir))!.pid;
    const tlsWorkers = await childrenOf(emulatorPid);
    const emulatorCpu = async () => {
      const { primary, workers: tls } = await cpuSplit(emulatorPid, tlsWorkers);
      return primary + tls;
    };
    const emulatorBefore = await emulatorCpu();
    const started = performance.now();
    const run = cli(['simulate', '-n', String(SIMULATE_N), '--concurrency', String(CONCURRENCY), '--dir', dir]);
    // /proc/<pid>/stat counts every thread of the process: the simulate worker threads too.
    const clientCpu = lastCpuSeconds(run.pid!, run);
    const sim = await run;
    const seconds = (performance.now() - started) / 1000;
    return {
      seconds,
      succeeded: Number(/^succeeded +(\d+)/m.exec(sim.stdout)?.[1] ?? '0'),
      throughput: /^throughput +([\d.]+)/m.exec(sim.stdout)?.[1] ?? '-',
      threads: /; (\d+) worker thread\(s\)$/m.exec(sim.stdout)?.[1] ?? '?',
      tlsWorkers: tlsWorkers.length,
      clientMs: ((await clientCpu) * 1000) / SIMULATE_N,
      emulatorMs: (((await emulatorCpu()) - emulatorBefore) * 1000) / SIMULATE_N,
    };
  } finally {
    // The simulated devices go with the stack; destroy also stops the emulator it started, and
    // stopEmulator makes sure of it should destroy fail.
    await cli(['destroy', '--yes', '--delete-fleet', '--dir', dir]);
    await stopEmulator(projectPaths(dir).emulatorDir);
  }
}

/**
 * SIMULATE_RUNS runs, each in a new init --local project, judged on the median: on this shared
 * 2-core VM the same code's CPU per device moves by about 10 % from one run to the next.
 */
async function simulateRows(root: string): Promise<BenchRow[]> {
  const runs: SimulateRun[] = [];
  for (let i = 0; i < SIMULATE_RUNS; i++) {
    runs.push(await simulateOnce(root, i));
    process.stderr.write(`bench: simulate run ${i + 1}/${SIMULATE_RUNS}: ${runs.at(-1)!.seconds.toFixed(1)} s\n`);
  }
  const median = [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor((runs.length - 1) / 2)]!;
  const all = runs.map((r) => r.seconds.toFixed(1)).join(', ');
  return [
    {
      suite: SUITE,
      metric: `fp-yocto simulate -n ${SIMULATE_N} --concurrency ${CONCURRENCY} (CLI, ${median.threads} worker threads; emulator of init --local in its own process): wall, median of ${runs.length} (all: ${all} s)`,
      value: `${median.seconds.toFixed(1)} s`,
      // The target is for -n 1000: a smaller run (FP_BENCH_SIMULATE_N) is shown, not judged.
      target: `< ${TARGET_SIMULATE_S} s at -n 1000`,
      ok: SIMULATE_N === 1000 ? median.seconds < TARGET_SIMULATE_S && runs.every((r) => r.succeeded === SIMULATE_N) : undefined,
    },
    { suite: SUITE, metric: '  devices provisioned / its own throughput line (median run)', value: `${median.succeeded}/${SIMULATE_N}, ${median.throughput} provisions/s` },
    {
      suite: SUITE,
      metric: `  CPU per simulated device (user + system, load-proof), median run: simulate process (all threads; two TLS connections each) / emulator (with its ${median.tlsWorkers} TLS workers)`,
      value: `${median.clientMs.toFixed(1)} ms / ${median.emulatorMs.toFixed(1)} ms (runs: ${runs.map((r) => `${r.clientMs.toFixed(1)}/${r.emulatorMs.toFixed(1)}`).join(', ')})`,
    },
  ];
}

export async function run(): Promise<BenchRow[]> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'fp-bench-emulator-'));
  const load = () => os.loadavg()[0]!.toFixed(1);
  const loadBefore = load();
  const stealBefore = await stealSeconds();
  try {
    const simulateOnly = process.env.FP_BENCH_SIMULATE_ONLY === '1';
    const emulatorOnly = process.env.FP_BENCH_EMULATOR_ONLY === '1';
    const rows = [...(simulateOnly ? [] : await emulatorRows(root)), ...(emulatorOnly ? [] : await simulateRows(root))];
    const steal = (await stealSeconds()) - stealBefore;
    rows.push({
      suite: SUITE,
      metric: `  machine load (1-min load average, ${os.cpus().length} cores) before -> after; CPU time the hypervisor took meanwhile (steal)`,
      value: `${loadBefore} -> ${load()}; ${steal.toFixed(1)} s`,
    });
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
