// Boots a per-boot image in qemu-system-x86_64 (direct kernel boot, virtio disk, slirp networking)
// and exposes the serial console as lines the test can wait on. The guest's journal is forwarded
// to the console, so unit results show up there without logging in.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants, accessSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { QEMU_HOST_ADDRESS } from '../shared/protocol.ts';
import { tpmQemuArgs } from './swtpm.ts';

/** Pure: a MAC is universally administered (and unicast) when the first octet's two low bits are clear. */
export function isUniversalMac(mac: string): boolean {
  const m = /^([0-9a-f]{2})(:[0-9a-f]{2}){5}$/i.exec(mac);
  return !!m && (parseInt(m[1]!, 16) & 0x03) === 0;
}

/**
 * Pure: a universal MAC derived from a seed, in the 00:16:3e OUI (globally administered).
 * 52:54:00, QEMU's default, is locally administered and some id schemes reject it.
 */
export function macFromSeed(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  return ['00', '16', '3e', ...[...h.subarray(0, 3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Pure: the plain device id (aabbccddeeff) the agent derives from a MAC by default. */
export function plainMac(mac: string): string {
  return mac.toLowerCase().replace(/[^0-9a-f]/g, '');
}

/**
 * Pure: whether KVM can boot a stock kernel, from /proc/cpuinfo text and /dev/kvm access.
 * A /dev/kvm without vmx/svm in the CPU flags is a paravirtual backend (e.g. kvm_pvm inside a
 * Firecracker VM), which only runs specially built guest kernels: a stock Debian kernel hangs
 * right after "Probing EDD", and `-cpu host`/`max` even abort on MSR 0x10a.
 */
export function kvmBootsStockKernels(cpuinfo: string, devKvmAccessible: boolean): boolean {
  return devKvmAccessible && /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

/** KVM or TCG for this host; FP_QEMU_ACCEL=kvm|tcg overrides. */
export function kvmUsable(): boolean {
  const forced = process.env.FP_QEMU_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced === 'kvm';
  let accessible = true;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    accessible = false;
  }
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return false;
  }
  return kvmBootsStockKernels(cpuinfo, accessible);
}

/** A TCP port the guest reaches at GUEST_HOST_ADDR, forwarded to the host's loopback. */
export interface Forward {
  guestPort: number;
  hostPort?: number;
  hostAddr?: string;
}

/** Where the guest reaches the host's forwarded ports. */
export const GUEST_HOST_ADDR = QEMU_HOST_ADDRESS;

export interface BootOptions {
  image: string;
  kernel: string;
  initrd: string;
  mac: string;
  /** Hard limit: the VM is killed after this long. Default 5 min with KVM, 20 min without. */
  timeoutMs?: number;
  forwards?: readonly Forward[];
  /** Extra kernel command-line words. */
  append?: readonly string[];
  memoryMb?: number;
  /** vCPUs (default FP_QEMU_CPUS or 1). */
  cpus?: number;
  /** Also append the serial log to this file. */
  consoleLog?: string;
  /**
   * Also give the guest a second serial port (ttyS1), served on this Unix socket, and these
   * extra kernel words (e.g. to turn on a guest service that listens there).
   */
  commandChannel?: { socket: string; append: readonly string[] };
  /**
   * A TPM 2.0 (TIS) backed by the swtpm whose control socket this is (swtpm.ts starts it); the
   * guest kernel's tpm_tis driver then gives it /dev/tpm0 and /dev/tpmrm0.
   */
  tpmSocket?: string;
  /** Keep the VM running across a guest reboot (default: qemu exits when the guest reboots). */
  allowReboot?: boolean;
  /** Force KVM on or off (default: KVM when /dev/kvm is usable). */
  kvm?: boolean;
  qemu?: string;
}

export interface Vm {
  /** Serial console lines so far (\r and ANSI escapes removed). */
  readonly lines: readonly string[];
  /** qemu's exit code once it has exited (null while running or when killed by a signal). */
  readonly exitCode: number | null;
  readonly exited: boolean;
  readonly kvm: boolean;
  readonly startedAt: number;
  /**
   * Resolves with the first console line at index >= `from` (default 0) matching `re`; rejects
   * when qemu exits or `timeoutMs` passes first, with the end of the console log in the message.
   */
  waitForLine(re: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  /** Resolves with qemu's exit code when it exits; rejects after `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<number | null>;
  /** ACPI power button via QMP (systemd-logind powers off cleanly); kills after `timeoutMs`. */
  poweroff(timeoutMs?: number): Promise<number | null>;
  /** Power cut: SIGKILL qemu. */
  kill(): Promise<void>;
}

// One process per guest connection (slirp's guestfwd "cmd:" form gives it the connection on
// fd 0): unlike a chardev forward, which connects once at qemu start, this reconnects every time,
// so the emulator may be down at boot or cut and restarted mid-flow.
const PROXY_SOURCE = `'use strict';
const net = require('node:net');
const guest = new net.Socket({ fd: 0, readable: true, writable: true });
const host = net.connect(Number(process.argv[2]), process.argv[3]);
guest.pipe(host).pipe(guest);
const done = () => process.exit(0);
host.on('error', done); guest.on('error', done); host.on('close', done); guest.on('close', done);
`;

const DEFAULT_APPEND = [
  'console=ttyS0,115200',
  'root=/dev/vda',
  'rw',
  'rootfstype=ext4',
  'panic=-1',
  'net.ifnames=0',
  'loglevel=4',
  'systemd.journald.forward_to_console=1',
  'systemd.log_color=0',
  'systemd.show_status=0',
  'mitigations=off',
];

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

// VMs still running when this process exits are killed with it, not left behind.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export async function bootVm(opts: BootOptions): Promise<Vm> {
  if (!isUniversalMac(opts.mac)) throw new Error(`MAC ${opts.mac} is not a universal unicast MAC`);
  const kvm = opts.kvm ?? kvmUsable();
  const timeoutMs = opts.timeoutMs ?? (kvm ? 5 * 60_000 : 20 * 60_000);
  const work = await mkdtemp(join(tmpdir(), 'fp-qemu-'));
  const qmpPath = join(work, 'qmp.sock');
  const proxy = join(work, 'proxy.cjs');
  await writeFile(proxy, PROXY_SOURCE);

  // restrict=on: the guest reaches nothing through slirp except the guestfwd ports. slirp refuses
  // a guestfwd on its own host address, so that moves to .254 and 10.0.2.2 becomes the forward.
  const netdev = ['user', 'id=n0', 'restrict=on', 'net=10.0.2.0/24', 'host=10.0.2.254', 'dhcpstart=10.0.2.15'];
  for (const f of opts.forwards ?? []) {
    netdev.push(
      `guestfwd=tcp:${GUEST_HOST_ADDR}:${f.guestPort}-cmd:${process.execPath} ${proxy} ${f.hostPort ?? f.guestPort} ${f.hostAddr ?? '127.0.0.1'}`,
    );
  }
  const args = [
    '-nodefaults',
    '-no-user-config',
    '-machine',
    `q35,accel=${kvm ? 'kvm' : 'tcg'}`,
    '-cpu',
    kvm ? 'host' : 'max',
    '-m',
    String(opts.memoryMb ?? 512),
    '-smp',
    String(opts.cpus ?? (Number(process.env.FP_QEMU_CPUS) || 1)),
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    ...(opts.commandChannel
      ? ['-chardev', `socket,id=cmd,path=${opts.commandChannel.socket},server=on,wait=off`, '-serial', 'chardev:cmd']
      : []),
    '-qmp',
    `unix:${qmpPath},server=on,wait=off`,
    '-rtc',
    'base=utc',
    '-kernel',
    opts.kernel,
    '-initrd',
    opts.initrd,
    '-append',
    [...DEFAULT_APPEND, ...(opts.append ?? []), ...(opts.commandChannel?.append ?? [])].join(' '),
    '-drive',
    `file=${opts.image},format=raw,if=virtio,cache=unsafe`,
    '-netdev',
    netdev.join(','),
    '-device',
    `virtio-net-pci,netdev=n0,mac=${opts.mac}`,
    '-device',
    'virtio-rng-pci',
    ...(opts.tpmSocket ? tpmQemuArgs(opts.tpmSocket) : []),
    ...(opts.allowReboot ? [] : ['-no-reboot']),
  ];

  const child: ChildProcess = spawn(opts.qemu ?? 'qemu-system-x86_64', args, {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const startedAt = Date.now();
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of [...listeners]) l();
  };
  let exited = false;
  let exitCode: number | null = null;
  let stderr = '';
  let partial = '';
  const onText = (text: string) => {
    partial += text;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    const fresh = parts.map((l) => l.replace(ANSI, '').replace(/\r/g, ''));
    if (!fresh.length) return;
    lines.push(...fresh);
    if (opts.consoleLog) void appendFile(opts.consoleLog, fresh.join('\n') + '\n').catch(() => undefined);
    notify();
  };
  child.stdout!.setEncoding('utf8').on('data', onText);
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const exitPromise = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      live.delete(child);
      if (partial) onText('\n');
      exited = true;
      exitCode = code;
      clearTimeout(hardTimer);
      notify();
      void rm(work, { recursive: true, force: true }).catch(() => undefined);
      resolve(code);
    });
    child.on('error', (err) => {
      live.delete(child);
      void rm(work, { recursive: true, force: true }).catch(() => undefined);
      stderr += String(err);
      exited = true;
      notify();
      resolve(null);
    });
  });
  const hardTimer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  hardTimer.unref();

  const tail = () =>
    `\n--- last console lines ---\n${lines.slice(-40).join('\n')}${stderr ? `\n--- qemu stderr ---\n${stderr.trim()}` : ''}`;

  const waitForLine = (re: RegExp, ms = timeoutMs, from = 0): Promise<string> =>
    new Promise((resolve, reject) => {
      let scanned = from;
      const check = () => {
        for (; scanned < lines.length; scanned++) {
          if (re.test(lines[scanned]!)) return finish(() => resolve(lines[scanned]!));
        }
        if (exited) finish(() => reject(new Error(`qemu exited (code ${exitCode}) before a line matched ${re}${tail()}`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`no console line matched ${re} within ${ms} ms${tail()}`))),
        ms,
      );
      const finish = (f: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        f();
      };
      listeners.add(check);
      check();
    });

  const waitForExit = (ms = timeoutMs): Promise<number | null> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`qemu still running after ${ms} ms${tail()}`)), ms);
      void exitPromise.then((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });

  const kill = async () => {
    if (!exited) child.kill('SIGKILL');
    await exitPromise;
  };

  const poweroff = async (ms = 60_000): Promise<number | null> => {
    if (exited) return exitCode;
    try {
      await qmp(qmpPath, 'system_powerdown');
    } catch (err) {
      if (exited) return exitCode; // it was already on its way down
      await kill();
      throw err;
    }
    try {
      return await waitForExit(ms);
    } catch (err) {
      await kill();
      throw err;
    }
  };

  return {
    get lines() {
      return lines;
    },
    get exitCode() {
      return exitCode;
    },
    get exited() {
      return exited;
    },
    kvm,
    startedAt,
    waitForLine,
    waitForExit,
    poweroff,
    kill,
  };
}

/** Sends one QMP command (after the capabilities handshake) and resolves on its reply. */
export function qmp(socketPath: string, command: string, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    let stage = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`QMP ${command}: no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.on('error', fail);
    sock.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if ('event' in msg) continue;
        if ('error' in msg) return fail(new Error(`QMP ${command}: ${JSON.stringify(msg.error)}`));
        if (stage === 0 && 'QMP' in msg) {
          stage = 1;
          sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
        } else if (stage === 1 && 'return' in msg) {
          stage = 2;
          sock.write(JSON.stringify({ execute: command }) + '\n');
        } else if (stage === 2 && 'return' in msg) {
          clearTimeout(timer);
          sock.end();
          resolve(msg.return);
        }
      }
    });
  });
}
