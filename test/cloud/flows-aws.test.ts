// init, status, rotate-claim and destroy end to end in-process, with only the AWS SDK mocked:
// real key and CSR, a real CA signing it, real files and state.
import {
  CloudFormationClient,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
} from '@aws-sdk/client-cloudformation';
import {
  AttachPolicyCommand,
  CreateCertificateFromCsrCommand,
  DeleteCertificateCommand,
  DeletePolicyCommand,
  DeleteThingCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListPolicyVersionsCommand,
  ListThingPrincipalsCommand,
  ListThingsInThingGroupCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { CloudWatchLogsClient, DeleteLogGroupCommand } from '@aws-sdk/client-cloudwatch-logs';
import { CreateScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { BatchGetItemCommand, BatchWriteItemCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { runInit } from '../../src/cloud/init.ts';
import { runDestroy, runRotateClaim, runStatus } from '../../src/cloud/lifecycle.ts';
import { projectPaths, readState } from '../../src/cloud/project.ts';
import type { Ui } from '../../src/cloud/provider.ts';
import { CertificateAuthority, certificateIdOf, createCa } from '../../src/emulator/ca.ts';
import { amazonRootCaPath } from '../../src/shared/package-root.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { STACK_OUTPUTS } from './stack-outputs.ts';

const cfn = mockClient(CloudFormationClient);
const iot = mockClient(IoTClient);
const scheduler = mockClient(SchedulerClient);
const logs = mockClient(CloudWatchLogsClient);
const ddb = mockClient(DynamoDBClient);
const ca = new CertificateAuthority(createCa());
const silent: Ui = { info: () => {}, warn: () => {}, confirm: async () => true };


/** A small fake of the account: stack existence and certificate statuses. */
function fakeAccount() {
  let exists = false;
  let createdAt = new Date(0);
  const certs = new Map<string, string>();
  const things = ['fp-yocto-aabbccddeeff'];
  cfn.on(DescribeStacksCommand).callsFake(async () => {
    if (!exists) throw Object.assign(new Error('Stack with id fp-yocto does not exist'), { name: 'ValidationError' });
    return { Stacks: [{ StackName: 'fp-yocto', StackStatus: 'CREATE_COMPLETE', CreationTime: createdAt, Outputs: STACK_OUTPUTS }] };
  });
  cfn.on(CreateChangeSetCommand).resolves({});
  cfn.on(DescribeChangeSetCommand).callsFake(async () =>
    exists
      ? { Status: 'FAILED', StatusReason: "The submitted information didn't contain changes." }
      : { Status: 'CREATE_COMPLETE', CreationTime: new Date(), Changes: [{ ResourceChange: { Action: 'Add', LogicalResourceId: 'ClaimPolicy', ResourceType: 'AWS::IoT::Policy' } }] },
  );
  cfn.on(DeleteChangeSetCommand).resolves({});
  cfn.on(ExecuteChangeSetCommand).callsFake(async () => {
    exists = true;
    createdAt = new Date();
    return {};
  });
  cfn.on(DescribeStackEventsCommand).resolves({ StackEvents: [] });
  cfn.on(DeleteStackCommand).callsFake(async () => {
    exists = false;
    return {};
  });
  iot.on(CreateCertificateFromCsrCommand).callsFake(async ({ certificateSigningRequest }) => {
    const certificatePem = ca.issueFromCsr(certificateSigningRequest, new Date());
    const certificateId = certificateIdOf(certificatePem);
    certs.set(certificateId, 'ACTIVE');
    return { certificateId, certificateArn: `arn:aws:iot:eu-west-1:123456789012:cert/${certificateId}`, certificatePem };
  });
  iot.on(DescribeCertificateCommand).callsFake(async ({ certificateId }) => {
    const status = certs.get(certificateId);
    if (!status) throw Object.assign(new Error('gone'), { name: 'ResourceNotFoundException' });
    return { certificateDescription: { certificateId, status, validity: { notAfter: new Date('2049-12-31T00:00:00Z') } } };
  });
  iot.on(UpdateCertificateCommand).callsFake(async ({ certificateId, newStatus }) => {
    certs.set(certificateId, newStatus);
    return {};
  });
  iot.on(DeleteCertificateCommand).callsFake(async ({ certificateId }) => {
    certs.delete(certificateId);
    return {};
  });
  iot.on(AttachPolicyCommand).resolves({});
  iot.on(ListAttachedPoliciesCommand).resolves({ policies: [{ policyName: 'fp-yocto-claim' }] });
  iot.on(DetachPolicyCommand).resolves({});
  iot.on(DescribeEndpointCommand, { endpointType: 'iot:Data-ATS' }).resolves({ endpointAddress: 'abc-ats.iot.eu-west-1.amazonaws.com' });
  iot.on(DescribeEndpointCommand, { endpointType: 'iot:CredentialProvider' }).resolves({ endpointAddress: 'abc.credentials.iot.eu-west-1.amazonaws.com' });
  iot.on(ListThingsInThingGroupCommand).callsFake(async () => ({ things: [...things] }));
  iot.on(ListThingPrincipalsCommand).resolves({ principals: [] });
  iot.on(DetachThingPrincipalCommand).resolves({});
  iot.on(DeleteThingCommand).callsFake(async ({ thingName }) => {
    things.splice(things.indexOf(thingName), 1);
    return {};
  });
  iot.on(ListPolicyVersionsCommand).resolves({ policyVersions: [] });
  iot.on(DeletePolicyCommand).resolves({});
  scheduler.on(CreateScheduleCommand).resolves({});
  logs.on(DeleteLogGroupCommand).resolves({});
  // The device table: empty until an import puts ids in it.
  const table = new Set<string>();
  ddb.on(BatchGetItemCommand).callsFake(async (input) => ({
    Responses: { 'fp-yocto-devices': input.RequestItems['fp-yocto-devices'].Keys.filter((k: { deviceId: { S: string } }) => table.has(k.deviceId.S)) },
  }));
  ddb.on(BatchWriteItemCommand).callsFake(async (input) => {
    for (const r of input.RequestItems['fp-yocto-devices']) table.add(r.PutRequest.Item.deviceId.S);
    return {};
  });
  ddb.on(ScanCommand).callsFake(async (input) => ({ Count: input.FilterExpression === 'attribute_exists(#allowedAt)' ? table.size : 0 }));
  return { certs, things, exists: () => exists };
}

const init = (dir: string, settings = {}, allowList?: string) =>
  runInit({ dir, local: false, stackName: 'fp-yocto', region: 'eu-west-1', settings, allowList, pollMs: 0 }, silent);

beforeEach(() => {
  ddb.reset();
  cfn.reset();
  iot.reset();
  scheduler.reset();
  logs.reset();
});

describe('init against AWS (SDK mocked)', () => {
  it('deploys, makes the claim here, writes the files and state; a re-run changes nothing', async () => {
    const account = fakeAccount();
    const dir = await tmpDir();
    const paths = projectPaths(dir);

    const first = await init(dir);
    expect(first.changed).toEqual([
      'stack fp-yocto: 1 resource change(s)',
      expect.stringMatching(/^new claim certificate [0-9a-f]{12}… in claim\/$/),
      'wrote conf/fleetprovisioning.conf.sample',
      expect.stringMatching(/^rendered meta-fleetprovisioning\/ \(\d+ file\(s\)\)$/),
      'added claim/ and .fp-yocto/ to .gitignore',
    ]);
    const csr = iot.commandCalls(CreateCertificateFromCsrCommand)[0]!.args[0].input;
    expect(csr.certificateSigningRequest).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
    // The claim key never crosses the network: no request carries it.
    const key = await readFile(paths.claimKey, 'utf8');
    for (const call of [...iot.calls(), ...cfn.calls()]) expect(JSON.stringify(call.args[0].input)).not.toContain(key.split('\n')[1]);
    expect((await stat(paths.claimKey)).mode & 0o777).toBe(0o600);
    expect(await readFile(paths.rootCa, 'utf8')).toBe(await readFile(amazonRootCaPath(1), 'utf8'));
    const state = (await readState(paths))!;
    expect(state).toMatchObject({
      provider: 'aws',
      stackName: 'fp-yocto',
      region: 'eu-west-1',
      endpoints: { data: 'abc-ats.iot.eu-west-1.amazonaws.com', credentials: 'abc.credentials.iot.eu-west-1.amazonaws.com', port: 8883 },
      names: { claimPolicy: 'fp-yocto-claim', templateName: 'fp-yocto-provisioning' },
    });
    expect(state.certificates).toHaveLength(1);
    expect(iot.commandCalls(AttachPolicyCommand)[0]!.args[0].input).toEqual({ policyName: 'fp-yocto-claim', target: state.certificates[0]!.certificateArn });
    const conf = await readFile(paths.confSample, 'utf8');
    expect(conf).toContain('FLEETPROV_IOT_DATA_ENDPOINT = "abc-ats.iot.eu-west-1.amazonaws.com"');
    expect(conf).toContain(`FLEETPROV_CLAIM_DIR = "${paths.claimDir}"`);
    expect(conf).toContain('FLEETPROV_AWS_REGION = "eu-west-1"');

    const again = await init(dir);
    expect(again.changed).toEqual([]);
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)).toHaveLength(1);
    expect(account.certs.size).toBe(1);

    // --allow-list imports into the device table and turns the allow-list on; later runs keep it on.
    const result = await init(dir, {}, 'AA:BB:CC:DD:EE:FF,001122334455');
    expect(result.changed).toContain('device table fp-yocto-devices: 2 added, 0 already there');
    expect(ddb.commandCalls(BatchWriteItemCommand).map((c) => c.args[0].input.RequestItems!['fp-yocto-devices']!.map((r) => r.PutRequest!.Item!.deviceId))).toEqual([
      [{ S: 'aabbccddeeff' }, { S: '001122334455' }],
    ]);
    await init(dir);
    expect((await readState(paths))!.settings.requireAllowList).toBe(true);
    expect(cfn.commandCalls(CreateChangeSetCommand).at(-1)!.args[0].input.Parameters).toContainEqual({ ParameterKey: 'AllowList', ParameterValue: 'on' });
    expect((await runStatus(dir, silent)).devices).toEqual({ table: 'fp-yocto-devices', allowListRequired: true, oneIdentity: true, allowed: 2, provisioned: 0 });
  });

  it('takes the device id source: the hook checks ids of that kind, and the local.conf sample tells the devices', async () => {
    fakeAccount();
    const dir = await tmpDir();
    await writeFile(path.join(dir, 'serials.txt'), 'SN 0001\nSN 0002\n');
    const result = await init(dir, { deviceIdSource: 'dmi-serial', oneIdentity: false }, path.join(dir, 'serials.txt'));
    expect(result.changed).toContain('device table fp-yocto-devices: 2 added, 0 already there');
    const parameters = cfn.commandCalls(CreateChangeSetCommand).at(-1)!.args[0].input.Parameters!;
    expect(parameters).toEqual(expect.arrayContaining([
      { ParameterKey: 'DeviceIdKind', ParameterValue: 'serial' },
      { ParameterKey: 'OneIdentity', ParameterValue: 'off' },
      { ParameterKey: 'AllowList', ParameterValue: 'on' },
    ]));
    expect(await readFile(projectPaths(dir).confSample, 'utf8')).toContain('FLEETPROV_DEVICE_ID_SOURCE = "dmi-serial"');
    const written = ddb.commandCalls(BatchWriteItemCommand).flatMap((c) => c.args[0].input.RequestItems!['fp-yocto-devices']!.map((r) => r.PutRequest!.Item!.deviceId!.S));
    expect(written).toEqual(['sn-0001', 'sn-0002']);
  });

  it('moves the allow-list of an older stack (the AllowedDeviceIds parameter) into the device table on the next init', async () => {
    fakeAccount();
    const dir = await tmpDir();
    const paths = projectPaths(dir);
    await init(dir);
    const state = JSON.parse(await readFile(paths.stateFile, 'utf8'));
    // What an fp-yocto before the device table wrote.
    const { requireAllowList: _r, oneIdentity: _o, deviceIdSource: _d, ...older } = state.settings;
    await writeFile(paths.stateFile, JSON.stringify({ ...state, settings: { ...older, allowList: ['aabbccddeeff', '001122334455'] } }));
    const result = await init(dir);
    expect(result.changed).toContain('device table fp-yocto-devices: 2 added, 0 already there');
    const saved = (await readState(paths))!.settings as unknown as Record<string, unknown>;
    expect(saved.allowList).toBeUndefined();
    expect(saved.requireAllowList).toBe(true);
    const parameters = cfn.commandCalls(CreateChangeSetCommand).at(-1)!.args[0].input.Parameters!;
    expect(parameters).toContainEqual({ ParameterKey: 'AllowList', ParameterValue: 'on' });
    expect(parameters.map((p) => p.ParameterKey)).not.toContain('AllowedDeviceIds');
  });

  it('makes a new claim certificate when the current one was deactivated', async () => {
    const account = fakeAccount();
    const dir = await tmpDir();
    await init(dir);
    const [id] = [...account.certs.keys()];
    account.certs.set(id!, 'INACTIVE');
    const again = await init(dir);
    expect(again.changed).toEqual([expect.stringMatching(/^new claim certificate/)]);
    expect((await readState(projectPaths(dir)))!.certificates).toHaveLength(2);
  });

  it('rotates with a grace period, deactivates when it is over, and destroy deletes only what state records', async () => {
    const account = fakeAccount();
    const dir = await tmpDir();
    await init(dir);
    const paths = projectPaths(dir);
    const first = (await readState(paths))!.certificates[0]!.certificateId;

    const rotated = await runRotateClaim(dir, 3_600_000, silent);
    expect(rotated.retired?.certificateId).toBe(first);
    expect(rotated.deactivated).toEqual([]);
    expect(account.certs.get(first)).toBe('ACTIVE');
    const status = await runStatus(dir, silent);
    expect(status.claim).toEqual({ certificateId: rotated.certificateId, status: 'ACTIVE', notAfter: '2049-12-31T00:00:00.000Z' });
    expect(status.retiring).toEqual([{ certificateId: first, deactivateAfter: rotated.retired!.deactivateAfter }]);
    expect(status.things).toEqual(['fp-yocto-aabbccddeeff']);
    expect(status.stack).toEqual({ status: 'CREATE_COMPLETE', reason: undefined });

    const now = await runRotateClaim(dir, 0, silent);
    expect(now.deactivated).toEqual([rotated.certificateId]);
    expect(account.certs.get(rotated.certificateId)).toBe('INACTIVE');
    expect(account.certs.get(first)).toBe('ACTIVE'); // its grace period is not over yet

    // rotate-claim asked the cloud to enforce the grace period of the first certificate.
    expect(scheduler.commandCalls(CreateScheduleCommand).map((c) => c.args[0].input.Target?.Input)).toEqual([
      JSON.stringify({ certificateId: first, newStatus: 'INACTIVE' }),
    ]);
    expect((await readState(paths))!.certificates[0]!.deactivationSchedule).toBe(`retire-${first.slice(0, 32)}`);

    account.certs.set('someone-elses', 'ACTIVE');
    // A provisioned fleet: destroy wants to be told what becomes of it.
    await expect(runDestroy(dir, silent, { pollMs: 0 })).rejects.toThrow(
      '1 device(s) provisioned in thing group fp-yocto-devices: run `fp-yocto destroy --delete-fleet` to delete their things and certificates too, or `fp-yocto destroy --keep-fleet` to leave them (and policy fp-yocto-device, which they hold)',
    );
    expect(cfn.commandCalls(DeleteStackCommand)).toHaveLength(0);
    const destroyed = await runDestroy(dir, silent, { pollMs: 0, fleet: 'delete' });
    expect(destroyed.left).toEqual([]);
    expect(iot.commandCalls(DeleteThingCommand).map((c) => c.args[0].input)).toEqual([{ thingName: 'fp-yocto-aabbccddeeff' }]);
    expect(iot.commandCalls(DeletePolicyCommand).map((c) => c.args[0].input)).toEqual([{ policyName: 'fp-yocto-device' }]);
    expect([...account.certs.keys()]).toEqual(['someone-elses']);
    expect(iot.commandCalls(DeleteCertificateCommand).map((c) => c.args[0].input.certificateId).sort()).toEqual(
      [first, rotated.certificateId, now.certificateId].sort(),
    );
    expect(cfn.commandCalls(DeleteStackCommand)[0]!.args[0].input).toEqual({ StackName: 'fp-yocto' });
    expect(account.exists()).toBe(false);
    expect(await readState(paths)).toBeUndefined();
    await expect(stat(paths.claimKey)).rejects.toThrow();
  });

  it('status deactivates a rotated-out certificate once its grace period is over', async () => {
    const account = fakeAccount();
    const dir = await tmpDir();
    await init(dir);
    const paths = projectPaths(dir);
    const rotated = await runRotateClaim(dir, 86_400_000, silent);
    const old = rotated.retired!.certificateId;
    expect((await runStatus(dir, silent)).deactivated).toEqual([]);
    // A day later, as far as state.json can tell.
    const state = (await readState(paths))!;
    state.certificates[0]!.deactivateAfter = new Date(Date.now() - 1_000).toISOString();
    await writeFile(paths.stateFile, JSON.stringify(state));
    const status = await runStatus(dir, silent);
    expect(status.deactivated).toEqual([old]);
    expect(status.retiring).toEqual([]);
    expect(account.certs.get(old)).toBe('INACTIVE');
    expect(iot.commandCalls(UpdateCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: old, newStatus: 'INACTIVE' }]);
    expect((await readState(paths))!.certificates[0]!.deactivatedAt).toEqual(expect.any(String));
  });

  it('--no-greengrass: no Greengrass permissions in the stack, FLEETPROV_GREENGRASS = "0"', async () => {
    fakeAccount();
    const dir = await tmpDir();
    await init(dir, { greengrass: false });
    const body = cfn.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.TemplateBody!;
    expect(body).not.toContain('greengrass:');
    expect(body).toContain('iot:AssumeRoleWithCertificate');
    expect(await readFile(projectPaths(dir).confSample, 'utf8')).toContain('FLEETPROV_GREENGRASS = "0"');
  });

  it('records a new claim certificate before anything else can fail, so destroy still finds it', async () => {
    const account = fakeAccount();
    iot.on(AttachPolicyCommand).rejects(Object.assign(new Error('not authorized to perform iot:AttachPolicy'), { name: 'AccessDeniedException' }));
    const dir = await tmpDir();
    await expect(init(dir)).rejects.toThrow('no permission for iot:AttachPolicy (not authorized to perform iot:AttachPolicy)');
    const [orphan] = [...account.certs.keys()];
    expect((await readState(projectPaths(dir)))!.certificates.map((c) => c.certificateId)).toEqual([orphan]);
    await runDestroy(dir, silent, { pollMs: 0, fleet: 'delete' });
    expect(account.certs.size).toBe(0);
  });

  it('refuses to destroy without confirmation', async () => {
    fakeAccount();
    const dir = await tmpDir();
    await init(dir);
    await expect(runDestroy(dir, { ...silent, confirm: async () => false }, { pollMs: 0, fleet: 'keep' })).rejects.toThrow(
      'destroy needs confirmation: run `fp-yocto destroy --yes` to delete stack fp-yocto',
    );
    expect(cfn.commandCalls(DeleteStackCommand)).toHaveLength(0);
  });
});
