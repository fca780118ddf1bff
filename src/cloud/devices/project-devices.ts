// The device table of a project: which table, which id kind, reading the lists to import, and
// the one-line summaries the CLI and init print.
import { readFile } from 'node:fs/promises';
import { DEVICE_ID_EXPECTED, DEVICE_ID_KIND_OF_SOURCE, type DeviceIdKind } from '../../shared/device-id.ts';
import { EXIT, UserError } from '../../shared/errors.ts';
import type { ProjectState } from '../project.ts';
import type { CloudProvider } from '../provider.ts';
import type { StackOptions } from '../stack.ts';
import { parseDeviceIds, parseDeviceList, type DeviceList } from './device-file.ts';
import { DeviceStore, type DeviceStoreOptions, type ImportSummary } from './device-store.ts';

export const deviceIdKind = (settings: Pick<StackOptions, 'deviceIdSource'>): DeviceIdKind => DEVICE_ID_KIND_OF_SOURCE[settings.deviceIdSource ?? 'mac'];

export function openDeviceStore(cloud: CloudProvider, state: Pick<ProjectState, 'stackName' | 'names'>, options?: DeviceStoreOptions): DeviceStore {
  const table = state.names.deviceTable;
  if (!table) throw new UserError(`stack ${state.stackName} has no device table yet: run \`fp-yocto init\` to update the stack`);
  return new DeviceStore(cloud.dynamoDb(), table, options);
}

/**
 * A device list from a file (one id a line, or a CSV with a deviceId header), or ids given
 * inline, comma-separated (`--allow-list aa:bb:cc:dd:ee:ff,001122334455`).
 */
export async function readDeviceList(value: string, kind: DeviceIdKind, flag: string): Promise<DeviceList & { source: string }> {
  let text: string;
  try {
    text = await readFile(value, 'utf8');
  } catch (error) {
    const inline = parseDeviceIds([value], kind);
    if (inline.ids.length && !inline.invalid.length) return { entries: inline.ids.map((deviceId) => ({ deviceId })), columns: [], invalid: [], duplicates: 0, source: flag };
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT' || code === 'ENAMETOOLONG'
        ? `${flag} ${JSON.stringify(value)}: expected a file of device ids (one a line, or a CSV with a deviceId header) or ids separated by commas (${DEVICE_ID_EXPECTED[kind]})`
        : `${flag} ${value}: cannot read it (${code ?? (error as Error).message})`,
      EXIT.usage,
    );
  }
  return { ...parseDeviceList(text, kind, value), source: value };
}

/** Invalid lines stop the import: one message with the first few, each with its line number. */
export function refuseInvalid(list: DeviceList & { source: string }): void {
  if (!list.invalid.length) return;
  const shown = list.invalid.slice(0, 5).map((l) => `  line ${l.line}: ${l.reason}`);
  const more = list.invalid.length > 5 ? [`  ... and ${list.invalid.length - 5} more`] : [];
  throw new UserError(
    `${list.source}: ${list.invalid.length} invalid line(s), nothing imported:\n${[...shown, ...more].join('\n')}`,
    EXIT.usage,
  );
}

export function importSummaryLine(summary: ImportSummary, list: Pick<DeviceList, 'duplicates'>, table: string): string {
  const parts = [`${summary.added} added`, `${summary.present} already there`];
  if (summary.reallowed) parts.push(`${summary.reallowed} allowed again`);
  if (summary.updated) parts.push(`${summary.updated} with new attributes`);
  if (list.duplicates) parts.push(`${list.duplicates} duplicate line(s) skipped`);
  return `device table ${table}: ${parts.join(', ')}`;
}

/** Progress lines for a long import: about every tenth, never more often than every 5,000 ids. */
export function progressReporter(total: number, say: (line: string) => void): (done: number) => void {
  const step = Math.max(5_000, Math.ceil(total / 10));
  let next = step;
  const started = Date.now();
  return (done) => {
    if (done < next || done >= total) return;
    next = (Math.floor(done / step) + 1) * step;
    const seconds = (Date.now() - started) / 1000;
    say(`imported ${done}/${total} (${Math.round(done / Math.max(seconds, 0.001))} ids/s)`);
  };
}
