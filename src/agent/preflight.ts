// Local checks of the places the agent writes, before the cloud is contacted (issue 13): nothing is
// minted for a device that cannot store the result. Each check names the config field, and every
// filesystem step is bounded in time (local-files.ts), so a path under /proc or a hung mount ends
// the run with one line instead of hanging it.
import path from 'node:path';
import type { AgentConfig } from '../shared/config.ts';
import { makeDirs, probeWritable } from '../shared/atomic-file.ts';
import { lstatPath, statFilesystem } from '../shared/file-calls.ts';
import { Fault } from './errors.ts';
import { prepareOutputDir, type AccessPlan, type FileAccess } from './file-access.ts';
import type { FaultKind } from './faults.ts';
import { dropInStageDir } from './greengrass.ts';
import { boundedStep } from './local-files.ts';
import { log } from './log.ts';

/** statfs(2) f_type of filesystems that hold no files of ours (linux/magic.h). */
const PSEUDO_FILESYSTEMS: Record<number, string> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x1cd1: 'devpts',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x62656570: 'configfs',
  0xcafe4a11: 'bpf',
  0x6165676c: 'pstore',
  0xde5e81e4: 'efivarfs',
};
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

const errnoOf = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? 'error';

/** What is at `file`: its lstat, or undefined when nothing is. Other errors are faults of `kind`. */
async function entryAt(kind: FaultKind, field: string, file: string) {
  return boundedStep(kind, field, file, lstatPath(file)).catch((error: unknown) => {
    if (error instanceof Fault) throw error;
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw new Fault(kind, `${field} ${file}: cannot be examined (${errnoOf(error)})`);
  });
}

/** The nearest existing directory at or above `dir`, or a fault when something else is in the way. */
async function nearestDirectory(kind: FaultKind, field: string, dir: string): Promise<string> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const entry = await entryAt(kind, field, d);
    if (entry?.isDirectory()) return d;
    if (entry && !entry.isSymbolicLink()) throw new Fault(kind, `${field} ${dir}: ${d} is not a directory`);
    if (entry) return d; // a symlink: followed by mkdir and open as usual
    if (path.dirname(d) === d) return d;
  }
}

/** Refuses pseudo filesystems (/proc, /sys, ...) and warns about RAM-backed ones. */
async function checkFilesystem(kind: FaultKind, field: string, dir: string, durable: boolean): Promise<void> {
  const existing = await nearestDirectory(kind, field, dir);
  const { type } = await boundedStep(kind, field, dir, statFilesystem(existing));
  const pseudo = PSEUDO_FILESYSTEMS[type];
  if (pseudo) throw new Fault(kind, `${field} ${dir}: is on ${pseudo}, which cannot hold files; expected a directory on a disk`);
  if (durable && (type === TMPFS_MAGIC || type === RAMFS_MAGIC)) {
    log(`warning: ${field} ${dir}: is in RAM (tmpfs): the identity will be lost at the next boot and the device provisioned again`);
  }
}

/** Writes, syncs and removes a small file in `dir` with `access`: the directory really takes our files. */
async function probeWrite(kind: FaultKind, field: string, dir: string, access: FileAccess): Promise<void> {
  await boundedStep(kind, field, dir, probeWritable(dir, access)).catch((error: unknown) => {
    if (error instanceof Fault) throw error;
    throw new Fault(kind, `${field} ${dir}: cannot write there (${errnoOf(error)})`);
  });
}

/** outputDir: a directory (made if missing, owner and mode set), on a disk, that takes our files. */
export async function checkOutputDir(config: AgentConfig, plan: AccessPlan): Promise<void> {
  const dir = config.outputDir;
  const entry = await entryAt('outputDir', 'outputDir', dir);
  if (entry && !entry.isDirectory() && !entry.isSymbolicLink()) throw new Fault('outputDir', `outputDir ${dir}: is not a directory`);
  await checkFilesystem('outputDir', 'outputDir', dir, true);
  await boundedStep('outputDir', 'outputDir', dir, prepareOutputDir(config, plan)).catch((error: unknown) => {
    if (error instanceof Fault) throw error;
    throw new Fault('outputDir', `outputDir ${dir}: cannot be made or given its owner and mode (${errnoOf(error)})`);
  });
  await probeWrite('outputDir', 'outputDir', dir, plan.key);
}

/**
 * greengrass.configDropIn: not a directory; config.d (made 0755 if missing) and its parent, where
 * the drop-in is staged, are directories on one filesystem (the rename between them is atomic),
 * and the staging place takes our files. Nothing is ever written into config.d itself here.
 */
export async function checkDropInPlace(config: AgentConfig, owner: FileAccess['owner']): Promise<void> {
  const field = 'greengrass.configDropIn';
  const dropIn = config.greengrass.configDropIn;
  const kind = 'greengrassDropIn';
  const entry = await entryAt(kind, field, dropIn);
  if (entry?.isDirectory()) throw new Fault(kind, `${field} ${dropIn}: is a directory; expected the path of a file`);
  if (entry && !entry.isFile()) throw new Fault(kind, `${field} ${dropIn}: is not a regular file (ggconfigd reads regular files only)`);
  const configD = path.dirname(dropIn);
  const stage = dropInStageDir(config);
  await nearestDirectory(kind, field, configD);
  await checkFilesystem(kind, field, configD, false);
  await boundedStep(kind, field, configD, makeDirs(configD, 0o755)).catch((error: unknown) => {
    if (error instanceof Fault) throw error;
    throw new Fault(kind, `${field} ${dropIn}: cannot make ${configD} (${errnoOf(error)})`);
  });
  const [configDEntry, stageEntry] = [await entryAt(kind, field, configD), await entryAt(kind, field, stage)];
  if (!configDEntry?.isDirectory()) throw new Fault(kind, `${field} ${dropIn}: ${configD} is not a directory`);
  if (configDEntry.dev !== stageEntry?.dev) {
    throw new Fault(kind, `${field} ${dropIn}: ${configD} is on another filesystem than ${stage}, where the drop-in is staged`);
  }
  await probeWrite(kind, field, stage, { mode: 0o644, owner });
}
