// The local provider against a real in-process emulator, and a device provisioning through what
// it deployed: the stack's claim policy, template, hook and device policy, over mutual TLS.
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeClaimKey } from '../../src/cloud/claim.ts';
import type { Ui } from '../../src/cloud/provider.ts';
import { LocalProvider } from '../../src/cloud/providers/local.ts';
import { buildStack, stackParameterValues, type StackOptions } from '../../src/cloud/stack.ts';
import { defaultStackOptions } from '../../src/cloud/template-yaml.ts';
import { EMULATOR_ACCOUNT_ID, EMULATOR_REGION, startEmulator } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { connectMqtt, fleetRequest } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';

const silent: Ui = { info: () => {}, warn: () => {}, confirm: async () => true };

async function setup() {
  const dir = await tmpDir();
  const emulator = await startEmulator({ port: 0, dir: path.join(dir, 'emulator'), connectRateLimit: false });
  onTestFinished(() => emulator.close());
  const provider = new LocalProvider({ control: emulator.control, region: EMULATOR_REGION, accountId: EMULATOR_ACCOUNT_ID });
  const deploy = (options: StackOptions = defaultStackOptions()) =>
    provider.deploy({ stackName: 'fp-yocto', template: buildStack(options), parameters: stackParameterValues(options) }, silent);
  return { emulator, provider, deploy };
}

describe('local provider', () => {
  it('creates the IoT pieces of the stack, then reports no changes, then only what changed', async () => {
    const { emulator, deploy } = await setup();
    const first = await deploy();
    expect(first.changes).toEqual([
      '+ ThingGroup (AWS::IoT::ThingGroup)',
      '+ ClaimPolicy (AWS::IoT::Policy)',
      '+ DevicePolicy (AWS::IoT::Policy)',
      '+ ProvisioningTemplate (AWS::IoT::ProvisioningTemplate)',
    ]);
    expect(first.names).toEqual({
      templateName: 'fp-yocto-provisioning',
      thingGroupName: 'fp-yocto-devices',
      claimPolicy: 'fp-yocto-claim',
      devicePolicy: 'fp-yocto-device',
      roleAlias: 'fp-yocto-token-exchange',
    });
    const template = await emulator.control.describeProvisioningTemplate('fp-yocto-provisioning');
    expect(template?.provisioningRoleArn).toBe('arn:aws:iam::000000000000:role/fp-yocto-us-east-1-provisioning');
    expect(template?.preProvisioningHook?.env).toEqual({ DEVICE_ID_PARAMETER: 'DeviceId', ALLOWED_DEVICE_IDS: '' });

    expect((await deploy()).changes).toEqual([]);
    const changed = await deploy({ ...defaultStackOptions(), allowList: ['001122334455'], greengrass: false });
    expect(changed.changes).toEqual(['~ DevicePolicy (AWS::IoT::Policy)', '~ ProvisioningTemplate (AWS::IoT::ProvisioningTemplate)']);
    expect((await emulator.control.describeProvisioningTemplate('fp-yocto-provisioning'))?.preProvisioningHook?.env?.ALLOWED_DEVICE_IDS).toBe('001122334455');
  });

  it('provisions a device over MQTT with the claim certificate it issues, then destroys only its own resources', async () => {
    const { emulator, provider, deploy } = await setup();
    const { names } = await deploy();
    const { keyPem, csrPem } = makeClaimKey('fp-yocto-claim');
    const claim = await provider.createCertificateFromCsr(csrPem);
    await provider.attachPolicy(names.claimPolicy, claim);
    expect(await provider.describeCertificate(claim.certificateId)).toMatchObject({ status: 'ACTIVE' });
    expect(await provider.describeEndpoints()).toEqual({ data: emulator.endpoint, credentials: emulator.endpoint, port: emulator.port });

    // The claim policy refuses client ids without the prefix.
    await expect(
      connectMqtt(emulator, { certPem: claim.certificatePem, keyPem }, { clientId: 'intruder-aabbccddeeff', timeoutMs: 5_000 }),
    ).rejects.toThrow();

    const device = makeClaimKey('device');
    const client = await connectMqtt(emulator, { certPem: claim.certificatePem, keyPem }, { clientId: 'fleetprov-aabbccddeeff' });
    const created = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: device.csrPem });
    expect(created.accepted).toBe(true);
    const registered = await fleetRequest(client, TOPICS.registerThing(names.templateName), {
      certificateOwnershipToken: created.body.certificateOwnershipToken,
      parameters: { DeviceId: 'AA-BB-CC-DD-EE-FF' },
    });
    expect(registered.body).toMatchObject({ thingName: 'fp-yocto-aabbccddeeff' });
    expect(await provider.listThingsInGroup(names.thingGroupName)).toEqual(['fp-yocto-aabbccddeeff']);
    const other = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeClaimKey('other').csrPem });
    const bad = await fleetRequest(client, TOPICS.registerThing(names.templateName), {
      certificateOwnershipToken: other.body.certificateOwnershipToken,
      parameters: { DeviceId: 'aa:bb-cc:dd:ee:ff' },
    });
    expect(bad).toMatchObject({ accepted: false, body: { statusCode: 403 } });

    // The device connects with its own certificate under its thing name (the device policy).
    const asDevice = await connectMqtt(emulator, { certPem: created.body.certificatePem, keyPem: device.keyPem }, { clientId: 'fp-yocto-aabbccddeeff' });
    expect(asDevice.connected).toBe(true);

    // destroy: the device's certificate still holds the device policy, and it is not ours to detach.
    await provider.deleteCertificate(claim);
    expect(await provider.describeCertificate(claim.certificateId)).toBeUndefined();
    await expect(provider.destroyStack('fp-yocto', names, silent)).rejects.toThrow(/policy fp-yocto-device is still attached to device certificates/);
    expect(await emulator.control.describeThing('fp-yocto-aabbccddeeff')).toBeDefined();
    expect(await emulator.control.describeCertificate(created.body.certificateId)).toMatchObject({ status: 'ACTIVE' });
  });

  it('destroys what it deployed when no device used it', async () => {
    const { emulator, provider, deploy } = await setup();
    const { names } = await deploy();
    await emulator.control.createPolicy('someone-elses', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: 'arn:aws:iot:*:*:client/x' }] }));
    await provider.destroyStack('fp-yocto', names, silent);
    expect(await emulator.control.describeProvisioningTemplate(names.templateName)).toBeUndefined();
    expect(await emulator.control.getPolicy(names.claimPolicy)).toBeUndefined();
    expect(await emulator.control.getPolicy(names.devicePolicy)).toBeUndefined();
    expect(await emulator.control.getPolicy('someone-elses')).toBeDefined();
    expect(await provider.listThingsInGroup(names.thingGroupName)).toEqual([]);
    // Running it again finds nothing to delete and does not fail.
    await provider.destroyStack('fp-yocto', names, silent);
  });
});
