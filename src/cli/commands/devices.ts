import { defineCommand, type ArgsDef } from 'citty';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { importSummaryLine } from '../../cloud/devices/project-devices.ts';
import type { DeviceRecord } from '../../cloud/devices/device-item.ts';
import type { ListFilter } from '../../cloud/devices/device-store.ts';
import { deviceState, runAllow, runImport, runList, runReset, runRevoke, type DevicesTarget } from '../../cloud/devices/run.ts';
import { EXIT, UserError } from '../../shared/errors.ts';
import { createUi } from '../ui.ts';

const common = {
  dir: { type: 'string', description: 'Project directory (default: the current one)', default: '.' },
  local: { type: 'boolean', description: 'The project uses the local emulator (checked against .fp-yocto/state.json)' },
} satisfies ArgsDef;

const target = (args: { dir: string; local?: boolean }): DevicesTarget => ({ dir: args.dir, local: Boolean(args.local) });

/** The positional ids citty leaves in `_` (after the subcommand's name). */
const positional = (args: { _: string[] }): string[] => args._.map(String);

const ids = { type: 'positional', description: 'Device ids (any form of the project\'s id kind), or comma-separated', required: false } as const;

const allow = defineCommand({
  meta: { name: 'allow', description: 'Put device ids on the allow-list (idempotent)\n\n  fp-yocto devices allow aa:bb:cc:dd:ee:ff 001122334455' },
  args: { ...common, ids },
  async run({ args }) {
    const ui = createUi({ yes: true });
    const { table, summary } = await runAllow(target(args), positional(args), ui);
    ui.success(importSummaryLine(summary, { duplicates: 0 }, table));
  },
});

const importCommand = defineCommand({
  meta: {
    name: 'import',
    description: [
      'Put every device of a file on the allow-list: one id a line, or a CSV whose first line is',
      'a header `deviceId,attr1,...` (per-device attributes; those named by init --thing-attributes',
      'become thing attributes). # starts a comment. Idempotent: ids already there are counted, not',
      'rewritten. Invalid lines are reported with their numbers (exit 65); the others go in.',
      '',
      '  fp-yocto devices import fleet.csv',
    ].join('\n'),
  },
  args: { ...common, file: { type: 'positional', description: 'The device list', required: true } },
  async run({ args }) {
    const ui = createUi({ yes: true });
    const { table, summary, list } = await runImport(target(args), args.file, ui);
    ui.success(importSummaryLine(summary, list, table));
    if (list.invalid.length) {
      const shown = list.invalid.slice(0, 20).map((l) => `  line ${l.line}: ${l.reason}`);
      if (list.invalid.length > 20) shown.push(`  ... and ${list.invalid.length - 20} more`);
      ui.warn(`${list.invalid.length} invalid line(s) in ${args.file}, not imported:\n${shown.join('\n')}`);
      process.exitCode = EXIT.dataErr;
    }
  },
});

const revoke = defineCommand({
  meta: {
    name: 'revoke',
    description: [
      'Take device ids off the allow-list: they can no longer provision. A device that provisioned',
      'keeps its thing and certificate (deactivate those in AWS IoT to cut it off) and its record here.',
      '',
      '  fp-yocto devices revoke aa:bb:cc:dd:ee:ff',
    ].join('\n'),
  },
  args: { ...common, ids },
  async run({ args }) {
    const ui = createUi({ yes: true });
    const { table, revoked, notListed } = await runRevoke(target(args), positional(args), ui);
    ui.success(`device table ${table}: ${revoked.length} revoked${notListed.length ? `, ${notListed.length} not on the allow-list: ${notListed.join(', ')}` : ''}`);
  },
});

const reset = defineCommand({
  meta: {
    name: 'reset',
    description: [
      'Let device ids provision once more (a re-flashed or repaired device): forget the certificate',
      'the hook approved for them. Their thing and old certificate stay; deactivate that in AWS IoT',
      'if the old key is gone or not to be trusted.',
      '',
      '  fp-yocto devices reset aabbccddeeff',
    ].join('\n'),
  },
  args: { ...common, ids },
  async run({ args }) {
    const ui = createUi({ yes: true });
    const result = await runReset(target(args), positional(args), ui);
    for (const r of result.reset) ui.success(`${r.deviceId}: may provision again${r.certificateId ? ` (was certificate ${r.certificateId})` : ' (it had not provisioned)'}`);
    if (result.unknown.length) {
      ui.warn(`not in device table ${result.table}: ${result.unknown.join(', ')}`);
      process.exitCode = EXIT.failure;
    }
  },
});

