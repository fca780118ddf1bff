// Where a run's simulated devices keep their files. Without --keep they go to memory (the tmpfs at
// /dev/shm) when it is there with room: every device creates and deletes a dozen files and
// directories, and on ext4 creating inodes beside freshly deleted ones (its recently-deleted
// inode scan) took ~12 % of the simulate process's CPU in perf, in a project that had run a few
// thousand devices: 25-27 -> 20-21 ms per device here. The keys of throwaway devices also never
// reach a disk. With --keep, or without such a tmpfs, they go under the project
// (.fp-yocto/simulate/<run>/), where a user looks for them.
import { access, constants, lstat, readdir, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { processAlive } from '../shared/process-alive.ts';

/** statfs(2) f_type of tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;
/** Room asked of the tmpfs per device running at once: its files take a few KB; the rest is margin. */
export const BYTES_PER_RUNNING_DEVICE = 256 * 1024;
/** Directories of ours in the tmpfs: `<prefix><pid>-<run name>`. */
const MEMORY_PREFIX = 'fp-yocto-simulate-';
export const MEMORY_ROOT = '/dev/shm';

export interface RunDirOptions {
  /** .fp-yocto/simulate/<run> of the project. */
  projectRunDir: string;
  keep: boolean;
  /** Devices running at once: what the tmpfs must have room for. */
  concurrency: number;
  /** The tmpfs to use; /dev/shm by default (tests pass another). */
  memoryRoot?: string;
}

export interface RunDir {
  path: string;
  inMemory: boolean;
}

export async function chooseRunDir(options: RunDirOptions): Promise<RunDir> {
  const root = options.memoryRoot ?? MEMORY_ROOT;
  if (options.keep || !(await usableTmpfs(root, options.concurrency * BYTES_PER_RUNNING_DEVICE))) {
    return { path: options.projectRunDir, inMemory: false };
  }
  await sweepStale(root);
  return { path: path.join(root, `${MEMORY_PREFIX}${process.pid}-${path.basename(options.projectRunDir)}`), inMemory: true };
}

async function usableTmpfs(root: string, bytesNeeded: number): Promise<boolean> {
  try {
    await access(root, constants.W_OK | constants.X_OK);
    const fs = await statfs(root);
    return fs.type === TMPFS_MAGIC && fs.bavail * fs.bsize >= bytesNeeded;
  } catch {
    return false;
  }
}

/**
 * Removes run directories of ours whose process is gone (killed before it could clean up), so
 * their keys do not sit in memory until the next boot. Another user's, or a live run's, stay.
 */
async function sweepStale(root: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  await Promise.all(
    names.map(async (name) => {
      const pid = new RegExp(`^${MEMORY_PREFIX}(\\d+)-`).exec(name)?.[1];
      if (pid === undefined || processAlive(Number(pid))) return;
      const dir = path.join(root, name);
      const stat = await lstat(dir).catch(() => undefined);
      if (stat?.isDirectory() && stat.uid === process.getuid?.()) await rm(dir, { recursive: true, force: true });
    }),
  );
}

