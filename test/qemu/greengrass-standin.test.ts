// The QEMU image's iotcored stand-in, without a VM: its script runs on the host (same sh, same
// Debian mosquitto_rr as in the guest) with an identity fleet-provisioned from the QEMU fleet
// emulator (the stack's template and policies) and a drop-in written by the agent's own writer.
// What the first-boot scenario then proves in the guest is checked here in seconds: the script
// reads the drop-in, and the emulator sees the thing's session, allowed by the device policy.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeGreengrassDropIn, type GreengrassIdentity } from '../../src/agent/greengrass.ts';
import { deviceConfigYaml } from '../../src/qemu/device-image.ts';
import { startFleetEmulator, QEMU_STACK_OPTIONS, type FleetEmulator } from '../../src/qemu/fleet-emulator.ts';
import { waitForGreengrassSession } from '../../src/qemu/greengrass-session.ts';
import { STANDIN_CONNECTING, standinScript } from '../../src/qemu/greengrass-standin.ts';
import { parseAgentConfig } from '../../src/shared/config.ts';
import { CLAIM_FILES, RESULT_FILES } from '../../src/shared/device-paths.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { commandWorks } from '../helpers/commands.ts';
import { makeCsr } from '../emulator/csr.ts';
import { connectMqtt, fleetRequest } from '../helpers/emulator.ts';

const MAC = '00163e0a0b0c';
const hasClient = commandWorks('sh', ['-c', 'command -v mosquitto_rr']);
if (!hasClient && process.env.CI) throw new Error('mosquitto_rr (Debian mosquitto-clients) is missing; .ci/run installs it');

describe.skipIf(!hasClient)('the iotcored stand-in on the host (Debian mosquitto_rr against the QEMU fleet emulator)', () => {
  let work: string;
  let fleet: FleetEmulator;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fp-qemu-standin-'));
    fleet = await startFleetEmulator(work);
  });

  afterAll(async () => {
    await fleet?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The agent's own drop-in writer, with the device's config but the emulator on the host's loopback. */
  async function writeDropIn(name: string, identity: GreengrassIdentity): Promise<string> {
    const device = parseAgentConfig(
      deviceConfigYaml({ port: fleet.port, region: fleet.region, templateName: fleet.names.templateName, clientIdPrefix: QEMU_STACK_OPTIONS.clientIdPrefix, claimDir: fleet.claimDir }),
      'config.yaml',
    );
    const configDropIn = join(work, name);
    await writeGreengrassDropIn({ ...device, iotDataEndpoint: '127.0.0.1', greengrass: { ...device.greengrass, configDropIn } }, identity, {
      uid: process.getuid!(),
      gid: process.getgid!(),
    });
    return configDropIn;
  }

  async function script(name: string, dropIn: string): Promise<string> {
    const path = join(work, name);
    await writeFile(path, standinScript({ dropIn, port: fleet.port }));
    await chmod(path, 0o755);
    return path;
  }

  it('holds one session as the thing: SUBSCRIBE to deployments and PUBLISH health, allowed by the device policy', async () => {
    // Fleet provisioning by claim, as the claim policy allows it (CreateCertificateFromCsr, RegisterThing).
    const claim = { certPem: await readFile(join(fleet.claimDir, CLAIM_FILES.cert), 'utf8'), keyPem: await readFile(join(fleet.claimDir, CLAIM_FILES.key), 'utf8') };
    const client = await connectMqtt(fleet.current, claim, { clientId: `${QEMU_STACK_OPTIONS.clientIdPrefix}${MAC}` });
    const device = makeCsr('ec-p256');
    const keys = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: device.csrPem });
    expect(keys.accepted, JSON.stringify(keys.body)).toBe(true);
    const registered = await fleetRequest(client, TOPICS.registerThing(fleet.names.templateName), {
      certificateOwnershipToken: keys.body.certificateOwnershipToken,
      parameters: { DeviceId: MAC },
    });
    expect(registered.accepted, JSON.stringify(registered.body)).toBe(true);
    const thing: string = registered.body.thingName;
    const certificateId: string = keys.body.certificateId;
    const out = join(work, 'out');
    await mkdir(out);
    const identity = {
      thingName: thing,
      certificateFilePath: join(out, RESULT_FILES.cert),
      privateKeyPath: join(out, RESULT_FILES.key),
      rootCaPath: join(out, RESULT_FILES.rootCa),
    };
    await writeFile(identity.certificateFilePath, keys.body.certificatePem);
    await writeFile(identity.privateKeyPath, device.keyPem, { mode: 0o600 });
    await writeFile(identity.rootCaPath, fleet.current.caPem);
    const dropIn = await writeDropIn('zz-fleetprovisioning.yaml', identity);

    const from = fleet.log.lines.length;
    const standin = execa(await script('standin.sh', dropIn), { all: true, reject: false });
    try {
      const session = await waitForGreengrassSession(fleet, { thing, certificateId, from, timeoutMs: 20_000 });
      expect(session.connect).toBeLessThan(session.subscribe);
      expect(session.subscribe).toBeLessThan(session.publish);
    } finally {
      standin.kill();
    }
    const { all } = await standin;
    expect(STANDIN_CONNECTING.exec(all ?? '')?.slice(1, 4)).toEqual(['127.0.0.1', String(fleet.port), thing]);
  });

  it('names what the drop-in lacks and exits non-zero, without connecting', async () => {
    const thing = `${QEMU_STACK_OPTIONS.thingNamePrefix}${MAC}`;
    const full = await writeDropIn('full.yaml', { thingName: thing, certificateFilePath: '/nonexistent/c', privateKeyPath: '/nonexistent/k', rootCaPath: '/nonexistent/ca' });
    const partial = join(work, 'partial.yaml');
    await writeFile(partial, (await readFile(full, 'utf8')).replace(/^ *privateKeyPath:.*\n/m, ''));
    const from = fleet.log.lines.length;
    const lacking = await execa(await script('partial.sh', partial), { all: true, reject: false, timeout: 10_000 });
    expect([lacking.exitCode, lacking.all]).toEqual([1, `iotcored-standin: ${partial} has no privateKeyPath`]);
    const unreadable = await execa(await script('full.sh', full), { all: true, reject: false, timeout: 10_000 });
    expect(unreadable.exitCode).toBe(1);
    expect(unreadable.all).toMatch(/^iotcored-standin: cannot read \/nonexistent\/c as \S+$/);
    expect(fleet.log.lines.slice(from)).toEqual([]);
  });
});
