// fp-agent: fleet provisioning by claim, on the device. Parses the command line, runs one
// command and maps the outcome to sysexits codes: 0 done, 64 usage, 75 try again later,
// 78 configuration or permanent rejection.
import { parseArgs } from 'node:util';
import { CONFIG_FILE } from '../shared/device-paths.ts';
import { EXIT } from '../shared/errors.ts';
import { classify, Fault } from './errors.ts';
import { logFatal } from './log.ts';
import { writeOut } from './stdio.ts';
import { reportRss } from './test-hooks.ts';

// Commands (commands.ts), the config parser (yaml), the filesystem and MQTT are loaded when a
// command needs them: esbuild turns dynamic imports into lazy module initialisers, so --version and
// --help run nothing but this file (not even node:fs).

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
    writeOut(1, `${VERSION}\n`);
    return EXIT.ok;
  }
  if (values.help) {
    writeOut(1, HELP);
    return EXIT.ok;
  }
  const [command, ...extra] = positionals;
  if (!command) throw new UsageError('missing command');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const configFile = values.config ?? CONFIG_FILE;

  const { runCommand } = await import('./commands.ts');
  if (!Object.hasOwn(runCommand, command)) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  const protocolVersion = command === 'provision' ? mqttVersion(values['mqtt-version']) : 4;
  return runCommand[command as keyof typeof runCommand]({ configFile, force: values.force ?? false, json: values.json ?? false, protocolVersion });
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
