// Debian's swtpm as the guest's TPM 2.0, owned by the harness: started before the VM, served to
// QEMU over its control socket, stopped (and waited on) after it. QEMU's TPM emulator backend
// (QEMU docs, "The QEMU TPM emulator device", docs/specs/tpm.rst):
//   swtpm socket --tpmstate dir=<dir> --ctrl type=unixio,path=<dir>/swtpm-sock --tpm2
//   qemu ... -chardev socket,id=chrtpm,path=<dir>/swtpm-sock -tpmdev emulator,id=tpm0,chardev=chrtpm
//            -device tpm-tis,tpmdev=tpm0
// The TPM's state (persistent objects included) stays in <dir> after both have ended, so the host
// can read it back with tpm2-tools through a second swtpm on the same directory (`readTpmState`).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';

/** QEMU arguments for a TPM 2.0 on the TIS interface backed by swtpm at `socket`. */
export const tpmQemuArgs = (socket: string): string[] => [
  '-chardev',
  `socket,id=chrtpm,path=${socket}`,
  '-tpmdev',
  'emulator,id=tpm0,chardev=chrtpm',
  '-device',
  'tpm-tis,tpmdev=tpm0',
];

export interface GuestTpm {
  /** The control socket QEMU connects to. */
  socket: string;
  /** The TPM's state directory. */
  dir: string;
  /** The swtpm process (a child of this one). */
  pid: number;
  /** SIGTERM (swtpm saves its state and ends) and wait for the exit. */
  stop(): Promise<void>;
}

// swtpm processes still running when this process exits are killed with it, not left behind.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function own(child: ChildProcess, what: string): { exited: Promise<void>; stop: () => Promise<void>; stderr: () => string } {
  live.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => (live.delete(child), resolve()));
    child.once('error', (e) => ((stderr += `${what}: ${e.message}`), live.delete(child), resolve()));
  });
  return {
    exited,
    stderr: () => stderr.trim(),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Resolves once `path` exists in `dir` (watched, not polled); rejects if `gone` settles first or after `ms`. */
function appears(dir: string, name: string, gone: Promise<void>, ms: number, why: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dir);
    const finish = (f: () => void) => {
      clearTimeout(timer);
      watcher.close();
      f();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`${join(dir, name)} did not appear within ${ms} ms ${why()}`))), ms);
    const check = () => existsSync(join(dir, name)) && finish(resolve);
    watcher.on('change', check);
    watcher.on('error', (e) => finish(() => reject(e)));
    void gone.then(() => finish(() => reject(new Error(`swtpm exited before ${join(dir, name)} appeared ${why()}`))));
    check();
  });
}

/**
 * swtpm for one VM: a TPM 2.0 with its state in `dir` (a new, empty TPM the first time). Ready
 * once its control socket exists; `--terminate`: it also ends when QEMU closes the connection.
 */
export async function startGuestTpm(dir: string): Promise<GuestTpm> {
  const name = 'swtpm-sock';
  const socket = join(dir, name);
  // A socket left by an earlier swtpm would pass for this one's readiness.
  await rm(socket, { force: true });
  const child = spawn(
    'swtpm',
    ['socket', '--tpm2', '--tpmstate', `dir=${dir}`, '--ctrl', `type=unixio,path=${socket}`, '--terminate', '--log', `file=${join(dir, 'swtpm.log')},level=1`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const owned = own(child, 'swtpm');
  try {
    await appears(dir, name, owned.exited, 30_000, () => owned.stderr() || '(apt-get install swtpm)');
  } catch (error) {
    await owned.stop();
    throw error;
  }
  return { socket, dir, pid: child.pid!, stop: owned.stop };
}

const listen = (port: number) =>
  new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });

/**
 * Two free consecutive loopback ports: the swtpm TCTI uses port and port + 1. Drawn below Linux's
 * ephemeral range (32768 and up by default): there, port + 1 of a port the kernel handed out is
 * often the local end of an outgoing connection, and a busy machine failed 20 draws in a row.
 */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + 2 * Math.floor(Math.random() * 6_000);
    const first = await listen(port);
    const second = first ? await listen(port + 1) : undefined;
    first?.close();
    second?.close();
    if (second) return port;
  }
  throw new Error('no two free consecutive ports on 127.0.0.1');
}

export interface TpmState {
  /** The persistent handles in the TPM (tpm2_getcap handles-persistent). */
  persistentHandles: number[];
  /** The public key (PEM) of the persistent object at `handle` (tpm2_readpublic). */
  publicKeyPem(handle: number): Promise<string>;
  /** Any tpm2-tools command against this state; resolves to stdout. */
  tool(command: string, args: string[]): Promise<string>;
}

/**
 * Reads the TPM state a guest left in `dir` with host tpm2-tools, through a second swtpm on the
 * same directory (the guest's swtpm must have ended). The swtpm runs only during `use`.
 */
export async function readTpmState<T>(dir: string, use: (state: TpmState) => Promise<T>): Promise<T> {
  const pidName = 'reader.pid';
  let reader: ReturnType<typeof own> | undefined;
  let port = 0;
  for (let attempt = 0; !reader; attempt++) {
    port = await freePortPair();
    // A pid file left by an earlier reader would pass for this one's readiness.
    await rm(join(dir, pidName), { force: true });
    const child = spawn(
      'swtpm',
      [
        'socket', '--tpm2', '--tpmstate', `dir=${dir}`,
        '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags', 'not-need-init,startup-clear', '--pid', `file=${join(dir, pidName)}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const owned = own(child, 'swtpm');
    try {
      // swtpm writes its pid file once both sockets listen (what its --daemon waits for too).
      await appears(dir, pidName, owned.exited, 30_000, () => owned.stderr());
      reader = owned;
    } catch (error) {
      await owned.stop();
      // Another process took a port between the check and swtpm's bind.
      if (attempt >= 4) throw error;
    }
  }
  const env = { TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
  const tool = async (command: string, args: string[]) => {
    const r = await execa(command, args, { env, reject: false });
    if (r.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} against the guest's TPM state failed: ${r.stderr.trim() || r.message}`);
    return r.stdout;
  };
  try {
    const handles = [...(await tool('tpm2_getcap', ['handles-persistent'])).matchAll(/0x[0-9a-f]{8}/gi)].map((m) => Number(m[0]));
    return await use({
      tool,
      persistentHandles: handles,
      publicKeyPem: async (handle) => {
        const file = join(dir, `public-${handle.toString(16)}.pem`);
        await tool('tpm2_readpublic', ['-Q', '-c', `0x${handle.toString(16)}`, '-f', 'pem', '-o', file]);
        return readFile(file, 'utf8');
      },
    });
  } finally {
    await reader.stop();
  }
}