const FILTERS: ListFilter[] = ['all', 'allowed', 'provisioned', 'pending', 'revoked', 'refused'];

function row(r: DeviceRecord): string {
  const refusal = r.lastRefusal ? `  last refused ${r.lastRefusedAt}: ${r.lastRefusal}` : '';
  const cert = r.certificateId ? `  certificate ${r.certificateId} approved ${r.approvedAt}` : '';
  const attributes = Object.keys(r.attributes).length ? `  ${Object.entries(r.attributes).map(([k, v]) => `${k}=${v}`).join(' ')}` : '';
  return `${r.deviceId}  ${deviceState(r)}${cert}${attributes}${refusal}`;
}

const list = defineCommand({
  meta: {
    name: 'list',
    description: [
      'Show device ids: their state (allowed, provisioned, revoked), the certificate the hook approved',
      'and when, their attributes, and the last refusal with its reason (why a device got 403).',
      'With ids, just those; otherwise the whole table (one Scan) through --filter.',
      '',
      '  fp-yocto devices list --filter refused',
      '  fp-yocto devices list aabbccddeeff --json',
    ].join('\n'),
  },
  args: {
    ...common,
    ids,
    filter: { type: 'string', description: `Which ids: ${FILTERS.join(', ')} (default all)`, default: 'all' },
    json: { type: 'boolean', description: 'One JSON object a line' },
  },
  async run({ args }) {
    const filter = args.filter as ListFilter;
    if (!FILTERS.includes(filter)) throw new UserError(`--filter ${JSON.stringify(args.filter)}: expected one of ${FILTERS.join(', ')}`, EXIT.usage);
    const ui = createUi({ yes: true });
    let n = 0;
    await runList(target(args), positional(args), filter, ui, (records) => {
      n += records.length;
      process.stdout.write(records.map((r) => (args.json ? JSON.stringify({ ...r, state: deviceState(r) }) : row(r))).join('\n') + (records.length ? '\n' : ''));
    });
    if (!args.json) console.error(`${n} device id(s)`);
  },
});

const exportCommand = defineCommand({
  meta: {
    name: 'export',
    description: [
      'Write the allow-list as CSV (deviceId and the attribute columns), ready for `devices import`.',
      '',
      '  fp-yocto devices export > fleet.csv',
      '  fp-yocto devices export --output fleet.csv',
    ].join('\n'),
  },
  args: { ...common, output: { type: 'string', description: 'Write to this file instead of standard output' } },
  async run({ args }) {
    const ui = createUi({ yes: true });
    const records: DeviceRecord[] = [];
    await runList(target(args), [], 'allowed', ui, (page) => records.push(...page));
    records.sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1));
    const columns = [...new Set(records.flatMap((r) => Object.keys(r.attributes)))].sort();
    const quote = (v: string) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
    const out = args.output ? createWriteStream(args.output, { mode: 0o644 }) : process.stdout;
    const write = async (line: string) => {
      if (!out.write(`${line}\n`)) await once(out, 'drain');
    };
    await write(['deviceId', ...columns].join(','));
    for (const r of records) await write([r.deviceId, ...columns.map((c) => quote(r.attributes[c] ?? ''))].join(','));
    if (args.output) {
      await new Promise<void>((resolve, reject) => (out as ReturnType<typeof createWriteStream>).end((error?: Error | null) => (error ? reject(error) : resolve())));
      ui.success(`wrote ${records.length} device id(s) to ${args.output}`);
    }
  },
});

export default defineCommand({
  meta: {
    name: 'devices',
    description: [
      'Manage the device table: the allow-list (which device ids may provision) and the record of the',
      'certificate each id provisioned with (one identity per device id). Works on the project in',
      '--dir, on AWS or the local emulator as init set it up. See docs/cloud.md, "Devices".',
      '',
      '  fp-yocto devices import fleet.csv     100,000 ids take about a minute',
      '  fp-yocto devices allow aa:bb:cc:dd:ee:ff',
      '  fp-yocto devices list --filter refused',
      '  fp-yocto devices reset aabbccddeeff   a repaired device may provision again',
    ].join('\n'),
  },
  subCommands: { allow, import: importCommand, revoke, reset, list, export: exportCommand },
});
