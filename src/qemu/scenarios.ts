// The first-boot scenarios of issue 6 (and issue 16's proxy), run against a real guest (systemd,
// the recipes' files and units, dist/fp-agent) and the emulator on the host. Six boots in all:
//   first-boot     a fresh device provisions on its first boot; files, modes, drop-in, registry;
//   reboot         the same image boots again: both units are skipped, nothing new in the cloud;
//                  the layer's testimage case (oeqa) passes in it;
//   denied-then-cut  a second device is denied by the hook (exit 78, one clear line, restarted
//                  only after RestartSec), then allowed; the emulator is cut while its request is
//                  in flight and started again; the device provisions.
//   proxy          a device provisions through tinyproxy on the host to the emulator on 443 (ALPN).
//   tpm            a device with a TPM 2.0 (Debian's swtpm on the host) and key.store tpm provisions
//                  with its key made in the TPM: no key file, the drop-in names the handle, and the
//                  TPM's state (read on the host after poweroff) holds the certificate's key there.
//   tpm-absent     key.store tpm on a device without a TPM: the unit exits 78 with one line naming it.
// Every wait is on an event (a console or emulator log line) and has a deadline.
import { X509Certificate, createPrivateKey, createPublicKey, randomInt, type KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UNIT_MODEL } from '../layer/model.ts';
import { CONFIG_DEFAULTS } from '../shared/config.ts';
import {
  CLAIM_DIR,
  CLAIM_FILES,
  GREENGRASS_DROP_IN,
  GREENGRASS_GROUP,
  GREENGRASS_TARGET,
  OUTPUT_DIR,
  PRIVATE_KEY_MODE,
  RESULT_ACCESS,
  RESULT_FILES,
  UNITS,
  identityFileNames,
  type ResultAccess,
  type ResultKind,
} from '../shared/device-paths.ts';
import { GUEST_HOST_ADDR, plainMac, type Vm } from './boot.ts';
import { agentLine, guestSeconds, indexOf, linesMatching, reEscape, unitLine } from './console.ts';
import { listInImage, parseIdFile, readFromImage, resolveOwner, statInImage } from './image.ts';
import { QEMU_STACK_OPTIONS, startFleetEmulator } from './fleet-emulator.ts';
import { startHostProxy } from './http-proxy.ts';
import { waitForGreengrassSession } from './greengrass-session.ts';
import { GREENGRASS_MQTT_PORT, IOTCORED_UNIT, STANDIN_CONNECTING, STANDIN_LINE, STANDIN_TPM_KEY } from './greengrass-standin.ts';
import { runOeqaCase } from './oeqa-case.ts';
import { readTpmState, startGuestTpm } from './swtpm.ts';
import { GREENGRASS_USER } from './rootfs.ts';
import { boot, bootDeadline, check, newDevice, type Device, type QemuRun } from './run.ts';

export interface ScenarioState {
  /** The device the first boot provisioned; the reboot scenario boots it again. */
  provisioned?: { device: Device; certificateId: string; things: number; certificates: number };
}

export interface Scenario {
  name: string;
  title: string;
  run(run: QemuRun, state: ScenarioState): Promise<void>;
}

const PROVISIONED = /fp-agent: provisioned as thing (\S+) \(certificate (\w+)\)/;
const SECRET = /PRIVATE KEY|-----BEGIN/;
const AGENT_RESTARTED = new RegExp(`fp-agent: restarted ${reEscape(GREENGRASS_TARGET)}`);
const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

/** Pure: "10s", "1min", "500ms" (systemd time spans used by the layer) in seconds. */
export function systemdSeconds(span: string): number {
  const m = /^(\d+)(ms|s|min|h)?$/.exec(span.trim());
  if (!m) throw new Error(`unsupported time span ${span}`);
  const unit = { ms: 0.001, s: 1, min: 60, h: 3600 }[m[2] ?? 's']!;
  return Number(m[1]) * unit;
}

/** Power off, then check qemu ended cleanly; a kill is the fallback, never the norm. */
async function powerOff(vm: Vm): Promise<void> {
  try {
    const code = await vm.poweroff(120_000);
    check(code === 0, `qemu exited with ${code} after the ACPI poweroff`);
  } finally {
    await vm.kill();
  }
}

const outPath = (file: string) => `${OUTPUT_DIR}/${file}`;

