import { defineCommand } from 'citty';
import { runRotateClaim } from '../../cloud/lifecycle.ts';
import { parseDuration } from '../../cloud/settings.ts';
import { createUi } from '../ui.ts';

export default defineCommand({
  meta: {
    name: 'rotate-claim',
    description: [
      'Make a new claim certificate (key made here, never sent) and write it to claim/.',
      'The old one stays active for --grace so images already built can still provision. On AWS an',
      'EventBridge Scheduler one-time schedule then deactivates it, whoever is around; with --local',
      'it is deactivated by the next `fp-yocto rotate-claim` or `fp-yocto status` after that time.',
      '',
      '  fp-yocto rotate-claim --grace 7d     rebuild images within a week',
      '  fp-yocto rotate-claim --grace 0      the old claim certificate stops working now',
    ].join('\n'),
  },
  args: {
    dir: { type: 'string', description: 'Project directory (default: the current one)', default: '.' },
    grace: { type: 'string', description: 'How long the old claim certificate stays active: 0, 30m, 24h, 7d', default: '24h' },
  },
  async run({ args }) {
    const graceMs = parseDuration(args.grace);
    const ui = createUi({ yes: true });
    const result = await runRotateClaim(args.dir, graceMs, ui);
    ui.success(`new claim certificate ${result.certificateId.slice(0, 12)}… written to claim/`);
    if (result.retired && !result.deactivated.includes(result.retired.certificateId)) {
      const by = result.retired.schedule ? `; schedule ${result.retired.schedule} deactivates it then` : '; the next status or rotate-claim after that deactivates it';
      ui.info(`old claim certificate ${result.retired.certificateId.slice(0, 12)}… stays active until ${result.retired.deactivateAfter}${by}`);
    }
    for (const id of result.deactivated) ui.info(`deactivated claim certificate ${id.slice(0, 12)}…`);
    ui.info('rebuild the image so it carries the new claim certificate');
  },
});
