// The QEMU image's iotcored stand-in, without a VM: its script runs on the host (same sh, same
// Debian mosquitto_rr as in the guest) with an identity fleet-provisioned from the QEMU fleet
// emulator (the stack's template and policies) and a drop-in written by the agent's own writer.
// What the first-boot scenario then proves in the guest is checked here in seconds: the script
// reads the drop-in, and the emulator sees the thing's session, allowed by the device policy.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeGreengrassDropIn, type GreengrassIdentity } from '../../src/agent/greengrass.ts';
import { deviceConfigYaml } from '../../src/qemu/device-image.ts';
import { startFleetEmulator, QEMU_STACK_OPTIONS, type FleetEmulator } from '../../src/qemu/fleet-emulator.ts';
import { waitForGreengrassSession } from '../../src/qemu/greengrass-session.ts';
import { STANDIN_CONNECTING, STANDIN_TPM_KEY, standinScript } from '../../src/qemu/greengrass-standin.ts';
import { parseAgentConfig } from '../../src/shared/config.ts';
import { CLAIM_FILES, RESULT_FILES } from '../../src/shared/device-paths.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { commandWorks } from '../helpers/commands.ts';
import { makeCsr } from '../emulator/csr.ts';
import { connectMqtt, fleetRequest } from '../helpers/emulator.ts';
import { softwareTpmAvailable, startSoftwareTpm } from '../helpers/swtpm.ts';
import { tpmOpensslConf } from '../../src/layer/greengrass-tpm.ts';


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

// The stand-in's TPM branch: a drop-in naming `handle:0x81000002`, loaded as iotcored loads it
// (OSSL_STORE in OpenSSL's default library context), through the unit's environment only.
describe.skipIf(!softwareTpmAvailable())('the iotcored stand-in with a TPM key (swtpm behind tpm2-abrmd)', () => {
  it('loads the handle through OpenSSL\'s store with the layer\'s OpenSSL config, and names it when that is missing', { timeout: 60_000 }, async () => {
    const tpm = await startSoftwareTpm();
    const work = await mkdtemp(join(tmpdir(), 'fp-qemu-standin-tpm-'));
    try {
      // The device key at the agent's default handle, and a certificate for it (any CA will do).
      const ctx = (n: string) => join(work, n);
      await tpm.tool('tpm2_createprimary', ['-Q', '-C', 'o', '-c', ctx('p.ctx')]);
      await tpm.tool('tpm2_create', ['-Q', '-C', ctx('p.ctx'), '-G', 'ecc256', '-u', ctx('k.pub'), '-r', ctx('k.priv')]);
      await tpm.tool('tpm2_load', ['-Q', '-C', ctx('p.ctx'), '-u', ctx('k.pub'), '-r', ctx('k.priv'), '-c', ctx('k.ctx')]);
      await tpm.tool('tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', ctx('k.ctx'), '0x81000002']);
      const ca = makeCsr('ec-p256');
      await writeFile(ctx('ca.key'), ca.keyPem, { mode: 0o600 });
      await execa('openssl', ['req', '-x509', '-key', ctx('ca.key'), '-subj', '/CN=ca', '-days', '2', '-out', ctx('ca.pem')]);
      await tpm.tool('openssl', ['req', '-new', '-provider', 'tpm2', '-provider', 'default', '-key', 'handle:0x81000002', '-subj', '/CN=dev', '-out', ctx('dev.csr')]);
      await execa('openssl', ['x509', '-req', '-in', ctx('dev.csr'), '-CA', ctx('ca.pem'), '-CAkey', ctx('ca.key'), '-days', '2', '-out', ctx('dev.pem')]);

      const dropIn = ctx('zz-fleetprovisioning.yaml');
      const thing = `${QEMU_STACK_OPTIONS.thingNamePrefix}${MAC}`;
      await writeFile(dropIn, `system:\n  thingName: ${thing}\n  certificateFilePath: ${ctx('dev.pem')}\n  privateKeyPath: "handle:0x81000002"\n  rootCaPath: ${ctx('ca.pem')}\nservices:\n  aws.greengrass.NucleusLite:\n    configuration:\n      iotDataEndpoint: 127.0.0.1\n`);
      const script = ctx('standin.sh');
      await writeFile(script, standinScript({ dropIn, port: 8883 }));
      await chmod(script, 0o755);
      const openssl = ctx('openssl-tpm2.cnf');
      await writeFile(openssl, tpmOpensslConf());
      const unitEnv = { ...tpm.env, TPM2OPENSSL_TCTI: tpm.tcti };

      // With the unit's environment: the line, then it stays up as iotcored does.
      const standin = execa(script, { env: { ...unitEnv, OPENSSL_CONF: openssl }, all: true, reject: false });
      const line = await firstLineOf(standin);
      standin.kill();
      await standin;
      expect(STANDIN_TPM_KEY.exec(line)?.slice(1, 4)).toEqual(['handle:0x81000002', userInfo().username, ctx('dev.pem')]);

      // Without OpenSSL's config the store has no loader for handle: — named, exit 1.
      const bare = await execa(script, { env: unitEnv, all: true, reject: false, timeout: 20_000 });
      expect(bare.exitCode).toBe(1);
      expect(bare.all).toMatch(/^iotcored-standin: cannot load handle:0x81000002 through OpenSSL's store as \S+ \(OPENSSL_CONF unset\): /);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

/** The first line a child writes (stdout or stderr). */
function firstLineOf(child: Pick<ChildProcess, 'once'> & { all?: Readable }): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.all!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf('\n');
      if (end >= 0) resolve(text.slice(0, end));
    });
    child.once('exit', () => reject(new Error(`exited before a line: ${text}`)));
  });
}
