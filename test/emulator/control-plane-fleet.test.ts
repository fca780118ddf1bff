// The control-plane calls that remove a provisioned fleet, over the loopback control server as
// `fp-yocto destroy --local` uses them, and DeletePolicy refusing a policy that a certificate
// holds, as AWS IoT's DeletePolicy does (DeleteConflictException, HTTP 409, "AWS IoT API
// Reference: DeletePolicy").
import { describe, expect, it } from 'vitest';
import { connectEmulator } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { makeClaimKey } from '../../src/cloud/claim.ts';
import { connectMqtt, DEVICE_POLICY, fleetRequest, startTestEmulator } from '../helpers/emulator.ts';

async function provisionedDevice() {
  const { emulator, claim, templateName } = await startTestEmulator({ connectRateLimit: false });
  const client = await connectMqtt(emulator, claim, { clientId: 'fleetprov-aabbccddeeff' });
  const created = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeClaimKey('device').csrPem });
  const registered = await fleetRequest(client, TOPICS.registerThing(templateName), {
    certificateOwnershipToken: created.body.certificateOwnershipToken,
    parameters: { DeviceId: 'aabbccddeeff' },
  });
  expect(registered.accepted).toBe(true);
  const control = (await connectEmulator(emulator.dir))!;
  return { emulator, control, thingName: registered.body.thingName as string, certificateId: created.body.certificateId as string };
}

describe('emulator control plane: removing a provisioned fleet', () => {
  it('refuses to delete a policy a device certificate holds, until it is detached', async () => {
    const { control, certificateId } = await provisionedDevice();
    const refused = await control.deletePolicy(DEVICE_POLICY).catch((e: Error) => e);
    expect(refused).toMatchObject({ name: 'DeleteConflictException' });
    expect(await control.getPolicy(DEVICE_POLICY)).toBeDefined();
    await control.detachPolicy(DEVICE_POLICY, certificateId);
    await control.deletePolicy(DEVICE_POLICY);
    expect(await control.getPolicy(DEVICE_POLICY)).toBeUndefined();
  });

  it('lists and detaches a thing principal, then deletes the certificate and the thing', async () => {
    const { control, thingName, certificateId } = await provisionedDevice();
    const principals = await control.listThingPrincipals(thingName);
    expect(principals).toEqual([expect.stringMatching(new RegExp(`:cert/${certificateId}$`))]);
    // Attached to a thing, the certificate cannot go (after deactivation) until it is detached.
    await control.updateCertificate(certificateId, 'INACTIVE');
    await expect(control.deleteCertificate(certificateId)).rejects.toMatchObject({ name: 'DeleteConflictException' });
    await control.detachThingPrincipal(thingName, principals[0]!);
    expect(await control.listThingPrincipals(thingName)).toEqual([]);
    await control.detachPolicy(DEVICE_POLICY, certificateId);
    await control.deleteCertificate(certificateId);
    await control.deleteThing(thingName);
    expect(await control.describeThing(thingName)).toBeUndefined();
    // Deleting a thing that does not exist succeeds; asking for its principals does not.
    await control.deleteThing(thingName);
    await expect(control.listThingPrincipals(thingName)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
