import { defineCommand } from 'citty';
import { runStatus } from '../../cloud/lifecycle.ts';
import { createUi } from '../ui.ts';

const DAY_MS = 86_400_000;

export default defineCommand({
  meta: {
    name: 'status',
    description: [
      'Show the stack, the claim certificate (status, expiry), the things provisioned so far, and the',
      'device table: how many ids are on the allow-list and how many have provisioned.',
      'Also deactivates claim certificates whose rotate-claim grace period is over (on AWS a',
      'schedule does that already; with --local this is when it happens).',
      '',
      '  fp-yocto status --dir ~/yocto/my-product',
    ].join('\n'),
  },
  args: {
    dir: { type: 'string', description: 'Project directory (default: the current one)', default: '.' },
  },
  async run({ args }) {
    const ui = createUi({ yes: true });
    const report = await runStatus(args.dir, ui);
    const lines = [
      `stack      ${report.stackName} (${report.provider === 'local' ? 'local emulator' : `AWS ${report.region}`}): ${report.stack ? report.stack.status : 'NOT FOUND'}`,
    ];
    if (report.stack?.reason && report.provider === 'aws') lines.push(`           ${report.stack.reason}`);
    if (report.claim) {
      const days = report.claim.notAfter ? Math.floor((Date.parse(report.claim.notAfter) - Date.now()) / DAY_MS) : undefined;
      const expiry = report.claim.notAfter ? `, expires ${report.claim.notAfter.slice(0, 10)} (in ${days} days)` : '';
      lines.push(`claim      ${report.claim.certificateId.slice(0, 12)}… ${report.claim.status}${expiry}`);
    } else {
      lines.push('claim      none (run fp-yocto init)');
    }
    for (const r of report.retiring) lines.push(`retiring   ${r.certificateId.slice(0, 12)}… deactivated after ${r.deactivateAfter}`);
    for (const id of report.deactivated) lines.push(`deactivated ${id.slice(0, 12)}… (grace period over)`);
    // A fleet lists thousands of things: name them only while the list stays readable.
    const named = report.things.length && report.things.length <= 20 ? `: ${report.things.join(', ')}` : '';
    lines.push(`things     ${report.things.length} in group ${report.thingGroupName}${named}`);
    if (report.devices) {
      const d = report.devices;
      const list = d.allowListRequired ? `allow-list on, ${d.allowed} id(s) on it` : `allow-list off (${d.allowed} id(s) listed)`;
      lines.push(`devices    ${list}; ${d.provisioned} provisioned; one identity per id ${d.oneIdentity ? 'on' : 'off'} (table ${d.table})`);
    }
    console.log(lines.join('\n'));
  },
});
