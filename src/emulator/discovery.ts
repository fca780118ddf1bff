// How other processes find a running emulator: `<dir>/emulator.json` (removed on a clean stop)
// plus a bearer token in `<dir>/control-token` (0600). A file left by a dead process is stale.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { packageRoot } from '../shared/package-root.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { processAlive } from '../shared/process-alive.ts';
import { pingControl, remoteControlPlane } from './control-client.ts';
import type { ControlPlane } from './control-plane.ts';

export interface EmulatorInfo {
  pid: number;
  host: string;
  port: number;
  endpoint: string;
  controlUrl: string;
  caPath: string;
}

export const INFO_FILE = 'emulator.json';
export const TOKEN_FILE = 'control-token';
export const LOG_FILE = 'emulator.log';

export async function readOrCreateToken(dir: string): Promise<string> {
  const file = path.join(dir, TOKEN_FILE);
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token) return token;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('hex');
  await writeFileAtomic(file, `${token}\n`, 0o600);
  return token;
}

export async function writeInfo(dir: string, info: EmulatorInfo): Promise<void> {
  await writeFileAtomic(path.join(dir, INFO_FILE), `${JSON.stringify(info, null, 2)}\n`);
}

/** Removes emulator.json if it still describes this emulator (another may have taken over). */
export async function removeInfo(dir: string, controlUrl: string): Promise<void> {
  const info = await readInfo(dir);
  if (info && info.pid === process.pid && info.controlUrl === controlUrl) await rm(path.join(dir, INFO_FILE), { force: true });
}

export async function readInfo(dir: string): Promise<EmulatorInfo | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dir, INFO_FILE), 'utf8')) as EmulatorInfo;
  } catch {
    return undefined;
  }
}


/** The running emulator of a state dir, if any; removes a stale emulator.json. */
export async function findRunning(dir: string): Promise<{ info: EmulatorInfo; token: string } | undefined> {
  const info = await readInfo(dir);
  if (!info) return undefined;
  const token = await readFile(path.join(dir, TOKEN_FILE), 'utf8').then((t) => t.trim(), () => '');
  if (processAlive(info.pid) && token && (await pingControl(info.controlUrl, token))) return { info, token };
  if (!processAlive(info.pid)) await rm(path.join(dir, INFO_FILE), { force: true });
  return undefined;
}

/** The control plane of the emulator running for `dir`, or undefined when none is. */
export async function connectEmulator(dir: string): Promise<ControlPlane | undefined> {
  const running = await findRunning(path.resolve(dir));
  return running && remoteControlPlane(running.info.controlUrl, running.token);
}

/**
 * Stops the emulator running for `dir` (SIGTERM: it closes its listeners and flushes its
 * registry) and waits for the process to end. Returns its pid, or undefined if none ran.
 */
export async function stopEmulator(dir: string, timeoutMs = 10_000): Promise<number | undefined> {
  const running = await findRunning(path.resolve(dir));
  if (!running) return undefined;
  const { pid } = running.info;
  process.kill(pid, 'SIGTERM');
  if (!(await processGone(pid, timeoutMs))) throw new Error(`the emulator (pid ${pid}) did not stop within ${timeoutMs} ms`);
  return pid;
}

/**
 * Waits until process `pid` has ended; false if it still runs after `timeoutMs`. For a process
 * that is not our child (init starts the emulator detached) there is no exit event: signal 0 tells.
 */
export async function processGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

export interface EnsuredEmulator {
  control: ControlPlane;
  /** False when an emulator was already running for the dir. */
  started: boolean;
  endpoint: string;
  port: number;
  caPath: string;
}

/**
 * Returns the emulator running for `dir`, or starts `fp-yocto emulator` detached in the background
 * (log in `<dir>/emulator.log`) and waits until it is ready.
 */
export async function ensureEmulator({ dir, port = 8883, timeoutMs = 20_000 }: { dir: string; port?: number; timeoutMs?: number }): Promise<EnsuredEmulator> {
  dir = path.resolve(dir);
  const existing = await findRunning(dir);
  if (existing) return ensured(existing, false);
  const cli = path.join(packageRoot(), 'dist', 'cli.mjs');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const logPath = path.join(dir, LOG_FILE);
  const log = await open(logPath, 'a', 0o600);
  const child = spawn(process.execPath, [cli, 'emulator', '--state-dir', dir, '--port', String(port)], {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
    env: { ...process.env, NO_COLOR: '1' },
  });
  await log.close();
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = await findRunning(dir);
    if (running && running.info.pid === child.pid) return ensured(running, true);
    if (exited !== undefined) {
      const tail = (await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-1)[0] ?? '';
      throw new Error(`the emulator exited with code ${exited}: ${tail || `see ${logPath}`}`);
    }
    if (Date.now() > deadline) throw new Error(`the emulator did not start within ${timeoutMs} ms: see ${logPath}`);
    // Polling a file from a process we do not control: a short pause between looks is the event.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function ensured({ info, token }: { info: EmulatorInfo; token: string }, started: boolean): EnsuredEmulator {
  return { control: remoteControlPlane(info.controlUrl, token), started, endpoint: info.endpoint, port: info.port, caPath: info.caPath };
}
