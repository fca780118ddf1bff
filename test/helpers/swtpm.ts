// A software TPM 2.0 per test: swtpm (Debian's swtpm) on two loopback ports, behind the TPM2
// access broker and resource manager (tpm2-abrmd) on a private D-Bus session bus. The broker
// stands in for the kernel's resource manager (/dev/tpmrm0) of a device: OpenSSL's tpm2 provider
// keeps hash sequences in the TPM during a TLS handshake, more objects than a TPM holds at once.
// Everything is stopped when the test ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { onTestFinished } from 'vitest';
import { providerVersion, tlsPropquery } from '../../src/agent/tpm/tools.ts';
import { freePortPair } from '../../src/qemu/swtpm.ts';
import { commandOutput, commandWorks } from './commands.ts';
import { tmpDir } from './tmp.ts';

/** Whether this host can run the TPM tests (CI installs these in .ci/run). */
export const softwareTpmAvailable = (): boolean =>
  ['swtpm', 'tpm2_getcap', 'tpm2-abrmd', 'dbus-daemon', 'gdbus'].every((c) => commandWorks('which', [c]));

export interface SoftwareTpm {
  /** key.tpmTcti for the agent. */
  tcti: string;
  /** Environment the agent and the tools need (the session bus address). */
  env: Record<string, string>;
  /** Runs a tpm2-tools command against this TPM; resolves to stdout. */
  tool(command: string, args: string[]): Promise<string>;
  /** The persistent handles in the TPM. */
  persistentHandles(): Promise<number[]>;
  /** The public key (PEM) of the persistent key at `handle`. */
  publicKeyPem(handle: number): Promise<string>;
}

function stopOnFinish(child: ChildProcess): void {
  onTestFinished(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  });
}

/** The first line `child` prints on stdout (its readiness message), or the reason it exited. */
function firstLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve(line.trim()));
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready`)));
  });
}

/** The installed tpm2-openssl's Debian version ("1.1.1-1"), or undefined. */
export const tpm2OpensslPackageVersion = (): string | undefined => {
  const out = commandOutput('dpkg-query', ['-W', '-f', '${Version}', 'tpm2-openssl']);
  return out || undefined;
};

/**
 * `broker: false`: no tpm2-abrmd; the TCTI is swtpm's own socket (`swtpm:`), as a device's is its
 * kernel resource manager (`device:`). Only one client at a time, and nothing swaps objects out.
 */
export async function startSoftwareTpm({ broker: withBroker = true }: { broker?: boolean } = {}): Promise<SoftwareTpm> {
  const dir = await tmpDir('fp-swtpm-');
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePortPair();
    // --daemon: the command exits once both sockets listen (and the pid file is written).
    const started = await execa(
      'swtpm',
      [
        'socket', '--tpm2', '--tpmstate', `dir=${dir}`,
        '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags', 'not-need-init,startup-clear', '--daemon', '--pid', `file=${path.join(dir, 'swtpm.pid')}`,
      ],
      { reject: false },
    );
    if (started.exitCode === 0) break;
    // Another process took a port between the check and swtpm's bind.
    if (attempt >= 4) throw new Error(`swtpm did not start: ${started.stderr}`);
  }
  const swtpmPid = Number(await readFile(path.join(dir, 'swtpm.pid'), 'utf8'));
  onTestFinished(() => {
    try {
      process.kill(swtpmPid, 'SIGTERM');
    } catch {
      // gone already
    }
  });

  if (!withBroker) return softwareTpm(`swtpm:host=127.0.0.1,port=${port}`, {}, dir);

  const bus = spawn('dbus-daemon', ['--session', '--nofork', '--nopidfile', '--print-address=1', `--address=unix:path=${path.join(dir, 'bus')}`], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  stopOnFinish(bus);
  const env = { DBUS_SESSION_BUS_ADDRESS: await firstLine(bus, 'dbus-daemon') };
  const broker = spawn('tpm2-abrmd', ['--session', '--allow-root', '--flush-all', `--tcti=swtpm:host=127.0.0.1,port=${port}`], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  stopOnFinish(broker);
  // Ready when it owns its name on the bus (gdbus waits for that event).
  await execa('gdbus', ['wait', '--session', '--timeout', '30', 'com.intel.tss2.Tabrmd'], { env });

  return softwareTpm('tabrmd:bus_type=session', env, dir);
}

function softwareTpm(tcti: string, env: Record<string, string>, dir: string): SoftwareTpm {
  const tool = async (command: string, args: string[]) =>
    (await execa(command, args, { env: { ...env, TPM2TOOLS_TCTI: tcti, TPM2OPENSSL_TCTI: tcti } })).stdout;
  return {
    tcti,
    env,
    tool,
    persistentHandles: async () => [...(await tool('tpm2_getcap', ['handles-persistent'])).matchAll(/0x[0-9a-f]{8}/gi)].map((m) => Number(m[0])),
    publicKeyPem: async (handle) => {
      const file = path.join(dir, `public-${handle.toString(16)}.pem`);
      await tool('tpm2_readpublic', ['-Q', '-c', `0x${handle.toString(16)}`, '-f', 'pem', '-o', file]);
      return readFile(file, 'utf8');
    },
  };
}

/** The property query the agent picks for the tpm2 provider OpenSSL loads here (tools.ts tlsPropquery). */
export const agentPropquery = async (tpm: SoftwareTpm): Promise<string> =>
  tlsPropquery(providerVersion(await tpm.tool('openssl', ['list', '-providers', '-provider', 'tpm2'])));
