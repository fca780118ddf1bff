// fp-yocto: one lazily loaded module per subcommand, so `fp-yocto emulator` never loads the AWS SDK.
import { defineCommand, runCommand, showUsage, type CommandDef } from 'citty';
import { reportError } from './report-error.ts';

// Set by scripts/build.ts from package.json.
const VERSION = process.env.FP_YOCTO_VERSION ?? '0.0.0-dev';

export const main = defineCommand({
  meta: {
    name: 'fp-yocto',
    version: VERSION,
    description: 'Fleet provisioning by claim for AWS IoT on Yocto images',
  },
  subCommands: {
    init: () => import('./commands/init.ts').then((m) => m.default),
    render: () => import('./commands/render.ts').then((m) => m.default),
    status: () => import('./commands/status.ts').then((m) => m.default),
    'rotate-claim': () => import('./commands/rotate-claim.ts').then((m) => m.default),
    destroy: () => import('./commands/destroy.ts').then((m) => m.default),
    emulator: () => import('./commands/emulator.ts').then((m) => m.default),
    simulate: () => import('./commands/simulate.ts').then((m) => m.default),
    'qemu-test': () => import('./commands/qemu-test.ts').then((m) => m.default),
  },
});

/** Like citty's runMain, but user errors are one line and an exit code, never a stack trace. */
export async function run(cmd: CommandDef, rawArgs: string[]): Promise<number> {
  try {
    if (rawArgs.length === 0 || rawArgs.some((a) => a === '--help' || a === '-h')) {
      await showUsage(...(await resolveForUsage(cmd, rawArgs)));
      return 0;
    }
    if (rawArgs.length === 1 && (rawArgs[0] === '--version' || rawArgs[0] === '-v')) {
      console.log(VERSION);
      return 0;
    }
    await runCommand(cmd, { rawArgs });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    return reportError(error, async () => showUsage(...(await resolveForUsage(cmd, rawArgs))));
  }
}

async function resolveForUsage(cmd: CommandDef, rawArgs: string[]): Promise<[CommandDef, CommandDef?]> {
  const subs = typeof cmd.subCommands === 'function' ? await cmd.subCommands() : await cmd.subCommands;
  const name = rawArgs.find((a) => !a.startsWith('-'));
  const entry = name && subs ? subs[name] : undefined;
  if (!entry) return [cmd];
  const sub = (typeof entry === 'function' ? await entry() : await entry) as CommandDef;
  return [sub, cmd];
}

const code = await run(main as CommandDef, process.argv.slice(2));
process.exit(code);