/** state.json as the agent left it in the powered-off image. */
async function stateJsonOf(image: string): Promise<Record<string, string>> {
  const bytes = await readFromImage(image, outPath(RESULT_FILES.state));
  check(bytes, `${outPath(RESULT_FILES.state)} is missing from the image`);
  return JSON.parse(bytes.toString()) as Record<string, string>;
}

function checkNoSecrets(vm: Vm, who: string): void {
  const leaks = vm.lines.filter((l) => SECRET.test(l));
  check(!leaks.length, `${who}: the console shows key material:\n${leaks.slice(0, 3).join('\n')}`);
}

/** Checks type, mode and owner ("user:group", names resolved against the image's own tables). */
async function checkMode(image: string, path: string, mode: number, owner = 'root:root', type: 'regular' | 'directory' = 'regular'): Promise<void> {
  const st = await statInImage(image, path);
  check(st, `${path} is missing from the image`);
  check(st.type === type, `${path}: expected a ${type}, found ${st.type}`);
  check(st.mode === mode, `${path}: expected mode ${mode.toString(8)}, found ${st.mode.toString(8)}`);
  const table = async (file: string) => parseIdFile((await readFromImage(image, file))?.toString() ?? '');
  const want = resolveOwner({ owner }, await table('/etc/passwd'), await table('/etc/group'));
  check(st.uid === want.uid && st.gid === want.gid, `${path}: expected ${owner} (${want.uid}:${want.gid}), found ${st.uid}:${st.gid}`);
}

/**
 * Greengrass uses the identity: in the guest, the iotcored stand-in starts (as ggcore, after the
 * agent's restart of the target from index `restartAt`) and dials the drop-in's endpoint on 8883;
 * the emulator then shows the thing's session (greengrass-session.ts).
 */
