// `fp-yocto devices ...`: each subcommand opens the project's cloud (AWS or the emulator), works
// on its device table and closes it again.
import { EXIT, UserError } from '../../shared/errors.ts';
import { openProject } from '../lifecycle.ts';
import type { ProjectState } from '../project.ts';
import type { CloudProvider, Ui } from '../provider.ts';
import { parseDeviceIds, type DeviceList } from './device-file.ts';
import type { DeviceRecord } from './device-item.ts';
import type { DeviceStore, ImportSummary, ListFilter } from './device-store.ts';
import { deviceIdKind, openDeviceStore, progressReporter, readDeviceList } from './project-devices.ts';

export interface DevicesTarget {
  dir: string;
  /** --local: insist that the project uses the emulator. */
  local?: boolean;
}

/** Listing ids has no effect while the stack lets every well-formed id provision: say so. */
function warnIfOff(state: ProjectState, ui: Ui): void {
  if (!state.settings.requireAllowList) {
    ui.warn(`the allow-list of stack ${state.stackName} is off: every well-formed id may provision; \`fp-yocto init --allow-list FILE\` turns it on`);
  }
}

async function withStore<T>(target: DevicesTarget, ui: Ui, work: (store: DeviceStore, state: ProjectState, cloud: CloudProvider) => Promise<T>): Promise<T> {
  const { state, cloud } = await openProject(target.dir, ui);
  try {
    if (target.local && state.provider !== 'local') {
      throw new UserError(`--local: the project in ${target.dir} uses AWS ${state.region} (its stack ${state.stackName}); leave out --local`, EXIT.usage);
    }
    return await work(openDeviceStore(cloud, state), state, cloud);
  } finally {
    await cloud.close();
  }
}

/** Ids from the command line, canonical for the project's id kind; a bad one is a usage error. */
function idsOf(values: string[], state: ProjectState): string[] {
  const kind = deviceIdKind(state.settings);
  const { ids, invalid } = parseDeviceIds(values, kind);
  if (invalid.length) throw new UserError(`${JSON.stringify(invalid[0])}: not a device id of this project (its devices use ${state.settings.deviceIdSource ?? 'mac'} ids)`, EXIT.usage);
  if (!ids.length) throw new UserError('name at least one device id', EXIT.usage);
  return ids;
}

export interface ImportResult {
  table: string;
  summary: ImportSummary;
  list: DeviceList;
}

/** `devices import FILE`: the valid lines go in; the invalid ones are reported with their numbers. */
export function runImport(target: DevicesTarget, file: string, ui: Ui): Promise<ImportResult> {
  return withStore(target, ui, async (store, state) => {
    warnIfOff(state, ui);
    const list = await readDeviceList(file, deviceIdKind(state.settings), file);
    ui.info(`importing ${list.entries.length} device id(s) from ${file} into ${store.table}`);
    const summary = await store.allow(list.entries, progressReporter(list.entries.length, (line) => ui.info(line)));
    return { table: store.table, summary, list };
  });
}

/** `devices allow ID...`: the same as an import of these ids (no attributes). */
export function runAllow(target: DevicesTarget, values: string[], ui: Ui): Promise<{ table: string; summary: ImportSummary }> {
  return withStore(target, ui, async (store, state) => {
    warnIfOff(state, ui);
    const summary = await store.allow(idsOf(values, state).map((deviceId) => ({ deviceId })));
    return { table: store.table, summary };
  });
}

export function runRevoke(target: DevicesTarget, values: string[], ui: Ui) {
  return withStore(target, ui, async (store, state) => ({ table: store.table, ...(await store.revoke(idsOf(values, state))) }));
}

export function runReset(target: DevicesTarget, values: string[], ui: Ui) {
  return withStore(target, ui, async (store, state) => ({ table: store.table, ...(await store.reset(idsOf(values, state))) }));
}

/** `devices list`: the named ids, or every id that passes the filter, page by page. */
export function runList(target: DevicesTarget, values: string[], filter: ListFilter, ui: Ui, onPage: (records: DeviceRecord[]) => void): Promise<void> {
  return withStore(target, ui, async (store, state) => {
    if (values.length) onPage(await store.get(idsOf(values, state)));
    else for await (const page of store.list(filter)) onPage(page);
  });
}

/** What state an id is in, in one word, for `devices list`. */
export function deviceState(r: DeviceRecord): 'provisioned' | 'allowed' | 'revoked' | 'unlisted' {
  if (!r.allowed && r.revokedAt) return 'revoked';
  // With the allow-list off, the hook records ids that are not on it.
  if (r.certificateId) return 'provisioned';
  return r.allowed ? 'allowed' : 'unlisted';
}
