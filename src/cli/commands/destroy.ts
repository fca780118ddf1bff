import { defineCommand } from 'citty';
import { runDestroy } from '../../cloud/lifecycle.ts';
import { createUi } from '../ui.ts';

export default defineCommand({
  meta: {
    name: 'destroy',
    description: [
      'Delete what init created, and only that: the claim certificates recorded in',
      '.fp-yocto/state.json (policies detached, deactivated, deleted) and the stack.',
      'Things and device certificates made by provisioning are left alone. For a --local',
      "project, the project's emulator (.fp-yocto/emulator, which init starts in the background)",
      'is stopped too; its registry stays on disk and a later init starts it again.',
      '',
      '  fp-yocto destroy            asks first',
      '  fp-yocto destroy --yes      for scripts',
    ].join('\n'),
  },
  args: {
    dir: { type: 'string', description: 'Project directory (default: the current one)', default: '.' },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required when not on a terminal)' },
  },
  async run({ args }) {
    const ui = createUi({ yes: Boolean(args.yes) });
    const paths = await runDestroy(args.dir, ui);
    ui.success(`destroyed; removed the claim files and ${paths.stateFile}`);
  },
});
