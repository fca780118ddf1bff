// Who may read the device identity (issue 10, DESIGN.md "On the device"). With Greengrass, its
// services run as greengrass.group (ggcore in meta-aws) and must read key, certificate and root CA;
// standalone, everything is root's alone. RESULT_ACCESS (src/shared) is the table; this module
// resolves the group and applies owner and mode, on new files before their first byte and on the
// output directory at every run (a directory left by an older agent or by do_install is corrected).
import path from 'node:path';
import type { Owner } from '../shared/atomic-file.ts';
import { makeDirs } from '../shared/atomic-file.ts';
import { changeMode, changeOwner, readText } from '../shared/file-calls.ts';
import type { AgentConfig } from '../shared/config.ts';
import { RESULT_ACCESS, type ResultKind } from '../shared/device-paths.ts';
import { Fault } from './errors.ts';
import { sysroot } from './test-hooks.ts';

export interface FileAccess {
  mode: number;
  owner: Owner;
}

export type AccessPlan = Record<ResultKind, FileAccess>;

/**
 * The gid of `name` in /etc/group text, or undefined. Node has no getgrnam(3); reading the file is
 * enough on a Yocto image: useradd.bbclass writes the Greengrass user and group there at build
 * time, and no NSS module that could add groups (LDAP, altfiles) is installed unless a distro
 * adds one (glibc's nsswitch.conf says `group: files`; musl has no NSS). nss-systemd only adds
 * DynamicUser= groups, which Greengrass lite's units do not use.
 */
export function gidOf(groupFile: string, name: string): number | undefined {
  for (const line of groupFile.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

export const groupFilePath = (): string => path.join(sysroot() || '/', 'etc/group');

async function greengrassGid(config: AgentConfig): Promise<number> {
  const file = groupFilePath();
  const text = await readText(file).catch(() => '');
  const gid = gidOf(text, config.greengrass.group);
  if (gid === undefined) {
    throw new Fault(
      'greengrassGroup',
      `greengrass.group: group ${JSON.stringify(config.greengrass.group)} does not exist on this device (not in ${file}); ` +
        'set greengrass.group to the group Greengrass lite runs as',
    );
  }
  return gid;
}

/** Owner and mode of every result. Fails (exit 78) when the Greengrass group does not exist. */
export async function accessPlan(config: AgentConfig): Promise<AccessPlan> {
  // The agent runs as root on the device; elsewhere (fp-yocto simulate) files are the caller's.
  const uid = process.getuid?.() ?? 0;
  const rootGid = process.getgid?.() ?? 0;
  const table = config.greengrass.enabled ? RESULT_ACCESS.greengrass : RESULT_ACCESS.standalone;
  const ggGid = config.greengrass.enabled ? await greengrassGid(config) : rootGid;
  const plan = {} as AccessPlan;
  for (const [kind, access] of Object.entries(table) as Array<[ResultKind, (typeof table)[ResultKind]]>) {
    plan[kind] = { mode: access.mode, owner: { uid, gid: access.group === 'greengrass' ? ggGid : rootGid } };
  }
  return plan;
}

/**
 * Sets owner and mode of an existing file or directory without a moment in which someone who
 * should not could read it: owner-only first, then the owner, then the final mode.
 */
export async function applyAccess(file: string, access: FileAccess): Promise<void> {
  await changeMode(file, access.mode & 0o700);
  await changeOwner(file, access.owner.uid, access.owner.gid);
  await changeMode(file, access.mode);
}

/** Creates the output directory if needed (parents 0755, whatever the umask) and sets its owner and mode. */
export async function prepareOutputDir(config: AgentConfig, plan: AccessPlan): Promise<void> {
  await makeDirs(path.dirname(config.outputDir), 0o755);
  await makeDirs(config.outputDir, plan.dir.mode & 0o700);
  await applyAccess(config.outputDir, plan.dir);
}
