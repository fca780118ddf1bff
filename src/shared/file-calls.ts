// The agent's file system calls (its own files: atomic-file.ts, state.json, the output directory;
// and its local checks and reads of the files its config names), asynchronous unless a thread
// opts out.
//
// Asynchronous by default: a call that hangs (a hung mount, a FIFO where a file should be) then
// blocks a thread of libuv's pool, not the event loop, so the agent's watchdog still fires and
// says so (issue 13; src/agent/commands.ts; docs/agent.md says what Node's exit does with a stuck
// pool thread). fp-yocto simulate's worker threads, whose
// device files are throwaway files in memory, switch to synchronous calls: there every
// fs.promises call's round trip through the thread pool cost ~90 us of CPU on a 2-core VM,
// against ~6 us for the call itself, about 40 times a device (docs/emulator.md, Throughput).
import {
  accessSync,
  chmodSync,
  chownSync,
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
  type Stats,
  type StatsFs,
} from 'node:fs';
import { access, chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';

let synchronous = false;

/** From now on this thread's calls below are synchronous (module state is per thread). */
export function useSynchronousFileCallsInThisThread(): void {
  synchronous = true;
}

/** Runs `syncCall` when this thread is synchronous, `asyncCall` otherwise; errors reject either way. */
function either<T>(syncCall: () => T, asyncCall: () => Promise<T>): Promise<T> {
  if (!synchronous) return asyncCall();
  try {
    return Promise.resolve(syncCall());
  } catch (error) {
    return Promise.reject(error as Error);
  }
}

export const makeDirTree = (dir: string): Promise<unknown> =>
  either(
    () => mkdirSync(dir, { recursive: true }),
    () => mkdir(dir, { recursive: true }),
  );

/** One directory with `mode` (the umask applies); an existing one is fine. */
export const makeDir = (dir: string, mode: number): Promise<void> =>
  either(
    () => void mkdirSync(dir, { mode }),
    () => mkdir(dir, { mode }).then(() => undefined),
  ).catch((error: NodeJS.ErrnoException) => (error.code === 'EEXIST' ? undefined : Promise.reject(error)));

/** stat(2), or undefined when nothing is there. */
export const statIfExists = (file: string): Promise<Stats | undefined> =>
  either(
    () => statSync(file),
    () => stat(file),
  ).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));

export const statPath = (file: string): Promise<Stats> =>
  either(
    () => statSync(file),
    () => stat(file),
  );

/** lstat(2): what is at `file` itself (a symlink is not followed). */
export const lstatPath = (file: string): Promise<Stats> =>
  either(
    () => lstatSync(file),
    () => lstat(file),
  );

/** statfs(2) of the filesystem that holds `file`. */
export const statFilesystem = (file: string): Promise<StatsFs> =>
  either(
    () => statfsSync(file),
    () => statfs(file),
  );

export const renameFile = (from: string, to: string): Promise<void> =>
  either(
    () => renameSync(from, to),
    () => rename(from, to),
  );

export const removePath = (file: string, options: { force?: boolean } = {}): Promise<void> =>
  either(
    () => rmSync(file, options),
    () => rm(file, options),
  );

export const listDir = (dir: string): Promise<string[]> =>
  either(
    () => readdirSync(dir),
    () => readdir(dir),
  );

export const readText = (file: string): Promise<string> =>
  either(
    () => readFileSync(file, 'utf8'),
    () => readFile(file, 'utf8'),
  );

export const pathExists = (file: string): Promise<boolean> =>
  either(
    () => accessSync(file),
    () => access(file),
  ).then(
    () => true,
    () => false,
  );

export const changeMode = (file: string, mode: number): Promise<void> =>
  either(
    () => chmodSync(file, mode),
    () => chmod(file, mode),
  );

export const changeOwner = (file: string, uid: number, gid: number): Promise<void> =>
  either(
    () => chownSync(file, uid, gid),
    () => chown(file, uid, gid),
  );

export interface NewFileOptions {
  mode: number;
  owner?: { uid: number; gid: number };
  fsync: boolean;
}

/**
 * Creates `file` (it must not exist), sets owner then exact mode before the first byte, writes
 * `data`, fsyncs when asked, closes. On a failure after the create the file is removed.
 */
export function writeNewFile(file: string, data: string | Uint8Array, options: NewFileOptions): Promise<void> {
  return either(
    () => {
      const fd = openSync(file, 'wx', options.mode);
      try {
        if (options.owner) fchownSync(fd, options.owner.uid, options.owner.gid);
        fchmodSync(fd, options.mode);
        writeFileSync(fd, data);
        if (options.fsync) fsyncSync(fd);
      } catch (error) {
        closeSync(fd);
        rmSync(file, { force: true });
        throw error;
      }
      closeSync(fd);
    },
    async () => {
      const handle = await open(file, 'wx', options.mode);
      try {
        if (options.owner) await handle.chown(options.owner.uid, options.owner.gid);
        await handle.chmod(options.mode);
        await handle.writeFile(data);
        if (options.fsync) await handle.sync();
      } catch (error) {
        await handle.close();
        await rm(file, { force: true });
        throw error;
      }
      await handle.close();
    },
  );
}

/** fsync of a directory: makes a create, rename or remove in it durable. */
export const syncDirectory = (dir: string): Promise<void> =>
  either(
    () => {
      const fd = openSync(dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
    async () => {
      const handle = await open(dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    },
  );