async function checkGreengrassUses(run: QemuRun, vm: Vm, o: { thing: string; certificateId: string; restartAt: number; logFrom: number }): Promise<void> {
  // Its first line after the restart: either it dials, or it names what it cannot read.
  const line = await vm.waitForLine(STANDIN_LINE, 120_000, o.restartAt);
  const dialing = STANDIN_CONNECTING.exec(line);
  check(dialing, `${IOTCORED_UNIT} (as ${GREENGRASS_USER}) cannot use the identity: ${line}`);
  const [, endpoint, port, thing, user] = dialing;
  check(
    endpoint === GUEST_HOST_ADDR && port === String(GREENGRASS_MQTT_PORT) && thing === o.thing && user === GREENGRASS_USER,
    `${IOTCORED_UNIT} should dial ${GUEST_HOST_ADDR}:${GREENGRASS_MQTT_PORT} as ${o.thing}, user ${GREENGRASS_USER}: ${line}`,
  );
  try {
    await waitForGreengrassSession(run.fleet, { thing: o.thing, certificateId: o.certificateId, from: o.logFrom, timeoutMs: 120_000 });
  } catch (error) {
    const guest = linesMatching(vm, new RegExp(reEscape(IOTCORED_UNIT)), o.restartAt).concat(linesMatching(vm, /fp-qemu-iotcored\[/, o.restartAt));
    throw new Error(`${(error as Error).message}\n--- the stand-in in the guest ---\n${guest.slice(-12).join('\n')}`);
  }
}

const firstBoot: Scenario = {
  name: 'first-boot',
  title: 'a fresh device provisions on its first boot, as fp-<MAC>',
  async run(run, state) {
    const device = await newDevice(run, 'first-boot');
    const logFrom = run.fleet.log.lines.length;
    const t = Date.now();
    const vm = await boot(run, device);
    let thing: string;
    let certificateId: string;
    try {
      await vm.waitForLine(unitLine.finished(UNITS.identify), bootDeadline(run));
      const [, name, cert] = PROVISIONED.exec(await vm.waitForLine(PROVISIONED, bootDeadline(run)))!;
      await vm.waitForLine(unitLine.finished(UNITS.provision), 60_000);
      run.timings['first boot to provisioned'] = Date.now() - t;
      thing = name!;
      certificateId = cert!;
      run.progress(`${device.name}: provisioned as ${thing} ${seconds(Date.now() - t)} after power-on`);
      check(thing === device.thingName, `thing name: expected ${device.thingName} (prefix + plain MAC of the NIC), got ${thing}`);
      const restart = linesMatching(vm, new RegExp(`fp-agent: (restarted|warning: systemctl restart) ${reEscape(GREENGRASS_TARGET)}`));
      check(
        restart.some((l) => l.includes('fp-agent: restarted')),
        `the agent did not restart ${GREENGRASS_TARGET}: ${restart.join(' | ') || 'no line about it'}`,
      );
      const restartAt = indexOf(vm, AGENT_RESTARTED);
      const tg = Date.now();
      await checkGreengrassUses(run, vm, { thing, certificateId, restartAt, logFrom });
      run.timings['first boot: provisioned to Greengrass session'] = Date.now() - tg;
      run.progress(`${device.name}: ${IOTCORED_UNIT} (mosquitto_rr as ${GREENGRASS_USER}) subscribed and published as ${thing} with the device certificate`);
      checkNoSecrets(vm, device.name);
      await powerOff(vm);
    } finally {
      await vm.kill();
    }
    run.timings['first boot total'] = Date.now() - t;

    // What the agent left on the disk, read from the powered-off image. With Greengrass the
    // identity is readable by its group and nobody else (issue 10; the agent's RESULT_ACCESS
    // table); state.json names the identity's files (a first provisioning uses the plain names).
    const out = outPath;
    const stateJson = await stateJsonOf(device.image);
    check(stateJson.thingName === thing, `state.json thingName ${stateJson.thingName}, expected ${thing}`);
    check(stateJson.certificateId === certificateId, `state.json certificateId ${stateJson.certificateId}, expected ${certificateId}`);
    const identity = { cert: stateJson.certificatePath!, key: stateJson.privateKeyPath!, rootCa: stateJson.rootCaPath! };
    const plain = identityFileNames();
    for (const kind of ['cert', 'key', 'rootCa'] as const) {
      check(identity[kind] === out(plain[kind]), `state.json: a first provisioning writes ${out(plain[kind])}, found ${identity[kind]}`);
    }
    const paths: Record<ResultKind, string> = { dir: OUTPUT_DIR, ...identity, state: out(RESULT_FILES.state), deviceId: out(RESULT_FILES.deviceId) };
    for (const [kind, access] of Object.entries(RESULT_ACCESS.greengrass) as [ResultKind, ResultAccess][]) {
      const owner = `root:${access.group === 'greengrass' ? GREENGRASS_GROUP : 'root'}`;
      await checkMode(device.image, paths[kind], access.mode, owner, kind === 'dir' ? 'directory' : 'regular');
    }
    await checkMode(device.image, `${CLAIM_DIR}/${CLAIM_FILES.key}`, PRIVATE_KEY_MODE);
    await checkMode(device.image, GREENGRASS_DROP_IN, 0o644);
    const configDir = await listInImage(device.image, GREENGRASS_DROP_IN.slice(0, GREENGRASS_DROP_IN.lastIndexOf('/')));
    check(configDir?.join() === GREENGRASS_DROP_IN.slice(GREENGRASS_DROP_IN.lastIndexOf('/') + 1), `config.d must hold only the drop-in, holds: ${configDir?.join(', ')}`);
    const deviceId = (await readFromImage(device.image, paths.deviceId))?.toString().trim();
    check(deviceId === plainMac(device.mac), `device-id: expected ${plainMac(device.mac)}, found ${deviceId}`);
    const certPem = (await readFromImage(device.image, identity.cert))!.toString();
    const keyPem = (await readFromImage(device.image, identity.key))!.toString();
    check(new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem)), 'the device key does not match the device certificate');
    const dropIn = (await readFromImage(device.image, GREENGRASS_DROP_IN))!.toString();
    for (const want of [`thingName: ${thing}`, `certificateFilePath: ${identity.cert}`, `privateKeyPath: ${identity.key}`, `rootCaPath: ${identity.rootCa}`, `iotDataEndpoint: ${GUEST_HOST_ADDR}`]) {
      check(dropIn.includes(want), `the Greengrass drop-in lacks "${want}":\n${dropIn}`);
    }

    // The cloud side: the thing, with the device certificate attached, made from our claim.
    const control = run.fleet.current.control;
    const described = await control.describeThing(thing);
    check(described, `the emulator has no thing ${thing}; things: ${(await control.listThings()).map((x) => x.thingName).join(', ')}`);
    check(described.principals.some((p) => p.endsWith(certificateId)), `thing ${thing} lacks certificate ${certificateId}: ${described.principals.join(', ')}`);
    const cert = await control.describeCertificate(certificateId);
    check(cert?.status === 'ACTIVE', `certificate ${certificateId} is ${cert?.status ?? 'missing'}`);
    state.provisioned = {
      device,
      certificateId,
      things: (await control.listThings()).length,
      certificates: (await control.listCertificates()).length,
    };
  },
};

