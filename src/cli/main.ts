// fp-yocto: one lazily loaded module per subcommand, so `fp-yocto emulator` never loads the AWS SDK.
import { defineCommand, runCommand, showUsage, type CommandDef } from 'citty';
import { reportError } from './report-error.ts';

// Set by scripts/build.ts from package.json.
const VERSION = process.env.FP_YOCTO_VERSION ?? '0.0.0-dev';

/**
 * One line per command for `fp-yocto --help`, as `aws`, `gh` and `cdk` print them; the details
 * stay in each command's own `--help`. Kept here so the top-level help loads no command module.
 */
export const COMMANDS = {
  init: ['Deploy or update the stack, make the claim certificate, render the layer', () => import('./commands/init.ts')],
  render: ['Render meta-fleetprovisioning from recipes-templates/', () => import('./commands/render.ts')],
  status: ['Show the stack, the claim certificate and the provisioned things', () => import('./commands/status.ts')],
  devices: ['Manage the allow-list and the certificate each device id provisioned with', () => import('./commands/devices.ts')],
  'rotate-claim': ['Make a new claim certificate; retire the old one after a grace period', () => import('./commands/rotate-claim.ts')],
  destroy: ['Delete the stack and the claim certificates (and, if asked, the fleet)', () => import('./commands/destroy.ts')],
  emulator: ['Run the local IoT Core emulator in the foreground', () => import('./commands/emulator.ts')],
  simulate: ['Provision simulated devices and report latency and throughput', () => import('./commands/simulate.ts')],
  'qemu-test': ['Boot a systemd image in QEMU and check first-boot provisioning', () => import('./commands/qemu-test.ts')],
} satisfies Record<string, [string, () => Promise<{ default: unknown }>]>;

export const main = defineCommand({
  meta: {
    name: 'fp-yocto',
    version: VERSION,
    description: 'Fleet provisioning by claim for AWS IoT on Yocto images',
  },
  subCommands: Object.fromEntries(Object.entries(COMMANDS).map(([name, [, load]]) => [name, () => load().then((m) => m.default as CommandDef)])),
});

/** The top-level help: a short table, never a command module's long description. */
export function topLevelUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    `Fleet provisioning by claim for AWS IoT on Yocto images (fp-yocto ${VERSION})`,
    '',
    'Usage: fp-yocto <command> [options]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, [description]]) => `  ${name.padEnd(width)}  ${description}`),
    '',
    'Run `fp-yocto <command> --help` for its options and examples, `fp-yocto --version` for the version.',
  ].join('\n');
}

/** Like citty's runMain, but user errors are one line and an exit code, never a stack trace. */
export async function run(cmd: CommandDef, rawArgs: string[]): Promise<number> {
  try {
    if (rawArgs.length === 0 || rawArgs.some((a) => a === '--help' || a === '-h')) {
      const [command, parent] = await resolveForUsage(cmd, rawArgs);
      if (parent || cmd !== main) await showUsage(command, parent);
      else console.log(topLevelUsage());
      return 0;
    }
    if (rawArgs.length === 1 && (rawArgs[0] === '--version' || rawArgs[0] === '-v')) {
      console.log(VERSION);
      return 0;
    }
    await runCommand(cmd, { rawArgs });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    return reportError(error, async () => {
      const [command, parent] = await resolveForUsage(cmd, rawArgs);
      if (parent || cmd !== main) await showUsage(command, parent);
      else console.error(topLevelUsage());
    });
  }
}

/** The (sub)command the arguments name, and its parent: `devices import --help` shows import's usage. */
async function resolveForUsage(cmd: CommandDef, rawArgs: string[]): Promise<[CommandDef, CommandDef?]> {
  const subs = typeof cmd.subCommands === 'function' ? await cmd.subCommands() : await cmd.subCommands;
  const index = rawArgs.findIndex((a) => !a.startsWith('-'));
  const name = rawArgs[index];
  const entry = name && subs ? subs[name] : undefined;
  if (!entry) return [cmd];
  const sub = (typeof entry === 'function' ? await entry() : await entry) as CommandDef;
  const [deeper, parent] = await resolveForUsage(sub, rawArgs.slice(index + 1));
  return deeper === sub ? [sub, cmd] : [deeper, parent];
}

const code = await run(main as CommandDef, process.argv.slice(2));
process.exit(code);
