// status, rotate-claim and destroy: they all start from the project's state.json.
import { readFile, rm } from 'node:fs/promises';
import { UserError } from '../shared/errors.ts';
import { certificateExpiry } from './claim.ts';
import { openDeviceStore } from './devices/project-devices.ts';
import { issueClaim } from './init.ts';
import { projectPaths, removeClaimFiles, requireState, writeClaimFiles, writeState, type ProjectPaths, type ProjectState } from './project.ts';
import { openProvider } from './providers/index.ts';
import type { CloudProvider, Ui } from './provider.ts';

/** The project in `dir` and its cloud (AWS or the emulator), as state.json recorded them. */
export async function openProject(dir: string, ui: Ui, pollMs?: number) {
  const paths = projectPaths(dir);
  const state = await requireState(paths);
  const cloud = await openProvider(
    { local: state.provider === 'local', region: state.region, profile: state.profile, port: state.port, pollMs },
    paths,
    (line) => ui.info(line),
  );
  return { paths, state, cloud };
}

/** Deactivates rotated-out certificates whose grace period is over; returns their ids. */
export async function deactivateOverdue(cloud: CloudProvider, state: ProjectState, now = Date.now()): Promise<string[]> {
  const done: string[] = [];
  for (const cert of state.certificates) {
    if (!cert.deactivateAfter || cert.deactivatedAt || Date.parse(cert.deactivateAfter) > now) continue;
    const info = await cloud.describeCertificate(cert.certificateId);
    if (info?.status === 'ACTIVE') await cloud.deactivateCertificate(cert.certificateId);
    cert.deactivatedAt = new Date(now).toISOString();
    done.push(cert.certificateId);
  }
  return done;
}

export interface StatusReport {
  stackName: string;
  provider: string;
  region: string;
  stack: { status: string; reason?: string } | undefined;
  claim: { certificateId: string; status: string; notAfter?: string } | undefined;
  retiring: { certificateId: string; deactivateAfter: string }[];
  deactivated: string[];
  things: string[];
  thingGroupName: string;
  /** The device table: ids on the allow-list and ids the hook approved a certificate for. */
  devices?: { table: string; allowListRequired: boolean; oneIdentity: boolean; allowed: number; provisioned: number };
}

export async function runStatus(dir: string, ui: Ui): Promise<StatusReport> {
  const { paths, state, cloud } = await openProject(dir, ui);
  try {
    const deactivated = await deactivateOverdue(cloud, state);
    if (deactivated.length) await writeState(paths, state);
    const current = state.certificates.at(-1);
    let claim: StatusReport['claim'];
    if (current) {
      const info = await cloud.describeCertificate(current.certificateId);
      const fromFile = await readFile(paths.claimCert, 'utf8').then(certificateExpiry, () => undefined);
      claim = { certificateId: current.certificateId, status: info?.status ?? 'MISSING', notAfter: info?.notAfter ?? fromFile?.toISOString() };
    }
    return {
      stackName: state.stackName,
      provider: state.provider,
      region: state.region,
      stack: await cloud.describeStack(state.stackName, state.names),
      claim,
      retiring: state.certificates
        .filter((c) => c.deactivateAfter && !c.deactivatedAt)
        .map((c) => ({ certificateId: c.certificateId, deactivateAfter: c.deactivateAfter! })),
      deactivated,
      things: await cloud.listThingsInGroup(state.names.thingGroupName),
      thingGroupName: state.names.thingGroupName,
      ...(state.names.deviceTable ? { devices: await deviceCounts(cloud, state) } : {}),
    };
  } finally {
    await cloud.close();
  }
}

async function deviceCounts(cloud: CloudProvider, state: ProjectState): Promise<NonNullable<StatusReport['devices']>> {
  const store = openDeviceStore(cloud, state);
  const [allowed, provisioned] = await Promise.all([store.count('allowed'), store.count('provisioned')]);
  return { table: store.table, allowListRequired: Boolean(state.settings.requireAllowList), oneIdentity: state.settings.oneIdentity !== false, allowed, provisioned };
}

export interface RotateResult {
  certificateId: string;
  /** The old certificate; `schedule` names the cloud schedule that deactivates it (AWS). */
  retired: { certificateId: string; deactivateAfter: string; schedule?: string } | undefined;
  deactivated: string[];
}