const reboot: Scenario = {
  name: 'reboot',
  title: 'a reboot does not provision again',
  async run(run, state) {
    const prev = state.provisioned;
    check(prev, 'the reboot scenario needs the first-boot scenario to have passed');
    const logFrom = run.fleet.log.lines.length;
    const t = Date.now();
    const commandSocket = join(run.work, `${prev.device.name}-command.sock`);
    const vm = await boot(run, prev.device, { commandSocket });
    try {
      await vm.waitForLine(unitLine.skipped(UNITS.provision), bootDeadline(run));
      await vm.waitForLine(/Reached target multi-user\.target/, 120_000);
      run.timings['reboot to multi-user'] = Date.now() - t;
      check(indexOf(vm, unitLine.skipped(UNITS.identify)) >= 0, `${UNITS.identify} was not skipped on the second boot`);
      const agent = linesMatching(vm, agentLine);
      check(!agent.length, `the agent ran on the second boot:\n${agent.join('\n')}`);
      // Greengrass starts with the stored identity on every boot, with no agent involved.
      await checkGreengrassUses(run, vm, { thing: prev.device.thingName, certificateId: prev.certificateId, restartAt: 0, logFrom });
      run.timings['reboot to Greengrass session'] = Date.now() - t;
      // The layer's testimage case, run in this provisioned guest as testimage would run it.
      const tc = Date.now();
      const oeqa = await runOeqaCase(commandSocket, run.work);
      check(oeqa.ok, `the layer's testimage case failed in the guest:\n${oeqa.output}`);
      run.timings['testimage case'] = Date.now() - tc;
      run.progress(`${prev.device.name}: the layer's testimage case passed in the guest (${oeqa.testsRun} tests, ${seconds(Date.now() - tc)})`);
      await powerOff(vm);
    } finally {
      await vm.kill();
    }
    run.progress(`${prev.device.name}: second boot skipped both units; Greengrass reconnected as ${prev.device.thingName} (${seconds(Date.now() - t)})`);
    const control = run.fleet.current.control;
    const things = (await control.listThings()).length;
    const certificates = (await control.listCertificates()).length;
    check(things === prev.things && certificates === prev.certificates, `the registry changed on reboot: things ${prev.things}→${things}, certificates ${prev.certificates}→${certificates}`);
    // Only Greengrass's session as the thing: nothing from the claim, no fleet provisioning.
    const claimClient = `client ${QEMU_STACK_OPTIONS.clientIdPrefix}`;
    const contacts = run.fleet.log.lines.slice(logFrom).filter((l) => l.startsWith('fleet provisioning') || l.includes(claimClient));
    check(!contacts.length, `the rebooted device contacted fleet provisioning:\n${contacts.join('\n')}`);
  },
};

