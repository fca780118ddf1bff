import { defineCommand } from 'citty';
import path from 'node:path';
import pc from 'picocolors';
import { EXIT, UserError } from '../../shared/errors.ts';

const DESCRIPTION = `Provision N simulated devices at once, to see how the fleet setup copes with load.

Each device runs the real agent flow (key pair and CSR, CreateCertificateFromCsr,
RegisterThing through the pre-provisioning hook, a check of the new certificate) with
its own MAC-shaped id (a random locally administered prefix per run, so reruns never
collide), on worker threads of this process (one per core by default, one core left to
the local emulator; see --workers),
which share the claim loaded once. It uses the project that \`fp-yocto init\` set up:
its claim files, template and endpoint, on AWS or on the local emulator (started if it
is not running).
Throttling (429) and other transient faults are retried with backoff, as on a device.

  fp-yocto init --local --yes && fp-yocto simulate -n 100
  fp-yocto simulate -n 1000 --concurrency 50 --local --throttle 200
  fp-yocto simulate -n 20 --dir ~/yocto/my-product       (AWS: creates 20 real things)

Prints a summary: succeeded, rejected (permanent: hook denial, 4xx, bad setup), failed
(gave up after the retry deadline), retried, latency p50/p95/p99 and provisions per second.
Exits 1 unless every device provisioned. On AWS no AWS credentials are needed (devices use
the claim certificate, as real ones do); the things and certificates they create stay in
the account, in the project's thing group. Each device's files (key, certificate, state.json)
are written for real, in memory (a directory in /dev/shm) when it has room, and removed
afterwards; with --keep they go to .fp-yocto/simulate/<run>/ and stay.`;

function positiveInt(flag: string, value: unknown, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(String(value)) || !Number.isInteger(n) || n < 1 || n > max) {
    throw new UserError(`--${flag}: expected a whole number from 1 to ${max}, got "${value}"`, EXIT.usage);
  }
  return n;
}