export async function runRotateClaim(dir: string, graceMs: number, ui: Ui): Promise<RotateResult> {
  const { paths, state, cloud } = await openProject(dir, ui);
  try {
    const now = Date.now();
    const old = state.certificates.at(-1);
    const issued = await issueClaim(cloud, state, paths);
    await writeClaimFiles(paths, { certPem: issued.certificatePem, keyPem: issued.keyPem, rootCaPem: await cloud.rootCaPem() });
    let retired: RotateResult['retired'];
    if (old && !old.deactivateAfter && !old.deactivatedAt) {
      const at = new Date(now + graceMs);
      old.deactivateAfter = at.toISOString();
      await writeState(paths, state);
      // The cloud enforces the grace period (AWS: a one-time schedule); status and rotate-claim
      // still deactivate overdue certificates, which is all the emulator has.
      // A schedule needs a time still ahead when EventBridge Scheduler gets it: from one minute on.
      if (graceMs >= 60_000) {
        const schedule = await cloud.scheduleDeactivation(old, at, state.names);
        if (schedule) old.deactivationSchedule = schedule;
      }
      retired = { certificateId: old.certificateId, deactivateAfter: old.deactivateAfter, ...(old.deactivationSchedule ? { schedule: old.deactivationSchedule } : {}) };
    }
    const deactivated = await deactivateOverdue(cloud, state, now);
    await writeState(paths, state);
    return { certificateId: issued.certificateId, retired, deactivated };
  } finally {
    await cloud.close();
  }
}

/** What destroy does with provisioned devices: nothing to do, delete them, or leave them. */
export type FleetChoice = 'delete' | 'keep' | undefined;

export interface DestroyResult {
  paths: ProjectPaths;
  /** What is left in the cloud and why, one line each; empty when everything is gone. */
  left: string[];
}

export async function runDestroy(dir: string, ui: Ui, options: { fleet?: FleetChoice; pollMs?: number } = {}): Promise<DestroyResult> {
  const { paths, state, cloud } = await openProject(dir, ui, options.pollMs);
  const left: string[] = [];
  try {
    const where = state.provider === 'local' ? 'the local emulator' : `AWS ${state.region}`;
    const things = await cloud.listThingsInGroup(state.names.thingGroupName);
    if (things.length && !options.fleet) {
      throw new UserError(
        `${things.length} device(s) provisioned in thing group ${state.names.thingGroupName}: run \`fp-yocto destroy --delete-fleet\` to delete their things and certificates too, or \`fp-yocto destroy --keep-fleet\` to leave them (and policy ${state.names.devicePolicy}, which they hold)`,
      );
    }
    const fleet = things.length && options.fleet === 'delete' ? ` and ${things.length} provisioned device(s) (things, certificates)` : '';
    const question = `Delete stack ${state.stackName}, its ${state.certificates.length} claim certificate(s)${fleet} from ${where}?`;
    if (!(await ui.confirm(question, { destructive: true }))) {
      throw new UserError(`destroy needs confirmation: run \`fp-yocto destroy --yes\` to delete stack ${state.stackName}`);
    }
    // Only what state.json records: certificates first (they hold the claim policy), then the stack.
    for (const cert of state.certificates) {
      await cloud.deleteCertificate(cert);
      ui.info(`- claim certificate ${cert.certificateId.slice(0, 12)}…`);
    }
    const keep = things.length > 0 && options.fleet === 'keep';
    if (things.length && options.fleet === 'delete') for (const thing of things) await cloud.deleteThing(thing, ui);
    left.push(...(await cloud.destroyStack(state.stackName, state.names, { keepDevicePolicy: keep }, ui)));
    if (keep) {
      left.unshift(`${things.length} thing(s) and their certificates, kept by --keep-fleet: ${things.join(', ')}`);
      left.push(`the role alias ${state.names.roleAlias} went with the stack: the kept devices can no longer get AWS credentials through it`);
    }
    await removeClaimFiles(paths);
    await rm(paths.stateFile, { force: true });
  } finally {
    await cloud.close();
  }
  if (state.provider === 'local') {
    // The project's emulator (init starts it in the background) has nothing left to serve.
    // Its registry stays on disk; a failure to stop it does not undo the destroy.
    const { stopEmulator } = await import('../emulator/index.ts');
    try {
      if (await stopEmulator(paths.emulatorDir)) ui.info(`stopped the local emulator (its registry stays in ${paths.emulatorDir})`);
    } catch (error) {
      ui.warn(`${(error as Error).message}; stop it yourself`);
    }
  }
  return { paths, left };
}