const deniedThenCut: Scenario = {
  name: 'denied-then-cut',
  title: 'a denied device fails cleanly and retries slowly; once allowed, an emulator outage mid-flow heals',
  async run(run) {
    const { fleet } = run;
    const device = await newDevice(run, 'denied');
    const unit = UNITS.provision;
    const restartSec = systemdSeconds(UNIT_MODEL.provision.restartSec);
    await fleet.current.control.setFaults({ denyHook: true });
    const t = Date.now();
    const vm = await boot(run, device);
    try {
      // Denied: exit 78, and the agent's last line names the cause.
      const fail1 = await vm.waitForLine(unitLine.exited(unit, 78), bootDeadline(run));
      const fail1At = vm.lines.indexOf(fail1);
      const fatal = vm.lines.slice(0, fail1At).filter((l) => agentLine.test(l)).at(-1) ?? '';
      check(/deni|reject|forbidden|403/i.test(fatal), `the failing run's last agent line does not name the denial: ${fatal}`);
      const denials = vm.lines.slice(0, fail1At).filter((l) => agentLine.test(l) && /deni/i.test(l));
      check(denials.length === 1, `expected one line about the denial, saw ${denials.length}:\n${denials.join('\n')}`);
      run.progress(`${device.name}: denied with exit 78 after ${seconds(Date.now() - t)}: ${fatal.replace(/^.*fp-agent: /, '')}`);
      // Not a tight loop: the next attempt comes RestartSec later, and only one comes.
      const fail2 = await vm.waitForLine(unitLine.exited(unit, 78), restartSec * 1000 + 180_000, fail1At + 1);
      const fail2At = vm.lines.indexOf(fail2, fail1At + 1);
      const between = vm.lines.slice(fail1At + 1, fail2At);
      const restarts = between.filter((l) => unitLine.scheduledRestart(unit).test(l));
      check(restarts.length === 1, `expected one scheduled restart between two denials, saw ${restarts.length}`);
      const gap = (guestSeconds(restarts[0]!) ?? NaN) - (guestSeconds(fail1) ?? NaN);
      check(gap >= restartSec - 0.5, `the restart was scheduled ${gap.toFixed(1)} s after the denial; RestartSec is ${restartSec} s`);
      run.timings['denied: failure to restart (guest ms)'] = Math.round(gap * 1000);
      run.progress(`${device.name}: second denial; systemd restarted the unit ${gap.toFixed(1)} s after the first (RestartSec ${restartSec} s)`);

      // Allowed now, but replies are slow: the next attempt's request is in flight when the
      // emulator is cut (closed: connections dropped, port refused).
      await fleet.current.control.setFaults({ denyHook: false, delayMs: 10_000 });
      const logFrom = fleet.log.lines.length;
      await fleet.log.waitFor(/fleet provisioning: certificate \w+ created for client/, restartSec * 1000 + 180_000, logFrom);
      const cutAt = vm.lines.length;
      await fleet.cut();
      run.progress(`${device.name}: emulator cut while the device waited for its certificate`);
      // The device notices and retries with backoff (no exit: the outage is transient). The first
      // failure is the cut request itself; the emulator stays down until a reconnect fails too.
      const failed = /fp-agent: attempt \d+ failed: .*retrying in \d+ ms/;
      const firstFail = vm.lines.indexOf(await vm.waitForLine(failed, 120_000, cutAt), cutAt);
      const retry = await vm.waitForLine(failed, 120_000, firstFail + 1);
      check(indexOf(vm, unitLine.exited(unit, 78), cutAt) < 0, 'the outage was taken for a permanent failure (exit 78)');
      const restartedAt = fleet.log.lines.length;
      await fleet.restart();
      run.progress(`${device.name}: emulator back on port ${fleet.port} after the device saw the outage (${retry.replace(/^.*fp-agent: /, '')})`);
      const provisioned = await vm.waitForLine(PROVISIONED, 300_000, cutAt);
      const [, thing, certificateId] = PROVISIONED.exec(provisioned)!;
      await vm.waitForLine(unitLine.finished(unit), 60_000, cutAt);
      run.timings['denied: power-on to provisioned'] = Date.now() - t;
      check(thing === device.thingName, `thing name: expected ${device.thingName}, got ${thing}`);
      // The stand-in gave up while there was no identity (start limit, as iotcored's unit); the
      // agent's restart of the target must bring it back.
      await checkGreengrassUses(run, vm, { thing: thing!, certificateId: certificateId!, restartAt: indexOf(vm, AGENT_RESTARTED, cutAt), logFrom: restartedAt });
      checkNoSecrets(vm, device.name);
      await powerOff(vm);
    } finally {
      await vm.kill();
    }
    run.progress(`${device.name}: provisioned after the outage (${seconds(Date.now() - t)} in all)`);
    check(await fleet.current.control.describeThing(device.thingName), `the emulator has no thing ${device.thingName}`);
    check(await statInImage(device.image, `${OUTPUT_DIR}/${RESULT_FILES.state}`), 'state.json missing after provisioning');
  },
};

/**
 * Issue 16: the guest provisions through a real HTTP CONNECT proxy on the host (tinyproxy,
 * reached through slirp's forward, allowing CONNECT to 443 only) to a second emulator playing
 * AWS IoT's port 443 (ALPN x-amzn-mqtt-ca required) on its own loopback address. The guest has
 * no forward to that emulator: the proxy is its only way there. Checked from the proxy's log, the
 * emulator's registry and the agent's line.
 */