export default defineCommand({
  meta: { name: 'simulate', description: DESCRIPTION },
  args: {
    count: { type: 'string', alias: 'n', description: 'Number of devices to provision (required)', valueHint: 'N' },
    concurrency: { type: 'string', alias: 'c', description: 'Devices provisioning at the same time', default: '20', valueHint: 'C' },
    dir: { type: 'string', description: 'Project directory (default: the current one)', default: '.' },
    local: { type: 'boolean', description: 'Require the local emulator of an init --local project, starting it if needed' },
    endpoint: { type: 'string', description: "Data endpoint host instead of the project's", valueHint: 'HOST' },
    port: { type: 'string', description: "MQTT port instead of the project's", valueHint: 'PORT' },
    throttle: { type: 'string', description: 'Local emulator only: reject the next N requests with 429 ThrottlingException', valueHint: 'N' },
    deadline: { type: 'string', description: 'Seconds each device keeps retrying transient faults (default 300, as on a device)', valueHint: 'S' },
    workers: {
      type: 'string',
      description: 'Worker threads that run the devices, sharing --concurrency (default: one per core, less one for the local emulator; at most --concurrency)',
      valueHint: 'W',
    },
    keep: { type: 'boolean', description: "Keep every device's files (certificate, key, state.json) under .fp-yocto/simulate/" },
  },
  async run({ args }) {
    const { MAX_DEVICES, chooseRunDir, createProgress, defaultWorkers, randomRunPrefix, resolveTarget, runFleet, summaryRows } = await import('../../simulate/index.ts');
    if (args.count === undefined) throw new UserError('--count (-n) is required: how many devices to simulate, e.g. -n 100', EXIT.usage);
    const count = positiveInt('count', args.count, MAX_DEVICES);
    const concurrency = positiveInt('concurrency', args.concurrency, 10_000);
    const port = args.port === undefined ? undefined : positiveInt('port', args.port, 65_535);
    const throttle = args.throttle === undefined ? undefined : positiveInt('throttle', args.throttle, 1_000_000);
    const deadlineMs = args.deadline === undefined ? undefined : positiveInt('deadline', args.deadline, 86_400) * 1000;
    const requestedWorkers = args.workers === undefined ? undefined : positiveInt('workers', args.workers, 256);

    const target = await resolveTarget({ dir: args.dir, local: Boolean(args.local), endpoint: args.endpoint, port, retry: deadlineMs ? { deadlineMs } : {} });
    const { state, base } = target;
    // More threads than devices at once would sit idle. The local emulator (control plane at
    // hand) runs on this machine: it gets a core of its own.
    const workers = Math.min(requestedWorkers ?? defaultWorkers(concurrency, count, { localEmulator: Boolean(target.control) }), concurrency, count);
    if (target.emulatorStarted) console.log(`started the local emulator on ${base.iotDataEndpoint}:${base.port} (state in ${target.emulatorDir})`);
    if (throttle !== undefined) {
      if (!target.control) throw new UserError('--throttle works only with the local emulator (an init --local project, without --endpoint)', EXIT.usage);
      await target.control.setFaults({ throttle });
    }
    if (state.settings.requireAllowList) {
      console.log(pc.yellow('warning: the project requires an allow-list; simulated ids are not on it, so the hook will reject them'));
    }

    const idPrefix = randomRunPrefix();
    const runName = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${idPrefix}`;
    const { path: runDir } = await chooseRunDir({
      projectRunDir: path.join(path.resolve(args.dir), '.fp-yocto', 'simulate', runName),
      keep: Boolean(args.keep),
      concurrency: Math.min(count, concurrency),
    });
    const where = state.provider === 'local' && target.control ? 'the local emulator' : `AWS ${state.region}`;
    console.log(
      `simulating ${count} device(s), ${Math.min(count, concurrency)} at a time, against ${where} (${base.iotDataEndpoint}:${base.port}, template ${base.templateName}); ids ${idPrefix}000000…; ${workers} worker thread(s)`,
    );

    // Ctrl-C: start no more devices, let the running ones finish, still print the summary.
    // A second Ctrl-C has no handler left and ends the process at once.
    const abort = new AbortController();
    const onSigint = () => {
      abort.abort();
      process.stderr.write('\nstopping: no new devices; waiting for the running ones (Ctrl-C again to quit now)\n');
    };
    process.once('SIGINT', onSigint);
    const progress = createProgress(process.stdout, count);
    let run;
    try {
      run = await runFleet({ count, concurrency, workers, base, runDir, keep: Boolean(args.keep), idPrefix, signal: abort.signal, onProgress: (t) => progress.update(t) });
    } finally {
      progress.stop();
      process.off('SIGINT', onSigint);
    }

    const { summary } = run;
    const rows = summaryRows(summary);
    const width = Math.max(...rows.map(([label]) => label.length));
    const colour = (label: string, value: string) =>
      label === 'succeeded' ? pc.green(value) : (label === 'rejected' || label === 'failed') && value !== '0' ? pc.red(value) : value;
    console.log(rows.map(([label, value]) => `${label.padEnd(width)}  ${colour(label, value)}`).join('\n'));
    if (run.notStarted > 0) console.log(`${'not started'.padEnd(width)}  ${run.notStarted} (${abort.signal.aborted ? 'interrupted' : 'no worker thread left'})`);
    for (const e of summary.errors) console.log(pc.red(`  ${e.count} x ${e.message}`));
    if (args.keep) console.log(`device files kept in ${runDir}`);
    // A failed worker is a bug of fp-yocto, not of the fleet setup: say it once, apart from the devices' causes.
    if (run.workerErrors.length > 0) throw new UserError(`${run.workerErrors[0]}${run.workerErrors.length > 1 ? ` (and ${run.workerErrors.length - 1} more worker(s))` : ''}`, EXIT.failure);

    const bad = summary.total - summary.success;
    if (bad > 0) throw new UserError(`${bad} of ${summary.total} device(s) did not provision`, EXIT.failure);
  },
});
