// Crash-safe file writes, for the agent, the emulator's state and the project files: a temp file
// created with its final owner and mode (a key is never readable by others, not even for a
// moment), written, fsynced, renamed over the target, and the directories fsynced so the rename
// itself survives a power cut. The temp file lives beside the target unless the caller names a
// staging directory on the same filesystem (for directories that a reader scans, such as
// Greengrass lite's config.d, where a temp file would be read as config).
//
// The calls go through file-calls.ts: asynchronous on a device (a hung filesystem must not stop
// the agent's watchdog), synchronous in fp-yocto simulate's worker threads.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { changeMode, listDir, makeDir, makeDirTree, removePath, renameFile, statIfExists, syncDirectory, writeNewFile } from './file-calls.ts';

const TEMP_MARK = '.fp-tmp-';

/**
 * Whether writes in this thread are made durable (fsync of the file and of its directory). Turned
 * off only by fp-yocto simulate's worker threads, whose devices' files are deleted at the end of
 * the run: there a fsync measures the disk, not the fleet. Module state is per thread, so the
 * emulator and everything else in the process keep their fsyncs.
 */
let durable = true;
export function skipFsyncInThisThread(): void {
  durable = false;
}

export interface Owner {
  uid: number;
  gid: number;
}

export interface WriteOptions {
  /** The file's exact mode, whatever the umask (default 0644). */
  mode?: number;
  /** The file's owner, set before any data is written (needs root unless it is the caller). */
  owner?: Owner;
  /** Where the temp file is made; must be on the target's filesystem. Default: the target's directory. */
  stageDir?: string;
  /** Runs when the temp file is complete, before the rename (crash tests stop here). */
  beforeRename?: () => Promise<void>;
}

/** The temp file name for `file`: hidden, and recognisable by removeStaleTemps. */
const tempName = (file: string) => `.${path.basename(file)}${TEMP_MARK}${randomBytes(6).toString('hex')}`;

export async function writeFileAtomic(file: string, data: string | Uint8Array, modeOrOptions: number | WriteOptions = {}): Promise<void> {
  const options = typeof modeOrOptions === 'number' ? { mode: modeOrOptions } : modeOrOptions;
  const mode = options.mode ?? 0o644;
  const dir = path.dirname(file);
  const stageDir = options.stageDir ?? dir;
  await makeDirTree(dir);
  if (stageDir !== dir) await makeDirTree(stageDir);
  const temp = path.join(stageDir, tempName(file));
  // Owner first (chown may clear mode bits), then the exact mode (open() applies the umask,
  // which can only remove bits), both before the first byte of data.
  await writeNewFile(temp, data, { mode, ...(options.owner ? { owner: options.owner } : {}), fsync: durable });
  await options.beforeRename?.();
  await renameFile(temp, file);
  await syncDir(dir);
  if (stageDir !== dir) await syncDir(stageDir);
}

/** Renames within one directory and makes the rename durable. */
export async function renameDurable(from: string, to: string): Promise<void> {
  await renameFile(from, to);
  await syncDir(path.dirname(to));
}

export async function removeDurable(file: string): Promise<boolean> {
  try {
    await removePath(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  await syncDir(path.dirname(file));
  return true;
}

export async function syncDir(dir: string): Promise<void> {
  if (durable) await syncDirectory(dir);
}

/**
 * Creates `dir` and any missing parents with exactly `mode` (not `mode & ~umask`, as mkdir
 * alone would). Existing directories are left as they are. Returns the directories created.
 */
export async function makeDirs(dir: string, mode: number): Promise<string[]> {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (await statIfExists(d)) break;
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    await makeDir(d, mode);
    await changeMode(d, mode);
  }
  if (missing.length > 0) await syncDir(path.dirname(missing[0]!));
  return missing;
}

/** The name whose temp files probeWritable makes: removeStaleTemps(dir, PROBE_NAME) clears them. */
export const PROBE_NAME = 'fp-probe';

/** Proves that `dir` takes files: creates one (owner and mode set first), writes, fsyncs and removes it. */
export async function probeWritable(dir: string, options: Pick<WriteOptions, 'mode' | 'owner'> = {}): Promise<void> {
  const probe = path.join(dir, tempName(PROBE_NAME));
  try {
    await writeNewFile(probe, 'probe\n', { mode: options.mode ?? 0o600, ...(options.owner ? { owner: options.owner } : {}), fsync: durable });
  } finally {
    await removePath(probe, { force: true });
  }
  await syncDir(dir);
}

/** Removes temp files a killed writer left in `dir`; only those of `forFile` when given. */
export async function removeStaleTemps(dir: string, forFile?: string): Promise<void> {
  const prefix = forFile ? `.${path.basename(forFile)}${TEMP_MARK}` : undefined;
  const names = await listDir(dir).catch(() => [] as string[]);
  const stale = names.filter((n) => (prefix ? n.startsWith(prefix) : n.includes(TEMP_MARK)));
  await Promise.all(stale.map((n) => removePath(path.join(dir, n), { force: true })));
  if (stale.length > 0) await syncDir(dir);
}
