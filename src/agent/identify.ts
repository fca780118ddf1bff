// `fp-agent identify`: reads the device id from the configured source. For `mac`, the interface
// holding the default route wins; without one (no link yet) we wait, bounded, and then fall back
// to the first physical NIC with a universally administered MAC.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../shared/config.ts';
import { RESULT_FILES } from '../shared/device-paths.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { readText as readTextFile } from '../shared/file-calls.ts';
import { formatMac, formatSerial, isPlaceholderSerial, isUniversalMac } from './device-id.ts';
import { DeadlineError } from './backoff.ts';
import type { FileAccess } from './file-access.ts';
import { Fault } from './errors.ts';
import { readRegularFile } from './local-files.ts';
import { log } from './log.ts';
import { sysroot } from './test-hooks.ts';

export interface Identity {
  deviceId: string;
  /** Where it came from, for the log: "mac of eth0", "/etc/machine-id", ... */
  origin: string;
}

/** How long to wait for a default route before taking the first physical NIC instead. */
const LINK_WAIT_MAX_MS = 30_000;
const POLL_MS = 250;
const ARPHRD_ETHER = '1';

const root = (p: string) => path.join(sysroot() || '/', p);

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readTextFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The interface of the lowest-metric default route in /proc/net/route, if any. */
export function defaultRouteInterface(routeTable: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of routeTable.split('\n').slice(1)) {
    const [iface, destination, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (!iface || destination !== '00000000' || mask !== '00000000') continue;
    if ((Number.parseInt(flags ?? '0', 16) & 0x1) === 0) continue; // RTF_UP
    const m = Number(metric ?? 0);
    if (!best || m < best.metric) best = { iface, metric: m };
  }
  return best?.iface;
}

interface Nic {
  name: string;
  address: string;
  up: boolean;
}

/** Physical (backed by a device), Ethernet-type NICs with a universal MAC, sorted by name. */
async function physicalNics(): Promise<Nic[]> {
  const netDir = root('sys/class/net');
  const names = (await readdir(netDir).catch(() => [] as string[])).sort();
  const nics: Nic[] = [];
  for (const name of names) {
    const dir = path.join(netDir, name);
    // Virtual interfaces (lo, bridges, veth, tun, docker0...) have no `device` link.
    const device = await readdir(path.join(dir, 'device')).then(() => true, () => false);
    if (!device) continue;
    if ((await readText(path.join(dir, 'type')))?.trim() !== ARPHRD_ETHER) continue;
    // addr_assign_type 0 = permanent (burned in); 1 random, 2 stolen, 3 set by user space.
    const assign = (await readText(path.join(dir, 'addr_assign_type')))?.trim();
    if (assign !== undefined && assign !== '0') continue;
    const address = (await readText(path.join(dir, 'address')))?.trim() ?? '';
    if (!isUniversalMac(address)) continue;
    const up = (await readText(path.join(dir, 'operstate')))?.trim() === 'up';
    nics.push({ name, address, up });
  }
  return nics;
}

async function identifyByMac(config: AgentConfig, deadline: number): Promise<Identity> {
  const { format, interface: wanted } = config.deviceId;
  const started = Date.now();
  const linkWaitEnd = Math.min(deadline, started + LINK_WAIT_MAX_MS);
  let waiting = false;
  let polls = 1;
  for (;;) {
    if (wanted) {
      const address = (await readText(root(`sys/class/net/${wanted}/address`)))?.trim();
      if (address && /[1-9a-f]/i.test(address)) return { deviceId: formatMac(address, format), origin: `MAC of ${wanted}` };
    } else {
      const nics = await physicalNics();
      const routeIface = defaultRouteInterface((await readText(root('proc/net/route'))) ?? '');
      const routed = nics.find((n) => n.name === routeIface);
      if (routed) return { deviceId: formatMac(routed.address, format), origin: `MAC of ${routed.name}, the default route` };
      if (nics.length > 0 && Date.now() >= linkWaitEnd) {
        const nic = nics.find((n) => n.up) ?? nics[0]!;
        return { deviceId: formatMac(nic.address, format), origin: `MAC of ${nic.name}, the first physical NIC` };
      }
    }
    if (Date.now() >= deadline) {
      throw new DeadlineError(
        Date.now() - started,
        polls,
        wanted ? `no MAC address on interface ${wanted}` : 'no usable device id: no physical network interface with a universal MAC address',
      );
    }
    polls++;
    if (!waiting) log(wanted ? `waiting for interface ${wanted}` : 'waiting for a network link (default route)');
    waiting = true;
    await sleep(POLL_MS);
  }
}

/** The id in a file; `field` names the setting ("deviceId.path", "deviceId.source machine-id") in messages. */
async function identifyFromFile(file: string, field: string, format: AgentConfig['deviceId']['format']): Promise<Identity> {
  const fail = (problem: string) => new Fault('deviceIdSource', `${field} ${file}: ${problem}`);
  const text = await readRegularFile('deviceIdSource', field, file, 'a file holding the device id');
  if (isPlaceholderSerial(text) || text.trim() === 'uninitialized') {
    throw fail(`holds no usable device id: ${JSON.stringify(text.replaceAll('\0', '').trim().slice(0, 64))}`);
  }
  const deviceId = formatSerial(text, format);
  if (!deviceId) throw fail('holds no usable device id');
  return { deviceId, origin: file };
}

/** Reads the device id from its source; waits at most until `deadline` (epoch ms) for a NIC (then exit 75). */
export async function identify(config: AgentConfig, deadline: number): Promise<Identity> {
  const { source, format, path: file } = config.deviceId;
  switch (source) {
    case 'mac':
      return identifyByMac(config, deadline);
    case 'machine-id':
      return identifyFromFile(root('etc/machine-id'), 'deviceId.source machine-id:', format);
    case 'device-tree-serial': {
      const primary = root('proc/device-tree/serial-number');
      const fallback = root('sys/firmware/devicetree/base/serial-number');
      return identifyFromFile((await readText(primary)) !== undefined ? primary : fallback, 'deviceId.source device-tree-serial:', format);
    }
    case 'dmi-serial':
      return identifyFromFile(root('sys/class/dmi/id/product_serial'), 'deviceId.source dmi-serial:', format);
    case 'file':
      return identifyFromFile(file!, 'deviceId.path', format);
  }
}

export function deviceIdFile(config: AgentConfig): string {
  return path.join(config.outputDir, RESULT_FILES.deviceId);
}

/** The stored device id, if `identify` ran before. */
export async function readStoredDeviceId(config: AgentConfig): Promise<string | undefined> {
  const text = (await readText(deviceIdFile(config)))?.trim();
  return text || undefined;
}

export async function storeDeviceId(config: AgentConfig, deviceId: string, access: FileAccess): Promise<void> {
  await writeFileAtomic(deviceIdFile(config), `${deviceId}\n`, access);
}
