// Crash-safe file writes, for the agent, the emulator's state and the project files: a temp file
// created with its final owner and mode (a key is never readable by others, not even for a
// moment), written, fsynced, renamed over the target, and the directories fsynced so the rename
// itself survives a power cut. The temp file lives beside the target unless the caller names a
// staging directory on the same filesystem (for directories that a reader scans, such as
// Greengrass lite's config.d, where a temp file would be read as config).
//
// The writes use synchronous calls: a small file's open, write, rename and fsync are each a few
// microseconds of kernel work (an fsync on slow flash, more), while every fs.promises call is a
// round trip through libuv's thread pool, which measured ~90 us of CPU on a 2-core VM against
// 6 us for the same stat synchronously: a device's ~40 calls of file work took 4-5 ms of CPU
// that way (docs/emulator.md, Throughput). None of these writes was bounded by a timer either,
// so a hung filesystem blocks the caller as it did before. probeWritable and makeDirs stay
// asynchronous: the agent's preflight bounds them with a timeout (local-files.ts, boundedStep).
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fchownSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';

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
  mkdirSync(dir, { recursive: true });
  if (stageDir !== dir) mkdirSync(stageDir, { recursive: true });
  const temp = path.join(stageDir, tempName(file));
  const fd = openSync(temp, 'wx', mode);
  try {
    // Owner first (chown may clear mode bits), then the exact mode (open() applies the umask,
    // which can only remove bits), both before the first byte of data.
    if (options.owner) fchownSync(fd, options.owner.uid, options.owner.gid);
    fchmodSync(fd, mode);
    writeFileSync(fd, data);
    if (durable) fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw error;
  }
  closeSync(fd);
  await options.beforeRename?.();
  renameSync(temp, file);
  syncDirNow(dir);
  if (stageDir !== dir) syncDirNow(stageDir);
}

/** Renames within one directory and makes the rename durable. */
export async function renameDurable(from: string, to: string): Promise<void> {
  renameSync(from, to);
  syncDirNow(path.dirname(to));
}

export async function removeDurable(file: string): Promise<boolean> {
  try {
    rmSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  syncDirNow(path.dirname(file));
  return true;
}

export async function syncDir(dir: string): Promise<void> {
  syncDirNow(dir);
}

function syncDirNow(dir: string): void {
  if (!durable) return;
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates `dir` and any missing parents with exactly `mode` (not `mode & ~umask`, as mkdir
 * alone would). Existing directories are left as they are. Returns the directories created.
 */
export async function makeDirs(dir: string, mode: number): Promise<string[]> {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const found = await stat(d).then(
      (s) => s,
      (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)),
    );
    if (found) break;
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    await mkdir(d, { mode }).catch((error: NodeJS.ErrnoException) => (error.code === 'EEXIST' ? undefined : Promise.reject(error)));
    await chmod(d, mode);
  }
  if (missing.length > 0) await syncDir(path.dirname(missing[0]!));
  return missing;
}

/** The name whose temp files probeWritable makes: removeStaleTemps(dir, PROBE_NAME) clears them. */
export const PROBE_NAME = 'fp-probe';

/** Proves that `dir` takes files: creates one (owner and mode set first), writes, fsyncs and removes it. */
export async function probeWritable(dir: string, options: Pick<WriteOptions, 'mode' | 'owner'> = {}): Promise<void> {
  const probe = path.join(dir, tempName(PROBE_NAME));
  const handle = await open(probe, 'wx', options.mode ?? 0o600);
  try {
    if (options.owner) await handle.chown(options.owner.uid, options.owner.gid);
    await handle.writeFile('probe\n');
    if (durable) await handle.sync();
  } finally {
    await handle.close();
    await rm(probe, { force: true });
  }
  await syncDir(dir);
}

/** Removes temp files a killed writer left in `dir`; only those of `forFile` when given. */
export async function removeStaleTemps(dir: string, forFile?: string): Promise<void> {
  const prefix = forFile ? `.${path.basename(forFile)}${TEMP_MARK}` : undefined;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const stale = names.filter((n) => (prefix ? n.startsWith(prefix) : n.includes(TEMP_MARK)));
  for (const n of stale) rmSync(path.join(dir, n), { force: true });
  if (stale.length > 0) syncDirNow(dir);
}