const throughProxy: Scenario = {
  name: 'proxy',
  title: 'a device provisions through an HTTP CONNECT proxy to port 443 (ALPN)',
  async run(run) {
    const dir = join(run.work, 'proxy');
    await mkdir(dir, { recursive: true });
    const host = `127.${randomInt(64, 250)}.${randomInt(0, 255)}.${randomInt(1, 254)}`;
    const fleet = await startFleetEmulator(dir, { host, port: 443 });
    const proxy = await startHostProxy(dir).catch(async (error: unknown) => {
      await fleet.close();
      throw error;
    });
    try {
      const proxyUrl = `http://${GUEST_HOST_ADDR}:${proxy.port}`;
      const device = await newDevice(run, 'proxy', {
        fleet,
        values: { FLEETPROV_IOT_DATA_ENDPOINT: host, FLEETPROV_PORT: '443', FLEETPROV_PROXY_URL: proxyUrl, FLEETPROV_PROXY_NO_PROXY: 'localhost' },
      });
      const t = Date.now();
      // Only the proxy is forwarded: the emulator is out of the guest's reach but through it.
      const vm = await boot(run, device, { forwards: [{ guestPort: proxy.port }] });
      try {
        const [, thing, certificateId] = PROVISIONED.exec(await vm.waitForLine(PROVISIONED, bootDeadline(run)))!;
        run.timings['proxy: power-on to provisioned'] = Date.now() - t;
        run.progress(`${device.name}: provisioned as ${thing} through the proxy ${seconds(Date.now() - t)} after power-on`);
        check(thing === device.thingName, `thing name: expected ${device.thingName}, got ${thing}`);
        const via = linesMatching(vm, /fp-agent: connecting to /);
        check(via.length > 0 && via.every((l) => l.includes(`connecting to ${host}:443 through the proxy ${proxyUrl} (proxy.url)`)), `the agent did not connect through the proxy: ${via.join(' | ')}`);
        const connects = (await proxy.log()).split('\n').filter((l) => l.includes(`CONNECT ${host}:443 HTTP/1.1`));
        // The claim connection and the new certificate's check.
        check(connects.length >= 2, `the proxy's log shows ${connects.length} CONNECT ${host}:443, expected 2 or more:\n${(await proxy.log()).slice(-2000)}`);
        const described = await fleet.current.control.describeThing(thing!);
        check(described?.principals.some((p) => p.endsWith(certificateId!)), `the port-443 emulator has no thing ${thing} with certificate ${certificateId}`);
        checkNoSecrets(vm, device.name);
        await powerOff(vm);
      } finally {
        await vm.kill();
      }
      const dropIn = (await readFromImage(device.image, GREENGRASS_DROP_IN))!.toString();
      check(dropIn.includes(`url: ${JSON.stringify(proxyUrl)}`) || dropIn.includes(`url: ${proxyUrl}`), `the Greengrass drop-in does not carry the proxy on:\n${dropIn}`);
    } finally {
      await proxy.stop();
      await fleet.close();
    }
  },
};

/** The layer's config for FLEETPROV_KEY_STORE = "tpm" (FLEETPROV_TPM_HANDLE unset: the agent's default handle). */
const TPM_VALUES = { FLEETPROV_KEY_STORE: 'tpm' };
/**
 * The tpm scenario's: through tpm2-abrmd. Debian 12's tpm2-openssl 1.1.1 hashes TLS in the TPM,
 * which the kernel's resource manager cannot hold; the agent refuses that pair (tpmProvider).
 */
const TPM_ABRMD_VALUES = { ...TPM_VALUES, FLEETPROV_TPM_TCTI: 'tabrmd' };
const TPM_HANDLE = CONFIG_DEFAULTS.key.tpmHandle;
/** How OpenSSL's tpm2 provider and Greengrass lite name a persistent key (docs/agent.md). */
const TPM_KEY_URI = `handle:0x${TPM_HANDLE.toString(16).padStart(8, '0')}`;
const spki = (key: string | KeyObject) => (typeof key === 'string' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });

/**
 * Issue 16: a device whose TPM 2.0 is Debian's swtpm on the host (QEMU's TPM emulator backend,
 * tpm-tis; bookworm's kernel has tpm_tis built in, so /dev/tpmrm0 is there from early boot) and
 * whose config is the layer's for FLEETPROV_KEY_STORE = "tpm". The key is made in the TPM: no key
 * file in the output directory, state.json and the drop-in name the handle, and the TPM's own
 * state, read on the host by a second swtpm after the guest is off, holds the certificate's key
 * at that handle (and nothing at the agent's other one).
 */
