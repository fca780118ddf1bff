// Hand-off to the AWS IoT Device Client: its config names the new identity (checked against its
// documented keys, types and permission rules: test/helpers/device-client-schema.ts), keeps the
// image's other settings, keeps its own fleet provisioning off, and its unit is restarted.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestEmulator } from '../helpers/emulator.ts';
import { DEVICE_CLIENT_CONFIG_FILE_RULE, permissionProblems, schemaProblems } from '../helpers/device-client-schema.ts';
import { makeDevice, THING_NAME, FAKE_MEMBERS } from './device.ts';

const UNIT = 'aws-iot-device-client.service';
const RESTART_CALLS = [`show --property=ConsistsOf --value ${UNIT}`, `reset-failed ${UNIT} ${FAKE_MEMBERS.join(' ')}`, `--no-block restart ${UNIT}`];

async function deviceClientDevice(existing?: string) {
  const t = await startTestEmulator();
  const device = await makeDevice(t, { handoff: 'device-client', greengrass: { enabled: false } });
  const configFile = path.join(device.dir, 'etc', '.aws-iot-device-client', 'aws-iot-device-client.conf');
  if (existing !== undefined) {
    await mkdir(path.dirname(configFile), { recursive: true, mode: 0o745 });
    await writeFile(configFile, existing, { mode: 0o640 });
  }
  // The config names the Device Client's file; the rest of the device as makeDevice made it.
  const text = await readFile(device.configFile, 'utf8');
  await writeFile(device.configFile, `${text}deviceClient:\n  configFile: ${configFile}\n`);
  return { t, device, configFile };
}

const readJson = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

describe('hand-off to the AWS IoT Device Client', () => {
  it('writes its config as it documents it, with modes it accepts, and restarts its unit', async () => {
    const { t, device, configFile } = await deviceClientDevice();
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(0);
    const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
    const doc = await readJson(configFile);
    expect(doc).toEqual({
      endpoint: t.emulator.endpoint,
      cert: state.certificatePath,
      key: state.privateKeyPath,
      'root-ca': state.rootCaPath,
      'thing-name': THING_NAME,
      'fleet-provisioning': { enabled: false },
    });
    expect(schemaProblems(doc)).toEqual([]);
    // The identity as the Device Client checks it at start: key 600, cert and CA 644, in a 700 directory.
    expect(await permissionProblems(doc)).toEqual([]);
    expect([await modeOf(configFile), await modeOf(path.dirname(configFile))]).toEqual([DEVICE_CLIENT_CONFIG_FILE_RULE.mode, DEVICE_CLIENT_CONFIG_FILE_RULE.dirMode]);
    expect(await device.systemctlCalls()).toEqual(RESTART_CALLS);
    // No Greengrass drop-in.
    await expect(stat(device.dropIn)).rejects.toThrow();
    expect(r.stderr).toContain(`wrote the AWS IoT Device Client config ${configFile}`);
  });

  it("keeps the image's other settings and turns its own fleet provisioning off", async () => {
    const existing = {
      endpoint: 'old-ats.iot.eu-west-1.amazonaws.com',
      cert: '/old/cert.pem',
      key: '/old/key.pem',
      'thing-name': 'old',
      logging: { level: 'INFO', type: 'STDOUT', file: '/var/log/aws-iot-device-client/aws-iot-device-client.log' },
      jobs: { enabled: true, 'handler-directory': '/etc/aws-iot-device-client/jobs' },
      tunneling: { enabled: true },
      'fleet-provisioning': { enabled: true, 'template-name': 'theirs', 'template-parameters': '{"SerialNumber": "x"}' },
    };
    const { device, configFile } = await deviceClientDevice(JSON.stringify(existing));
    expect((await device.run()).exitCode).toBe(0);
    const doc = await readJson(configFile);
    expect(doc.logging).toEqual(existing.logging);
    expect(doc.jobs).toEqual(existing.jobs);
    expect(doc.tunneling).toEqual(existing.tunneling);
    expect(doc['fleet-provisioning']).toEqual({ ...existing['fleet-provisioning'], enabled: false });
    expect(doc['thing-name']).toBe(THING_NAME);
    expect(schemaProblems(doc)).toEqual([]);
  });

  it('rewrites a config that no longer names the committed identity, and follows --force', async () => {
    const { device, configFile } = await deviceClientDevice();
    expect((await device.run()).exitCode).toBe(0);
    const first = await readJson(configFile);
    await writeFile(configFile, JSON.stringify({ ...first, cert: '/somewhere/else.pem' }));
    const rerun = await device.run();
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stderr).toContain('does not name the committed identity');
    expect(await readJson(configFile)).toEqual(first);
    expect(await modeOf(configFile)).toBe(0o640);

    const forced = await device.run(['provision', '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
    const after = await readJson(configFile);
    expect([after.cert, after.key, after['root-ca']]).toEqual([state.certificatePath, state.privateKeyPath, state.rootCaPath]);
    expect(after.cert).not.toBe(first.cert);
    expect(await permissionProblems(after)).toEqual([]);
    expect((await device.restarts()).length).toBe(3);
  });

  it('holds the schema table to what it documents: wrong types and unknown keys are found', () => {
    expect(schemaProblems({ endpoint: 'e', cert: 'c', key: 'k', 'thing-name': 't', 'fleet-provisioning': { enabled: 'false' }, thingName: 'x' })).toEqual([
      expect.stringMatching(/^fleet-provisioning\.enabled: string, expected boolean/),
      'thingName: not a key the Device Client documents',
    ]);
    expect(schemaProblems({})).toHaveLength(4);
  });
});
