// fp-agent: fleet provisioning by claim, on the device. Parses the command line, runs one
// command and maps the outcome to sysexits codes: 0 done, 64 usage, 75 try again later,
// 78 configuration or permanent rejection.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { AgentConfig } from '../shared/config.ts';
import { CONFIG_FILE } from '../shared/device-paths.ts';
import { EXIT } from '../shared/errors.ts';
import { classify, Fault } from './errors.ts';
import { log, logFatal } from './log.ts';
import { bounded, FS_STEP_TIMEOUT_MS } from './local-files.ts';
import { reportRss } from './test-hooks.ts';

// Commands, the config parser (yaml) and MQTT are loaded when a command needs them: esbuild
// turns these dynamic imports into lazy module initialisers, so --version and --help start fast.

const VERSION = process.env.FP_AGENT_VERSION ?? 'dev';

const HELP = `Usage: fp-agent <command> [options]

Fleet provisioning by claim for AWS IoT.

Commands:
  identify     read the device id and store it in the output dir
  provision    provision this device (exits 0 at once when already provisioned)
  status       show what is provisioned

Options:
  -c, --config <file>      config file (default ${CONFIG_FILE})
      --force              provision: re-provision even when already provisioned
      --json               status: print JSON
      --mqtt-version <4|5> MQTT 3.1.1 (4, default) or 5; also FP_AGENT_MQTT_VERSION
  -h, --help               show this help
  -V, --version            show the version

Exit codes: 0 done, 64 usage error, 75 transient fault outlived retry.deadlineMs (systemd
tries again later), 78 bad configuration or permanent rejection (fix the named setting).
`;

class UsageError extends Fault {
  constructor(message: string) {
    super('usage', `${message} (see fp-agent --help)`);
  }
}

async function loadConfig(file: string): Promise<AgentConfig> {
  const timedOut = () => new Fault('configFile', `${file}: the filesystem did not answer within ${FS_STEP_TIMEOUT_MS / 1000} s`);
  let text: string;
  try {
    text = await bounded(readFile(file, 'utf8'), FS_STEP_TIMEOUT_MS, timedOut);
  } catch (error) {
    if (error instanceof Fault) throw error;
    throw new Fault('configFile', `${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const { parseAgentConfig } = await import('../shared/config.ts');
  return parseAgentConfig(text, file, (warning) => log(`warning: ${warning}`));
}

/**
 * Whatever the filesystem or the network does, the run ends: a little after retry.deadlineMs
 * (every wait inside is bounded by it already), exit 75 with the last thing the agent was doing.
 */
function watchdog(config: AgentConfig): void {
  const graceMs = 5_000;
  setTimeout(() => {
    logFatal(`gave up: the run did not end within retry.deadlineMs (${config.retry.deadlineMs} ms) + ${graceMs / 1000} s`);
    reportRss();
    process.exit(EXIT.tempFail);
  }, config.retry.deadlineMs + graceMs).unref();
}

function mqttVersion(value: string | undefined): 4 | 5 {
  const v = value ?? process.env.FP_AGENT_MQTT_VERSION ?? '4';
  if (v === '4' || v === '3.1.1') return 4;
  if (v === '5') return 5;
  throw new UsageError(`--mqtt-version: expected 4 or 5, got ${JSON.stringify(v)}`);
}

async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
        'mqtt-version': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  const [command, ...extra] = positionals;
  if (!command) throw new UsageError('missing command');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const configFile = values.config ?? CONFIG_FILE;

  switch (command) {
    case 'identify': {
      const config = await loadConfig(configFile);
      watchdog(config);
      const { identify, storeDeviceId } = await import('./identify.ts');
      const { accessPlan } = await import('./file-access.ts');
      const { checkOutputDir } = await import('./preflight.ts');
      const plan = await accessPlan(config);
      await checkOutputDir(config, plan);
      const { deviceId, origin } = await identify(config, Date.now() + config.retry.deadlineMs);
      await storeDeviceId(config, deviceId, plan.deviceId);
      log(`device id ${deviceId} (${origin})`);
      process.stdout.write(`${deviceId}\n`);
      return EXIT.ok;
    }
    case 'provision': {
      const protocolVersion = mqttVersion(values['mqtt-version']);
      const config = await loadConfig(configFile);
      watchdog(config);
      const { provision } = await import('./provision.ts');
      await provision(config, { force: values.force ?? false, protocolVersion });
      return EXIT.ok;
    }
    case 'status': {
      const config = await loadConfig(configFile);
      const { formatStatus, status } = await import('./status.ts');
      const report = await status(config);
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    reportRss();
    process.exit(code);
  },
  (error: unknown) => {
    const c = classify(error);
    logFatal(c.message);
    reportRss();
    // A transient fault outside a retry loop (a full disk, say): let systemd try again later.
    process.exit(c.kind === 'permanent' ? c.exitCode : EXIT.tempFail);
  },
);