const withTpm: Scenario = {
  name: 'tpm',
  title: 'a device with a TPM 2.0 (swtpm) provisions with its key made in the TPM (key.store tpm)',
  async run(run) {
    const device = await newDevice(run, 'tpm', { values: TPM_ABRMD_VALUES });
    const tpmDir = join(run.work, 'tpm-state');
    await mkdir(tpmDir, { recursive: true });
    const tpm = await startGuestTpm(tpmDir);
    const t = Date.now();
    let thing: string;
    let certificateId: string;
    try {
      const vm = await boot(run, device, { tpmSocket: tpm.socket });
      try {
        // Provisioned, or the unit's first failed run (the agent gives up on transient faults after
        // retry.deadlineMs): then its last lines say why, without waiting for the boot deadline.
        const failed = new RegExp(`${reEscape(UNITS.provision)}: Main process exited, code=exited, status=\\d+`);
        // Within 8 min of power-on (a loaded machine's TCG boot takes 4-5): vitest gives a test 10,
        // and a timeout here says why, with the console's last lines.
        const first = await vm.waitForLine(new RegExp(`${PROVISIONED.source}|${failed.source}`), Math.min(bootDeadline(run), 480_000));
        const agent = linesMatching(vm, agentLine);
        check(PROVISIONED.test(first), `${first.replace(/^.*?: /, '')} before the device was provisioned; the agent's last lines:\n${agent.slice(-4).join('\n')}`);
        const [, name, cert] = PROVISIONED.exec(first)!;
        await vm.waitForLine(unitLine.finished(UNITS.provision), 60_000);
        run.timings['tpm: power-on to provisioned'] = Date.now() - t;
        thing = name!;
        certificateId = cert!;
        run.progress(`${device.name}: provisioned as ${thing} with its key in the TPM ${seconds(Date.now() - t)} after power-on`);
        check(thing === device.thingName, `thing name: expected ${device.thingName} (prefix + plain MAC of the NIC), got ${thing}`);
        // Greengrass's side: the iotcored stand-in, as ggcore with the layer's drop-in for its unit,
        // loads the handle through OpenSSL's store as iotcored does, and it is the certificate's key.
        const standin = await vm.waitForLine(STANDIN_LINE, 120_000, indexOf(vm, AGENT_RESTARTED));
        const loaded = STANDIN_TPM_KEY.exec(standin);
        check(loaded, `${IOTCORED_UNIT} (as ${GREENGRASS_USER}) cannot use the TPM key: ${standin}`);
        check(loaded[1] === TPM_KEY_URI && loaded[2] === GREENGRASS_USER, `${IOTCORED_UNIT} should load ${TPM_KEY_URI} as ${GREENGRASS_USER}: ${standin}`);
        run.progress(`${device.name}: ${IOTCORED_UNIT} loaded ${TPM_KEY_URI} as ${GREENGRASS_USER} through OpenSSL's store`);
        checkNoSecrets(vm, device.name);
        await powerOff(vm);
      } finally {
        await vm.kill();
      }
    } finally {
      await tpm.stop();
    }
    run.timings['tpm total boot'] = Date.now() - t;

    // The disk: the identity names the TPM key, and no private key exists as a file.
    const stateJson = await stateJsonOf(device.image);
    check(stateJson.certificateId === certificateId, `state.json certificateId ${stateJson.certificateId}, expected ${certificateId}`);
    check(stateJson.privateKeyPath === TPM_KEY_URI, `state.json privateKeyPath: expected ${TPM_KEY_URI}, found ${stateJson.privateKeyPath}`);
    const files = (await listInImage(device.image, OUTPUT_DIR)) ?? [];
    check(!files.includes(RESULT_FILES.key) && !files.some((f) => /key/i.test(f)), `${OUTPUT_DIR} holds a key file with key.store tpm: ${files.join(', ')}`);
    for (const f of files) {
      const bytes = await readFromImage(device.image, outPath(f));
      check(!bytes || !/PRIVATE KEY/.test(bytes.toString()), `${outPath(f)} holds a private key with key.store tpm`);
    }
    const dropIn = (await readFromImage(device.image, GREENGRASS_DROP_IN))!.toString();
    check(
      dropIn.includes(`privateKeyPath: ${TPM_KEY_URI}`) || dropIn.includes(`privateKeyPath: ${JSON.stringify(TPM_KEY_URI)}`),
      `the Greengrass drop-in does not name the TPM key as privateKeyPath ${TPM_KEY_URI}:\n${dropIn}`,
    );
    const certPem = (await readFromImage(device.image, stateJson.certificatePath!))!.toString();
    const certKey = new X509Certificate(certPem).publicKey;

    // The TPM: read from swtpm's state on the host, not from the guest's word.
    const tr = Date.now();
    const inTpm = await readTpmState(tpmDir, async (state) => ({
      handles: state.persistentHandles,
      pem: state.persistentHandles.includes(TPM_HANDLE) ? await state.publicKeyPem(TPM_HANDLE) : undefined,
    }));
    run.timings['tpm: state read on the host'] = Date.now() - tr;
    const hex = (h: number) => `0x${h.toString(16)}`;
    check(inTpm.pem, `the TPM has no persistent object at ${hex(TPM_HANDLE)}; persistent handles: ${inTpm.handles.map(hex).join(', ') || 'none'}`);
    check(inTpm.handles.length === 1, `the TPM should hold only the device key at ${hex(TPM_HANDLE)}; persistent handles: ${inTpm.handles.map(hex).join(', ')}`);
    check(spki(inTpm.pem).equals(spki(certKey)), `the key at ${hex(TPM_HANDLE)} in the TPM is not the key of the device certificate ${certificateId}`);
    run.progress(`${device.name}: the TPM holds the certificate's key at ${hex(TPM_HANDLE)}; no key file, the drop-in names ${TPM_KEY_URI}`);

    // The cloud side, as on the first boot.
    const control = run.fleet.current.control;
    const described = await control.describeThing(thing);
    check(described?.principals.some((p) => p.endsWith(certificateId)), `the emulator has no thing ${thing} with certificate ${certificateId}`);
    const registered = await control.describeCertificate(certificateId);
    check(registered?.status === 'ACTIVE', `certificate ${certificateId} is ${registered?.status ?? 'missing'}`);
    // A certificate's id is the SHA-256 of its DER (as AWS IoT makes it): the device holds that one.
    const fingerprint = new X509Certificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase();
    check(fingerprint === certificateId, `the device's certificate (SHA-256 ${fingerprint}) is not the emulator's ${certificateId}`);
  },
};

