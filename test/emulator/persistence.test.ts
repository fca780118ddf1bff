// The registry and the CA survive a restart on the same state dir; the registry is SQLite, and an
// older emulator's registry.json moves into it.
import { execa } from 'execa';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CertificateAuthority, certificateIdOf, createCa } from '../../src/emulator/ca.ts';
import { connectEmulator, startEmulator } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import {
  CLAIM_POLICY,
  claimPolicyDocument,
  CLIENT_ID_PREFIX,
  connectMqtt,
  DEVICE_POLICY,
  devicePolicyDocument,
  fleetRequest,
  startTestEmulator,
  TEMPLATE_NAME,
  templateBody,
} from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { makeCsr } from './csr.ts';

describe('restart persistence', () => {
  it('keeps CA, certificates with status, policies, templates, things and groups; devices reconnect', async () => {
    const t = await startTestEmulator();
    const dir = t.emulator.dir;
    await t.emulator.control.createThingGroup('kept-group');
    const claim = await connectMqtt(t.emulator, t.claim, { clientId: `${CLIENT_ID_PREFIX}persist` });
    const { csrPem, keyPem } = makeCsr('ec-p256');
    const created = await fleetRequest(claim, TOPICS.createFromCsr, { certificateSigningRequest: csrPem });
    await fleetRequest(claim, TOPICS.registerThing(TEMPLATE_NAME), { certificateOwnershipToken: created.body.certificateOwnershipToken, parameters: { DeviceId: '020000000099' } });
    const pending = await fleetRequest(claim, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem });
    const caPem = t.emulator.caPem;
    await t.emulator.close();
    expect(existsSync(path.join(dir, 'emulator.json'))).toBe(false);
    expect(statSync(path.join(dir, 'root-ca.key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'control-token')).mode & 0o777).toBe(0o600);

    const again = await startEmulator({ port: 0, dir });
    try {
      expect(again.caPem).toBe(caPem);
      const { control } = again;
      expect(await control.describeThing('fp-020000000099')).toMatchObject({ principals: [expect.stringContaining(created.body.certificateId)] });
      expect(await control.describeCertificate(created.body.certificateId)).toMatchObject({ status: 'ACTIVE' });
      expect(await control.describeCertificate(pending.body.certificateId)).toMatchObject({ status: 'PENDING_ACTIVATION' });
      expect(await control.describeProvisioningTemplate(TEMPLATE_NAME)).toMatchObject({ enabled: true });
      expect(await control.listAttachedPolicies(t.claim.certificateId)).toEqual(['fp-test-claim-policy']);
      expect(await control.listThingsInThingGroup('kept-group')).toEqual([]);
      // The ownership token of the pending certificate is still good after the restart.
      const claimAgain = await connectMqtt(again, t.claim, { clientId: `${CLIENT_ID_PREFIX}persist-2` });
      const registered = await fleetRequest(claimAgain, TOPICS.registerThing(TEMPLATE_NAME), {
        certificateOwnershipToken: pending.body.certificateOwnershipToken,
        parameters: { DeviceId: '020000000098' },
      });
      expect(registered.accepted).toBe(true);
      const device = await connectMqtt(again, { certPem: created.body.certificatePem, keyPem }, { clientId: 'fp-020000000099' });
      expect(device.connected).toBe(true);
      // Other processes find it through emulator.json.
      const remote = await connectEmulator(dir);
      expect(await remote!.describeThing('fp-020000000098')).toMatchObject({ thingName: 'fp-020000000098' });
    } finally {
      await again.close();
    }
  });

  it('refuses a second emulator on the same state dir', async () => {
    const t = await startTestEmulator();
    await expect(startEmulator({ port: 0, dir: t.emulator.dir })).rejects.toThrow(/already running/);
  });
});

describe('the registry on disk', () => {
  it('moves a registry.json of an older emulator into the database, then renames it aside', async () => {
    const root = await tmpDir('fp-migrate-');
    const dir = path.join(root, 'state');
    await mkdir(dir, { recursive: true });
    // The state an older emulator left: its CA, and registry.json with a fleet and one device.
    const ca = createCa();
    await writeFile(path.join(dir, 'root-ca.pem'), ca.certPem);
    await writeFile(path.join(dir, 'root-ca.key.pem'), ca.keyPem, { mode: 0o600 });
    const authority = new CertificateAuthority(ca);
    const claimKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const claimPem = authority.issueClient(claimKey.publicKey.export({ type: 'spki', format: 'der' }));
    const devicePem = authority.issueClient(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }));
    const claimId = certificateIdOf(claimPem);
    const deviceId = certificateIdOf(devicePem);
    const cert = (certificateId: string, certificatePem: string, policies: string[]) => ({
      certificateId,
      certificatePem,
      status: 'ACTIVE',
      creationDate: '2025-01-01T00:00:00.000Z',
      notAfter: '2049-12-31T00:00:00.000Z',
      policies,
    });
    const legacy = {
      version: 1,
      certificates: { [claimId]: cert(claimId, claimPem, [CLAIM_POLICY]), [deviceId]: { ...cert(deviceId, devicePem, [DEVICE_POLICY]), claimCertificateId: claimId } },
      policies: {
        [CLAIM_POLICY]: { policyName: CLAIM_POLICY, policyDocument: claimPolicyDocument() },
        [DEVICE_POLICY]: { policyName: DEVICE_POLICY, policyDocument: devicePolicyDocument() },
      },
      templates: { [TEMPLATE_NAME]: { templateName: TEMPLATE_NAME, templateBody: templateBody(), enabled: true, provisioningRoleArn: 'arn:aws:iam::000000000000:role/x' } },
      things: { 'fp-020000000001': { thingName: 'fp-020000000001', attributes: { deviceId: '020000000001' }, thingGroups: ['fleet', 'gone'], principals: [deviceId] } },
      thingGroups: { fleet: { thingGroupName: 'fleet' } },
    };
    await writeFile(path.join(dir, 'registry.json'), JSON.stringify(legacy));

    const emulator = await startEmulator({ port: 0, dir });
    onTestFinished(() => emulator.close());
    expect(existsSync(path.join(dir, 'registry.json'))).toBe(false);
    expect(existsSync(path.join(dir, 'registry.json.migrated'))).toBe(true);
    const { control } = emulator;
    expect(await control.describeThing('fp-020000000001')).toMatchObject({ attributes: { deviceId: '020000000001' }, thingGroups: ['fleet'], principals: [expect.stringContaining(deviceId)] });
    expect(await control.describeCertificate(deviceId)).toMatchObject({ status: 'ACTIVE', claimCertificateId: claimId });
    expect(await control.listAttachedPolicies(claimId)).toEqual([CLAIM_POLICY]);
    // The migrated claim, policies and template provision a new device.
    const claim = await connectMqtt(emulator, { certPem: claimPem, keyPem: claimKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }, { clientId: `${CLIENT_ID_PREFIX}migrated` });
    const created = await fleetRequest(claim, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem });
    const registered = await fleetRequest(claim, TOPICS.registerThing(TEMPLATE_NAME), { certificateOwnershipToken: created.body.certificateOwnershipToken, parameters: { DeviceId: '020000000002' } });
    expect(registered.body.thingName).toBe('fp-020000000002');
  });

  it('refuses a registry.json that is not JSON, naming the file', async () => {
    const dir = path.join(await tmpDir(), 'state');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'registry.json'), '{"certificates": ');
    await expect(startEmulator({ port: 0, dir })).rejects.toThrow(`${path.join(dir, 'registry.json')}: the old emulator registry is not valid JSON`);
    // Nothing was left open: the same dir starts once the file is moved away.
    await rename(path.join(dir, 'registry.json'), path.join(dir, 'broken.json'));
    await (await startEmulator({ port: 0, dir })).close();
  });

  it('removes half-written files a killed emulator left, and is readable with the sqlite3 CLI while it runs', async () => {
    const t = await startTestEmulator();
    const dir = t.emulator.dir;
    await t.emulator.control.createThingGroup('seen-by-sqlite3');
    await t.emulator.close();
    const leftovers = ['.registry.json.fp-tmp-0a1b2c', '.emulator.json.fp-tmp-3d4e5f'];
    for (const name of leftovers) await writeFile(path.join(dir, name), 'half');
    const again = await startEmulator({ port: 0, dir });
    onTestFinished(() => again.close());
    expect(readdirSync(dir).filter((n) => n.includes('.fp-tmp-'))).toEqual([]);
    const { stdout } = await execa('sqlite3', [path.join(dir, 'registry.sqlite3'), 'SELECT thing_group_name FROM thing_groups; SELECT count(*) FROM certificates;']);
    expect(stdout.split('\n')).toEqual(['seen-by-sqlite3', '1']);
  });
});
