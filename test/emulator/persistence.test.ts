// The registry and the CA survive a restart on the same state dir.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectEmulator, startEmulator } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { CLIENT_ID_PREFIX, connectMqtt, fleetRequest, startTestEmulator, TEMPLATE_NAME } from '../helpers/emulator.ts';
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
