// One QEMU test run: the cached root filesystem, a work directory, the emulator on the host, and
// devices (a universal MAC + a per-device image holding what the recipes install). Shared by the
// vitest file (test/qemu/) and `fp-yocto qemu-test`, so both run the same scenarios.
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootVm, kvmUsable, macFromSeed, plainMac, type Forward, type Vm } from './boot.ts';
import { GREENGRASS_MQTT_PORT } from './greengrass-standin.ts';
import { agentBundlePath, deviceOverlay } from './device-image.ts';
import type { RecipeValues } from '../layer/config-yaml.ts';
import { QEMU_STACK_OPTIONS, startFleetEmulator, type FleetEmulator } from './fleet-emulator.ts';
import { makeImage } from './image.ts';
import { COMMAND_CHANNEL_ARG } from './oeqa-case.ts';
import { preflightProblem } from './preflight.ts';
import { ensureRootfs, type Rootfs } from './rootfs.ts';

export interface RunOptions {
  /** Progress lines (the CLI prints them; vitest logs them). */
  progress?: (line: string) => void;
  /** Force KVM on or off; default: detection (FP_QEMU_ACCEL overrides it). */
  kvm?: boolean;
  /** Keep the work directory (images, serial logs, emulator state) after the run. */
  keep?: boolean;
}

export interface Device {
  name: string;
  mac: string;
  /** The thing name the template gives it: prefix + plain MAC. */
  thingName: string;
  image: string;
  /** Boots so far (each writes <work>/<name>-<n>.console.log). */
  boots: number;
}

export interface QemuRun {
  rootfs: Rootfs;
  work: string;
  fleet: FleetEmulator;
  kvm: boolean;
  progress: (line: string) => void;
  /** Named durations (ms) for the summary and docs/qemu-test.md. */
  timings: Record<string, number>;
  keep: boolean;
}

export async function startRun(opts: RunOptions = {}): Promise<QemuRun> {
  const progress = opts.progress ?? (() => undefined);
  const problem = preflightProblem();
  if (problem) throw new Error(problem);
  const bundle = agentBundlePath();
  await access(bundle).catch(() => {
    throw new Error(`no agent bundle at ${bundle}: run \`npm run build\` first`);
  });
  const timings: Record<string, number> = {};
  let t = Date.now();
  const rootfs = await ensureRootfs({ log: (l) => progress(`rootfs: ${l}`) });
  timings[rootfs.cached ? 'rootfs (cached)' : 'rootfs build'] = Date.now() - t;
  progress(rootfs.cached ? `rootfs: cached (${rootfs.dir})` : `rootfs: built in ${Math.round((Date.now() - t) / 1000)} s`);
  const work = await mkdtemp(join(tmpdir(), 'fp-qemu-test-'));
  t = Date.now();
  const fleet = await startFleetEmulator(work);
  timings['emulator setup'] = Date.now() - t;
  progress(`emulator: listening on 127.0.0.1:${fleet.port}, forwarded to the guest; work dir ${work}`);
  return { rootfs, work, fleet, kvm: opts.kvm ?? kvmUsable(), progress, timings, keep: opts.keep ?? false };
}

export async function endRun(run: QemuRun | undefined): Promise<void> {
  if (!run) return;
  await run.fleet.close();
  if (run.keep) run.progress(`kept ${run.work} (images, serial logs, emulator state)`);
  else await rm(run.work, { recursive: true, force: true });
}

/**
 * A new device: its own MAC and a fresh image with the recipes' files for this emulator (or
 * `opts.fleet`), with `opts.values` over the FLEETPROV_* values.
 */
export async function newDevice(run: QemuRun, name: string, opts: { fleet?: FleetEmulator; values?: RecipeValues } = {}): Promise<Device> {
  const mac = macFromSeed(`fp-yocto qemu-test ${name}`);
  const t = Date.now();
  const fleet = opts.fleet ?? run.fleet;
  const overlay = await deviceOverlay({
    port: fleet.port,
    region: fleet.region,
    templateName: fleet.names.templateName,
    clientIdPrefix: QEMU_STACK_OPTIONS.clientIdPrefix,
    claimDir: fleet.claimDir,
    ...(opts.values ? { values: opts.values } : {}),
  });
  await mkdir(join(run.work, 'images'), { recursive: true });
  const image = await makeImage({ base: run.rootfs.image, out: join(run.work, 'images', `${name}.img`), overlay });
  run.timings[`image ${name}`] = Date.now() - t;
  return { name, mac, thingName: `${QEMU_STACK_OPTIONS.thingNamePrefix}${plainMac(mac)}`, image, boots: 0 };
}

/**
 * With `commandSocket`, the guest also serves the test-only command channel there (oeqa-case.ts);
 * with `tpmSocket`, it has a TPM 2.0 backed by that swtpm (swtpm.ts).
 */
export function boot(run: QemuRun, device: Device, opts: { commandSocket?: string; forwards?: Forward[]; tpmSocket?: string } = {}): Promise<Vm> {
  device.boots += 1;
  run.progress(`${device.name}: boot ${device.boots} (MAC ${device.mac}, ${run.kvm ? 'KVM' : 'TCG'}${opts.tpmSocket ? ', TPM 2.0 from swtpm' : ''})`);
  return bootVm({
    image: device.image,
    kernel: run.rootfs.kernel,
    initrd: run.rootfs.initrd,
    mac: device.mac,
    kvm: run.kvm,
    forwards: opts.forwards ?? greengrassForwards(run.fleet.port),
    consoleLog: join(run.work, `${device.name}-${device.boots}.console.log`),
    ...(opts.tpmSocket ? { tpmSocket: opts.tpmSocket } : {}),
    ...(opts.commandSocket ? { commandChannel: { socket: opts.commandSocket, append: [COMMAND_CHANNEL_ARG] } } : {}),
  });
}

/**
 * The agent dials the emulator on the port its config names; Greengrass always dials 8883 (the
 * drop-in has no port), so that is forwarded to the emulator too.
 */
export function greengrassForwards(port: number): Forward[] {
  return port === GREENGRASS_MQTT_PORT ? [{ guestPort: port }] : [{ guestPort: port }, { guestPort: GREENGRASS_MQTT_PORT, hostPort: port }];
}

/** How long a boot may take to reach a unit's result: TCG is ~75-90 s here, give it room. */
export const bootDeadline = (run: QemuRun): number => (run.kvm ? 180_000 : 600_000);

/** A failed check: the message says what was expected and what was seen. */
export function check(ok: unknown, message: string): asserts ok {
  if (!ok) throw new Error(message);
}
