import { defineCommand } from 'citty';
import { runDestroy, type FleetChoice } from '../../cloud/lifecycle.ts';
import { EXIT, UserError } from '../../shared/errors.ts';
import { createUi } from '../ui.ts';

export default defineCommand({
  meta: {
    name: 'destroy',
    description: [
      'Delete what init created: the claim certificates recorded in .fp-yocto/state.json',
      '(policies detached, deactivated, deleted), the stack, the device policy the stack keeps',
      "and the stack's Lambda log groups. Once devices have provisioned, say what becomes of them:",
      '--delete-fleet also deletes every thing of the thing group with its certificates;',
      '--keep-fleet leaves them, with the device policy they hold, and says so. Either way the',
      'command ends by listing anything left behind. For a --local project the emulator init',
      'started is stopped too; its registry stays on disk.',
      '',
      '  fp-yocto destroy                      asks first',
      '  fp-yocto destroy --yes --delete-fleet for scripts: remove the devices too',
      '  fp-yocto destroy --yes --keep-fleet   remove the stack, keep the devices working',
    ].join('\n'),
  },
  args: {
    dir: { type: 'string', description: 'Project directory (default: the current one)', default: '.' },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required when not on a terminal)' },
    'delete-fleet': { type: 'boolean', description: 'Also delete the provisioned things and their certificates' },
    'keep-fleet': { type: 'boolean', description: 'Keep the provisioned things, their certificates and the device policy' },
  },
  async run({ args }) {
    if (args['delete-fleet'] && args['keep-fleet']) throw new UserError('--delete-fleet and --keep-fleet: choose one', EXIT.usage);
    const fleet: FleetChoice = args['delete-fleet'] ? 'delete' : args['keep-fleet'] ? 'keep' : undefined;
    const ui = createUi({ yes: Boolean(args.yes) });
    const { paths, left } = await runDestroy(args.dir, ui, { fleet });
    ui.success(`destroyed; removed the claim files and ${paths.stateFile}`);
    if (left.length) ui.warn(`left in the cloud:\n${left.map((l) => `  ${l}`).join('\n')}`);
    else ui.info('nothing fp-yocto created is left');
  },
});
