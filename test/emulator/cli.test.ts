// The real `fp-yocto emulator` process, and reaching it from another process.
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectEmulator, ensureEmulator, type EmulatorInfo } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { runCli } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { claimPolicyDocument, connectMqtt, fleetRequest, spawnCliEmulator } from '../helpers/emulator.ts';
import { makeCsr } from './csr.ts';

describe('fp-yocto emulator', () => {
  it('prints endpoint, CA, state dir and control URL; serves MQTT and the control plane; SIGINT stops it cleanly', async () => {
    const dir = path.join(await tmpDir(), 'state');
    const { child, lines } = await spawnCliEmulator(dir, ['--server-name', 'emu.test']);
    const endpoint = /^endpoint:\s+(\S+):(\d+)/.exec(lines.find((l) => l.startsWith('endpoint:'))!)!;
    expect(endpoint[1]).toBe('localhost');
    expect(lines.find((l) => l.startsWith('root CA:'))).toContain(path.join(dir, 'root-ca.pem'));
    expect(lines.find((l) => l.startsWith('state dir:'))).toContain(dir);
    const info = JSON.parse(await readFile(path.join(dir, 'emulator.json'), 'utf8')) as EmulatorInfo;
    expect(lines.find((l) => l.startsWith('control URL:'))).toContain(info.controlUrl);
    expect(info.port).toBe(Number(endpoint[2]));

    // A hand-written provisioning session against the other process.
    const control = (await connectEmulator(dir))!;
    await control.createPolicy('claim', claimPolicyDocument('cli-template'));
    await control.createProvisioningTemplate({
      templateName: 'cli-template',
      enabled: true,
      provisioningRoleArn: 'arn:aws:iam::000000000000:role/x',
      templateBody: JSON.stringify({
        Parameters: { Name: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
        Resources: {
          thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { 'Fn::Sub': 'cli-${Name}' } } },
          certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' } },
        },
      }),
    });
    const claimCsr = makeCsr('ec-p256');
    const claimCert = await control.createCertificateFromCsr(claimCsr.csrPem, true);
    await control.attachPolicy('claim', claimCert.certificateArn);
    const caPem = (await control.getRootCa()).pem;
    const server = { endpoint: 'emu.test', port: info.port, caPem };
    // The server certificate carries --server-name; resolve it to loopback by hand.
    const mqtt = await connectMqtt({ ...server, endpoint: '127.0.0.1' }, { certPem: claimCert.certificatePem, keyPem: claimCsr.keyPem }, { clientId: 'fleetprov-cli', servername: 'emu.test' });
    const created = await fleetRequest(mqtt, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem });
    const registered = await fleetRequest(mqtt, TOPICS.registerThing('cli-template'), { certificateOwnershipToken: created.body.certificateOwnershipToken, parameters: { Name: 'one' } });
    expect(registered.body).toEqual({ thingName: 'cli-one', deviceConfiguration: {} });
    mqtt.end(true);

    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(existsSync(path.join(dir, 'emulator.json'))).toBe(false);
    expect(await connectEmulator(dir)).toBeUndefined();
  });

  it('names the port when it is in use, in one line', async () => {
    const dir = path.join(await tmpDir(), 'state');
    const { child } = await spawnCliEmulator(dir);
    const { port } = JSON.parse(await readFile(path.join(dir, 'emulator.json'), 'utf8')) as EmulatorInfo;
    const result = await runCli(['emulator', '--port', String(port), '--state-dir', path.join(dir, '..', 'other')]);
    expect(result.exitCode).toBe(1);
    expect(String(result.stderr).trim()).toBe(`error: port ${port} on 127.0.0.1 is already in use: stop what listens there or pass --port`);
    child.kill('SIGTERM');
    expect((await child).exitCode).toBe(0);
  });

  it('--help explains what it is and where the CA is', async () => {
    const result = await runCli(['emulator', '--help']);
    expect(result.exitCode).toBe(0);
    expect(String(result.stdout)).toMatch(/root-ca\.pem/);
    expect(String(result.stdout)).toMatch(/--state-dir/);
  });
});

/** Stops a detached emulator (not our child, so no exit event): signal it, then watch the pid go. */
async function stopDetached(pid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (alive()) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('connectEmulator / ensureEmulator', () => {
  it('treats an emulator.json left by a dead process as stale', async () => {
    const dir = await tmpDir();
    const dead = await execa('node', ['-e', 'console.log(process.pid)']);
    await writeFile(path.join(dir, 'emulator.json'), JSON.stringify({ pid: Number(dead.stdout), host: '127.0.0.1', port: 1, endpoint: 'localhost', controlUrl: 'http://127.0.0.1:1/control', caPath: 'x' }));
    await writeFile(path.join(dir, 'control-token'), 'abc\n');
    expect(await connectEmulator(dir)).toBeUndefined();
    expect(existsSync(path.join(dir, 'emulator.json'))).toBe(false);
  });

  it('starts one in the background once, then reuses it', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'fp-ensure-'));
    const dir = path.join(root, 'state');
    const first = await ensureEmulator({ dir, port: 0 });
    const info = JSON.parse(await readFile(path.join(dir, 'emulator.json'), 'utf8')) as EmulatorInfo;
    onTestFinished(async () => {
      await stopDetached(info.pid);
      await rm(root, { recursive: true, force: true });
    });
    expect(first).toMatchObject({ started: true, endpoint: 'localhost', port: info.port, caPath: path.join(dir, 'root-ca.pem') });
    expect(info.pid).not.toBe(process.pid);
    const second = await ensureEmulator({ dir, port: 0 });
    expect(second).toMatchObject({ started: false, port: first.port });
    await first.control.createThingGroup('g');
    expect(await second.control.listThingsInThingGroup('g')).toEqual([]);
    await expect(second.control.listThingsInThingGroup('nope')).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
