// Builders for the agent's tests: a fake sysfs/procfs tree (FP_AGENT_SYSROOT) and config files.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { runAgent } from '../helpers/run.ts';

export interface FakeNic {
  name: string;
  address: string;
  /** Physical NICs have a /sys/class/net/X/device link; virtual ones do not. */
  physical?: boolean;
  /** 0 permanent, 1 random, 3 set by user space. */
  addrAssignType?: number;
  type?: number;
  operstate?: 'up' | 'down';
}

export interface FakeSystem {
  nics?: FakeNic[];
  /** The interface holding the default route, if any. */
  defaultRoute?: string;
  machineId?: string;
  deviceTreeSerial?: string;
  dmiSerial?: string;
  /** /etc/group's text (the agent looks up greengrass.group there). */
  groupFile?: string;
}

async function put(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
}

export async function makeSysroot(root: string, system: FakeSystem): Promise<string> {
  for (const nic of system.nics ?? []) {
    const dir = path.join(root, 'sys/class/net', nic.name);
    await put(path.join(dir, 'address'), `${nic.address}\n`);
    await put(path.join(dir, 'type'), `${nic.type ?? 1}\n`);
    await put(path.join(dir, 'addr_assign_type'), `${nic.addrAssignType ?? 0}\n`);
    await put(path.join(dir, 'operstate'), `${nic.operstate ?? 'up'}\n`);
    if (nic.physical ?? true) await mkdir(path.join(dir, 'device'), { recursive: true });
  }
  const header = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';
  const routes = (system.nics ?? []).map((n) => `${n.name}\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n`);
  if (system.defaultRoute) routes.unshift(`${system.defaultRoute}\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n`);
  await put(path.join(root, 'proc/net/route'), header + routes.join(''));
  if (system.machineId !== undefined) await put(path.join(root, 'etc/machine-id'), system.machineId);
  if (system.deviceTreeSerial !== undefined) await put(path.join(root, 'proc/device-tree/serial-number'), system.deviceTreeSerial);
  if (system.dmiSerial !== undefined) await put(path.join(root, 'sys/class/dmi/id/product_serial'), system.dmiSerial);
  if (system.groupFile !== undefined) await put(path.join(root, 'etc/group'), system.groupFile);
  return root;
}

/** Writes config.yaml from a base (endpoint, template, outputDir) plus `extra`; returns its path. */
export async function writeConfig(dir: string, extra: Record<string, unknown> = {}): Promise<string> {
  const file = path.join(dir, 'config.yaml');
  const doc = {
    iotDataEndpoint: 'localhost',
    templateName: 'fp-template',
    outputDir: path.join(dir, 'out'),
    retry: { initialDelayMs: 20, maxDelayMs: 200, deadlineMs: 2_000, attemptTimeoutMs: 2_000 },
    ...extra,
  };
  await put(file, stringify(doc));
  return file;
}

export interface AgentRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * A proxy in the environment of whoever runs the tests must not reach the agent (it reads
 * https_proxy): empty is unset to it. Tests that want a proxy pass their own.
 */
export const NO_PROXY_ENV = { https_proxy: '', HTTPS_PROXY: '', no_proxy: '', NO_PROXY: '' } as const;

/** runAgent with plain string output (and NO_COLOR kept). */
export async function agent(args: string[], env: Record<string, string> = {}): Promise<AgentRun> {
  const r = await runAgent(args, { env: { NO_COLOR: '1', ...NO_PROXY_ENV, ...env } });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