/**
 * Issue 16: the layer's key.store tpm config on a device without a TPM (no TPM device on the VM):
 * the unit exits 78 and the agent's last line before it names the missing TPM; nothing reaches
 * the cloud. Then a power cut: the image holds nothing the check needs.
 */
const tpmAbsent: Scenario = {
  name: 'tpm-absent',
  title: 'key.store tpm without a TPM: the unit exits 78 with one line naming the TPM',
  async run(run) {
    const device = await newDevice(run, 'tpm-absent', { values: TPM_VALUES });
    const logFrom = run.fleet.log.lines.length;
    const t = Date.now();
    const vm = await boot(run, device);
    try {
      const fail = await vm.waitForLine(unitLine.exited(UNITS.provision, 78), bootDeadline(run));
      run.timings['tpm-absent: power-on to exit 78'] = Date.now() - t;
      const failAt = vm.lines.indexOf(fail);
      const agent = vm.lines.slice(0, failAt).filter((l) => agentLine.test(l));
      const about = agent.filter((l) => /\bTPM\b/.test(l));
      check(about.length === 1, `expected one agent line about the TPM, saw ${about.length}:\n${agent.join('\n')}`);
      check(/no TPM at \/dev\/tpmrm0/.test(about[0]!) && agent.at(-1) === about[0], `the agent's last line does not name the missing TPM: ${agent.at(-1) ?? 'no agent line'}`);
      run.progress(`${device.name}: exit 78 after ${seconds(Date.now() - t)}: ${about[0]!.replace(/^.*fp-agent: /, '')}`);
      checkNoSecrets(vm, device.name);
    } finally {
      await vm.kill();
    }
    const contacts = run.fleet.log.lines.slice(logFrom).filter((l) => l.startsWith('fleet provisioning') || l.includes(`client ${QEMU_STACK_OPTIONS.clientIdPrefix}`));
    check(!contacts.length, `a device without a TPM contacted fleet provisioning:\n${contacts.join('\n')}`);
  },
};

/** What `npm run test:qemu` and `fp-yocto qemu-test` run, in order. */
export const SCENARIOS: readonly Scenario[] = [firstBoot, reboot, deniedThenCut, throughProxy, tpmAbsent, withTpm];
