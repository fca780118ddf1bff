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

/** The stack deployed, a claim certificate with its policy, and a claim connection to the emulator. */
async function claimConnection() {
  const { emulator, provider, deploy } = await setup();
  const { names } = await deploy();
  const { keyPem, csrPem } = makeClaimKey('fp-yocto-claim');
  const claim = await provider.createCertificateFromCsr(csrPem);
  await provider.attachPolicy(names.claimPolicy, claim);
  const client = await connectMqtt(emulator, { certPem: claim.certificatePem, keyPem }, { clientId: 'fleetprov-aabbccddeeff' });
  /** One device's CreateCertificateFromCsr then RegisterThing with these parameters. */
  const register = async (parameters: Record<string, string>) => {
    const created = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeClaimKey('device').csrPem });
    const registered = await fleetRequest(client, TOPICS.registerThing(names.templateName), { certificateOwnershipToken: created.body.certificateOwnershipToken, parameters });
    return { ...registered, certificateId: created.body.certificateId as string };
  };
  return { emulator, provider, names, claim, register };
}

describe('local provider', () => {
  it('creates the IoT pieces of the stack, then reports no changes, then only what changed', async () => {
    const { emulator, deploy } = await setup();
    const first = await deploy();
    expect(first.changes).toEqual([
      '+ ThingGroup (AWS::IoT::ThingGroup)',
      '+ DeviceTable (AWS::DynamoDB::Table)',
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
      deviceTable: 'fp-yocto-devices',
    });
    const template = await emulator.control.describeProvisioningTemplate('fp-yocto-provisioning');
    expect(template?.provisioningRoleArn).toBe('arn:aws:iam::000000000000:role/fp-yocto-us-east-1-provisioning');
    expect(template?.preProvisioningHook?.env).toEqual({
      DEVICE_ID_PARAMETER: 'DeviceId',
      DEVICE_ID_KIND: 'mac',
      DEVICE_TABLE: 'fp-yocto-devices',
      ALLOW_LIST: 'off',
      ONE_IDENTITY: 'on',
      TEMPLATE_PARAMETERS: '',
    });
    expect(await emulator.control.dynamoDb('DescribeTable', { TableName: 'fp-yocto-devices' })).toMatchObject({
      Table: { TableName: 'fp-yocto-devices', KeySchema: [{ AttributeName: 'deviceId', KeyType: 'HASH' }], ItemCount: 0 },
    });

    expect((await deploy()).changes).toEqual([]);
    const changed = await deploy({ ...defaultStackOptions(), requireAllowList: true, greengrass: false });
    expect(changed.changes).toEqual(['~ DevicePolicy (AWS::IoT::Policy)', '~ ProvisioningTemplate (AWS::IoT::ProvisioningTemplate)']);
    expect((await emulator.control.describeProvisioningTemplate('fp-yocto-provisioning'))?.preProvisioningHook?.env?.ALLOW_LIST).toBe('on');
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

    // destroy without deleting the fleet: the device keeps its certificate and the device policy.
    await provider.deleteCertificate(claim);
    expect(await provider.describeCertificate(claim.certificateId)).toBeUndefined();
    expect(await provider.destroyStack('fp-yocto', names, { keepDevicePolicy: true }, silent)).toEqual([
      'policy fp-yocto-device: kept for the provisioned devices (their certificates hold it)',
    ]);
    expect(await emulator.control.describeThing('fp-yocto-aabbccddeeff')).toBeDefined();
    expect(await emulator.control.describeCertificate(created.body.certificateId)).toMatchObject({ status: 'ACTIVE' });
    expect(await emulator.control.getPolicy(names.devicePolicy)).toBeDefined();
  });

  it('deletes a provisioned fleet, then the device policy goes with the stack', async () => {
    const { emulator, provider, names, claim, register } = await claimConnection();
    const { certificateId } = await register({ DeviceId: 'aabbccddeeff' });
    // What DeletePolicy says while a device certificate holds the policy (as AWS IoT does).
    await expect(emulator.control.deletePolicy(names.devicePolicy)).rejects.toMatchObject({ name: 'DeleteConflictException' });

    const lines: string[] = [];
    const ui = { ...silent, info: (l: string) => lines.push(l) };
    for (const thing of await provider.listThingsInGroup(names.thingGroupName)) await provider.deleteThing(thing, ui);
    await provider.deleteCertificate(claim);
    expect(await provider.destroyStack('fp-yocto', names, { keepDevicePolicy: false }, ui)).toEqual([]);
    expect(lines).toContain('- thing fp-yocto-aabbccddeeff and 1 certificate(s)');
    expect(await emulator.control.describeThing('fp-yocto-aabbccddeeff')).toBeUndefined();
    expect(await emulator.control.describeCertificate(certificateId)).toBeUndefined();
    expect(await emulator.control.getPolicy(names.devicePolicy)).toBeUndefined();
  });

  it('lets no claim holder choose the thing name: the prefix is in the template, extra parameters are refused (defect 4)', async () => {
    const { emulator, names, register } = await claimConnection();
    const attempts: Record<string, string>[] = [
      { DeviceId: 'aabbccddeeff', ThingNamePrefix: 'victim-' },
      { DeviceId: 'aabbccddeeff', ThingName: 'victim-aabbccddeeff' },
      { DeviceId: 'aabbccddeeff', 'AWS::IoT::Certificate::Id': 'x' },
    ];
    for (const parameters of attempts) {
      expect(await register(parameters)).toMatchObject({ accepted: false, body: { statusCode: 403, errorCode: 'ACCESS_DENIED' } });
    }
    expect((await emulator.control.listThings()).map((t) => t.thingName)).toEqual([]);
    const ok = await register({ DeviceId: 'aabbccddeeff' });
    expect(ok.body).toMatchObject({ thingName: 'fp-yocto-aabbccddeeff' });
    // The deployed template declares DeviceId only: the prefix is text in the body.
    const body = JSON.parse((await emulator.control.describeProvisioningTemplate(names.templateName))!.templateBody);
    expect(Object.keys(body.Parameters)).toEqual(['DeviceId', 'AWS::IoT::Certificate::Id']);
    expect(body.Resources.thing.Properties.ThingName).toEqual({ 'Fn::Join': ['', ['fp-yocto-', { Ref: 'DeviceId' }]] });
  });

  it('destroys what it deployed when no device used it', async () => {
    const { emulator, provider, deploy } = await setup();
    const { names } = await deploy();
    await emulator.control.createPolicy('someone-elses', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: 'arn:aws:iot:*:*:client/x' }] }));
    expect(await provider.destroyStack('fp-yocto', names, { keepDevicePolicy: false }, silent)).toEqual([]);
    expect(await emulator.control.describeProvisioningTemplate(names.templateName)).toBeUndefined();
    expect(await emulator.control.getPolicy(names.claimPolicy)).toBeUndefined();
    expect(await emulator.control.getPolicy(names.devicePolicy)).toBeUndefined();
    expect(await emulator.control.getPolicy('someone-elses')).toBeDefined();
    expect(await provider.listThingsInGroup(names.thingGroupName)).toEqual([]);
    // Running it again finds nothing to delete and does not fail.
    expect(await provider.destroyStack('fp-yocto', names, { keepDevicePolicy: false }, silent)).toEqual([]);
  });
});
