// The AWS provider with the SDK mocked (the only mock in the suite): exact request inputs, and
// one clear line for every way AWS can say no.
import {
  CloudFormationClient,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  type Stack,
} from '@aws-sdk/client-cloudformation';
import {
  AttachPolicyCommand,
  CreateCertificateFromCsrCommand,
  DeleteCertificateCommand,
  DeletePolicyCommand,
  DeletePolicyVersionCommand,
  DeleteThingCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListPolicyVersionsCommand,
  ListThingPrincipalsCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CloudWatchLogsClient, DeleteLogGroupCommand } from '@aws-sdk/client-cloudwatch-logs';
import { CreateScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Ui } from '../../src/cloud/provider.ts';
import { AwsProvider, createAwsProvider } from '../../src/cloud/providers/aws.ts';
import { buildStack, stackParameterValues } from '../../src/cloud/stack.ts';
import { defaultStackOptions } from '../../src/cloud/template-yaml.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { STACK_OUTPUTS } from './stack-outputs.ts';

const cfn = mockClient(CloudFormationClient);
const iot = mockClient(IoTClient);
const scheduler = mockClient(SchedulerClient);
const logs = mockClient(CloudWatchLogsClient);
const STACK = 'fp-yocto';
const OPTIONS = defaultStackOptions();
const INPUT = { stackName: STACK, template: buildStack(OPTIONS), parameters: stackParameterValues(OPTIONS) };


const stack = (StackStatus: string, extra: Partial<Stack> = {}): { Stacks: Stack[] } => ({
  Stacks: [{ StackName: STACK, StackStatus: StackStatus as Stack['StackStatus'], CreationTime: new Date(0), Outputs: STACK_OUTPUTS, ...extra }],
});

const awsError = (name: string, message: string) => Object.assign(new Error(message), { name, $metadata: {} });
const missing = () => awsError('ValidationError', `Stack with id ${STACK} does not exist`);

function recordingUi(answer = true) {
  const lines: string[] = [];
  const questions: string[] = [];
  const ui: Ui = {
    info: (l) => lines.push(l),
    warn: (l) => lines.push(`warn: ${l}`),
    confirm: async (q) => {
      questions.push(q);
      return answer;
    },
  };
  return { ui, lines, questions };
}

const provider = () => {
  const config = { region: 'eu-west-1' };
  const clients = {
    cfn: new CloudFormationClient(config),
    iot: new IoTClient(config),
    scheduler: new SchedulerClient(config),
    logs: new CloudWatchLogsClient(config),
    dynamodb: new DynamoDBClient(config),
  };
  return new AwsProvider(clients, 'eu-west-1', 0);
};

/** The stack's own event, which CloudFormation logs when an operation on the whole stack ends. */
const ownEvent = (ResourceStatus: string, EventId = `own-${ResourceStatus}`) => ({
  EventId,
  StackId: 's',
  StackName: STACK,
  LogicalResourceId: STACK,
  ResourceType: 'AWS::CloudFormation::Stack',
  ResourceStatus: ResourceStatus as 'CREATE_COMPLETE',
  Timestamp: later(),
});

/**
 * A stack whose DescribeStacks answers follow `statuses`, the last one repeating. The first answer
 * is the stack as it was; later ones were changed after the test's change set was made.
 */
function stackStatuses(...statuses: (string | 'missing')[]) {
  let i = 0;
  cfn.on(DescribeStacksCommand).callsFake(async () => {
    const first = i === 0;
    const s = statuses[Math.min(i++, statuses.length - 1)]!;
    if (s === 'missing') throw missing();
    return stack(s, first ? {} : { LastUpdatedTime: later() });
  });
}

const later = () => new Date(Date.now() + 60_000);

/** The names the default stack's outputs give (STACK_OUTPUTS). */
const NAMES = {
  templateName: 'fp-yocto-provisioning',
  thingGroupName: 'fp-yocto-devices',
  claimPolicy: 'fp-yocto-claim',
  devicePolicy: 'fp-yocto-device',
  roleAlias: 'fp-yocto-token-exchange',
  claimRetirementScheduleGroup: 'fp-yocto-claims',
  claimRetirementRoleArn: 'arn:aws:iam::123456789012:role/fp-yocto-eu-west-1-claim-retirement',
  deviceTable: 'fp-yocto-devices',
};


beforeEach(() => {
  cfn.reset();
  iot.reset();
  scheduler.reset();
  logs.reset();
});

describe('AWS provider: deploy', () => {
  it('creates the stack through a change set and prints the diff and the stack events', async () => {
    stackStatuses('missing', 'CREATE_IN_PROGRESS', 'CREATE_COMPLETE');
    cfn.on(CreateChangeSetCommand).resolves({ Id: 'cs-1' });
    cfn
      .on(DescribeChangeSetCommand)
      .resolvesOnce({ Status: 'CREATE_PENDING' })
      .resolves({
        Status: 'CREATE_COMPLETE',
        CreationTime: new Date(),
        Changes: [{ Type: 'Resource', ResourceChange: { Action: 'Add', LogicalResourceId: 'ClaimPolicy', ResourceType: 'AWS::IoT::Policy' } }],
      });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    // Before the change set runs, the new stack has no events; then CloudFormation's, newest first.
    cfn.on(DescribeStackEventsCommand).resolvesOnce({ StackEvents: [] }).resolves({
      StackEvents: [
        ownEvent('CREATE_COMPLETE'),
        { EventId: '2', StackId: 's', StackName: STACK, LogicalResourceId: 'ClaimPolicy', ResourceStatus: 'CREATE_COMPLETE', Timestamp: later() },
        { EventId: '1', StackId: 's', StackName: STACK, LogicalResourceId: 'ClaimPolicy', ResourceStatus: 'CREATE_IN_PROGRESS', Timestamp: later() },
        { EventId: '0', StackId: 's', StackName: STACK, LogicalResourceId: STACK, ResourceStatus: 'UPDATE_COMPLETE', Timestamp: new Date(0) },
      ],
    });
    const { ui, lines, questions } = recordingUi();

    const result = await provider().deploy(INPUT, ui);

    const create = cfn.commandCalls(CreateChangeSetCommand)[0]!.args[0].input;
    expect(create).toEqual({
      StackName: STACK,
      ChangeSetName: expect.stringMatching(/^fp-yocto-\d+$/),
      ChangeSetType: 'CREATE',
      TemplateBody: JSON.stringify(INPUT.template),
      Parameters: [
        { ParameterKey: 'ThingNamePrefix', ParameterValue: 'fp-yocto-' },
        { ParameterKey: 'ClientIdPrefix', ParameterValue: 'fleetprov-' },
        { ParameterKey: 'AllowList', ParameterValue: 'off' },
        { ParameterKey: 'OneIdentity', ParameterValue: 'on' },
        { ParameterKey: 'DeviceIdKind', ParameterValue: 'mac' },
      ],
      Capabilities: ['CAPABILITY_NAMED_IAM'],
      Tags: [{ Key: 'fp-yocto:stack', Value: STACK }],
      Description: 'fp-yocto init',
    });
    expect(cfn.commandCalls(ExecuteChangeSetCommand)[0]!.args[0].input).toEqual({ StackName: STACK, ChangeSetName: create.ChangeSetName });
    expect(result.changes).toEqual(['+ ClaimPolicy (AWS::IoT::Policy)']);
    expect(lines).toEqual(['+ ClaimPolicy (AWS::IoT::Policy)', 'ClaimPolicy CREATE_IN_PROGRESS', 'ClaimPolicy CREATE_COMPLETE', 'fp-yocto CREATE_COMPLETE']);
    expect(questions).toEqual([]);
    expect(result.names).toEqual(NAMES);
  });

  it('treats an empty change set as "no changes" and deletes it', async () => {
    stackStatuses('UPDATE_COMPLETE');
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({
      Status: 'FAILED',
      StatusReason: "The submitted information didn't contain changes. Submit different information to create a change set.",
    });
    cfn.on(DeleteChangeSetCommand).resolves({});

    const result = await provider().deploy(INPUT, recordingUi().ui);

    expect(result.changes).toEqual([]);
    expect(cfn.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetType).toBe('UPDATE');
    expect(cfn.commandCalls(DeleteChangeSetCommand)[0]!.args[0].input).toEqual({
      StackName: STACK,
      ChangeSetName: cfn.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetName,
    });
    expect(cfn.commandCalls(ExecuteChangeSetCommand)).toHaveLength(0);
  });

  it('shows a readable diff of an update and asks before applying it', async () => {
    stackStatuses('UPDATE_COMPLETE');
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({
      Status: 'CREATE_COMPLETE',
      Changes: [
        {
          ResourceChange: {
            Action: 'Modify',
            LogicalResourceId: 'PreProvisioningHook',
            ResourceType: 'AWS::Lambda::Function',
            Replacement: 'False',
            Details: [{ Target: { Attribute: 'Properties', Name: 'Environment' } }],
          },
        },
        { ResourceChange: { Action: 'Modify', LogicalResourceId: 'ThingGroup', ResourceType: 'AWS::IoT::ThingGroup', Replacement: 'True' } },
      ],
    });
    cfn.on(DeleteChangeSetCommand).resolves({});
    const { ui, questions } = recordingUi(false);

    await expect(provider().deploy(INPUT, ui)).rejects.toThrow('cancelled: the stack was not changed');

    expect(questions).toEqual(['Apply these 2 change(s) to stack fp-yocto?']);
    expect(cfn.commandCalls(ExecuteChangeSetCommand)).toHaveLength(0);
  });

  it('recovers from ROLLBACK_COMPLETE only after confirmation', async () => {
    stackStatuses('ROLLBACK_COMPLETE');
    const refused = recordingUi(false);
    await expect(provider().deploy(INPUT, refused.ui)).rejects.toThrow(
      'stack fp-yocto is in ROLLBACK_COMPLETE; run again with --yes to delete and re-create it',
    );
    expect(cfn.commandCalls(DeleteStackCommand)).toHaveLength(0);

    cfn.reset();
    stackStatuses('ROLLBACK_COMPLETE', 'DELETE_IN_PROGRESS', 'missing', 'CREATE_COMPLETE');
    cfn.on(DeleteStackCommand).resolves({});
    cfn.on(DescribeStackEventsCommand).resolvesOnce({ StackEvents: [] }).resolves({ StackEvents: [ownEvent('CREATE_COMPLETE')] });
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'CREATE_COMPLETE', CreationTime: new Date(), Changes: [] });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    const accepted = recordingUi(true);
    await provider().deploy(INPUT, accepted.ui);
    expect(accepted.questions).toEqual(['Delete the failed stack fp-yocto and create it again?']);
    expect(cfn.commandCalls(DeleteStackCommand)[0]!.args[0].input).toEqual({ StackName: STACK });
    expect(cfn.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetType).toBe('CREATE');
  });

  it.each([
    ['UPDATE_ROLLBACK_FAILED', 'stack fp-yocto is in UPDATE_ROLLBACK_FAILED (boom); fix it in the CloudFormation console, or run `fp-yocto destroy`'],
    ['UPDATE_IN_PROGRESS', 'stack fp-yocto is busy (UPDATE_IN_PROGRESS); wait for it to finish and run again'],
  ])('refuses a stack in %s with one line', async (status, message) => {
    cfn.on(DescribeStacksCommand).resolves(stack(status, { StackStatusReason: 'boom' }));
    await expect(provider().deploy(INPUT, recordingUi().ui)).rejects.toThrow(message);
    expect(cfn.commandCalls(CreateChangeSetCommand)).toHaveLength(0);
  });

  it('names the first failed resource when the stack rolls back', async () => {
    stackStatuses('missing', 'ROLLBACK_IN_PROGRESS', 'ROLLBACK_COMPLETE');
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'CREATE_COMPLETE', CreationTime: new Date(), Changes: [] });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    cfn.on(DescribeStackEventsCommand).resolvesOnce({ StackEvents: [] }).resolves({
      StackEvents: [
        ownEvent('ROLLBACK_COMPLETE'),
        { EventId: 'b', StackId: 's', StackName: STACK, LogicalResourceId: 'DevicePolicy', ResourceStatus: 'CREATE_FAILED', ResourceStatusReason: 'Resource creation cancelled', Timestamp: later() },
        { EventId: 'a', StackId: 's', StackName: STACK, LogicalResourceId: 'ClaimPolicy', ResourceStatus: 'CREATE_FAILED', ResourceStatusReason: 'Policy document is malformed', Timestamp: later() },
      ],
    });
    await expect(provider().deploy(INPUT, recordingUi().ui)).rejects.toThrow(
      'stack fp-yocto ended in ROLLBACK_COMPLETE: ClaimPolicy CREATE_FAILED Policy document is malformed',
    );
  });

  it('reports a rejected change set with its reason', async () => {
    stackStatuses('missing');
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'FAILED', StatusReason: 'Template format error: bad thing' });
    await expect(provider().deploy(INPUT, recordingUi().ui)).rejects.toThrow(
      'CloudFormation rejected the change set for fp-yocto: Template format error: bad thing',
    );
  });
});

describe('AWS provider: errors are one clear line', () => {
  it.each([
    [
      'no credentials',
      awsError('CredentialsProviderError', 'Could not load credentials from any providers'),
      'no AWS credentials found (run `aws configure` or `aws sso login`, or set AWS_PROFILE): Could not load credentials from any providers',
    ],
    [
      'no permission',
      awsError('AccessDenied', 'User: arn:aws:iam::123456789012:user/dev is not authorized to perform: cloudformation:DescribeStacks\nmore'),
      'no permission for cloudformation:DescribeStacks (User: arn:aws:iam::123456789012:user/dev is not authorized to perform: cloudformation:DescribeStacks)',
    ],
    ['throttled', awsError('Throttling', 'Rate exceeded'), 'AWS throttled cloudformation:DescribeStacks and retries ran out; wait a minute and run again (Rate exceeded)'],
    ['expired token', awsError('ExpiredToken', 'The security token included in the request is expired'), 'AWS rejected the credentials for cloudformation:DescribeStacks (ExpiredToken): refresh them and run again'],
  ])('%s', async (_label, error, message) => {
    cfn.on(DescribeStacksCommand).rejects(error);
    const failure = await provider().deploy(INPUT, recordingUi().ui).catch((e: Error) => e);
    expect(failure).toMatchObject({ name: 'UserError', message });
    expect((failure as Error).message).not.toContain('\n');
  });

  it('maps IoT errors the same way, naming the IoT action', async () => {
    iot.on(CreateCertificateFromCsrCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));
    await expect(provider().createCertificateFromCsr('CSR')).rejects.toThrow('AWS throttled iot:CreateCertificateFromCsr and retries ran out');
    iot.on(AttachPolicyCommand).rejects(awsError('UnauthorizedException', 'not authorized to perform iot:AttachPolicy'));
    await expect(provider().attachPolicy('p', { certificateId: 'c', certificateArn: 'arn' })).rejects.toThrow(
      'no permission for iot:AttachPolicy (not authorized to perform iot:AttachPolicy)',
    );
  });
});

describe('AWS provider: IoT', () => {
  it('signs the CSR with exactly the CSR sent and attaches the policy to the certificate ARN', async () => {
    iot.on(CreateCertificateFromCsrCommand).resolves({ certificateId: 'c1', certificateArn: 'arn:c1', certificatePem: 'PEM' });
    iot.on(AttachPolicyCommand).resolves({});
    const p = provider();
    expect(await p.createCertificateFromCsr('-----BEGIN CERTIFICATE REQUEST-----')).toEqual({ certificateId: 'c1', certificateArn: 'arn:c1', certificatePem: 'PEM' });
    await p.attachPolicy('fp-yocto-claim', { certificateId: 'c1', certificateArn: 'arn:c1' });
    expect(iot.commandCalls(CreateCertificateFromCsrCommand)[0]!.args[0].input).toEqual({
      certificateSigningRequest: '-----BEGIN CERTIFICATE REQUEST-----',
      setAsActive: true,
    });
    expect(iot.commandCalls(AttachPolicyCommand)[0]!.args[0].input).toEqual({ policyName: 'fp-yocto-claim', target: 'arn:c1' });
  });

  it('deletes a certificate: detach every policy, deactivate, delete', async () => {
    iot.on(DescribeCertificateCommand).resolves({ certificateDescription: { certificateId: 'c1', status: 'ACTIVE' } });
    iot.on(ListAttachedPoliciesCommand).resolvesOnce({ policies: [{ policyName: 'a' }], nextMarker: 'm' }).resolves({ policies: [{ policyName: 'b' }] });
    iot.on(DetachPolicyCommand).resolves({});
    iot.on(UpdateCertificateCommand).resolves({});
    iot.on(DeleteCertificateCommand).resolves({});
    await provider().deleteCertificate({ certificateId: 'c1', certificateArn: 'arn:c1' });
    expect(iot.commandCalls(ListAttachedPoliciesCommand).map((c) => c.args[0].input)).toEqual([
      { target: 'arn:c1', marker: undefined },
      { target: 'arn:c1', marker: 'm' },
    ]);
    expect(iot.commandCalls(DetachPolicyCommand).map((c) => c.args[0].input)).toEqual([
      { policyName: 'a', target: 'arn:c1' },
      { policyName: 'b', target: 'arn:c1' },
    ]);
    expect(iot.commandCalls(UpdateCertificateCommand)[0]!.args[0].input).toEqual({ certificateId: 'c1', newStatus: 'INACTIVE' });
    expect(iot.commandCalls(DeleteCertificateCommand)[0]!.args[0].input).toEqual({ certificateId: 'c1' });
  });

  it('skips a certificate that is already gone', async () => {
    iot.on(DescribeCertificateCommand).rejects(awsError('ResourceNotFoundException', 'gone'));
    await provider().deleteCertificate({ certificateId: 'c1', certificateArn: 'arn:c1' });
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(0);
  });

  it('asks for the ATS data endpoint and the credentials endpoint', async () => {
    iot.on(DescribeEndpointCommand, { endpointType: 'iot:Data-ATS' }).resolves({ endpointAddress: 'abc-ats.iot.eu-west-1.amazonaws.com' });
    iot.on(DescribeEndpointCommand, { endpointType: 'iot:CredentialProvider' }).resolves({ endpointAddress: 'abc.credentials.iot.eu-west-1.amazonaws.com' });
    expect(await provider().describeEndpoints()).toEqual({
      data: 'abc-ats.iot.eu-west-1.amazonaws.com',
      credentials: 'abc.credentials.iot.eu-west-1.amazonaws.com',
      port: 8883,
    });
    expect(iot.commandCalls(DescribeEndpointCommand).map((c) => c.args[0].input)).toEqual([
      { endpointType: 'iot:Data-ATS' },
      { endpointType: 'iot:CredentialProvider' },
    ]);
  });
});

describe('AWS provider: region as the AWS CLI resolves it', () => {
  async function isolate(config = '') {
    const dir = await tmpDir();
    await writeFile(path.join(dir, 'config'), config);
    vi.stubEnv('AWS_CONFIG_FILE', path.join(dir, 'config'));
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', path.join(dir, 'credentials'));
    vi.stubEnv('AWS_REGION', undefined);
    vi.stubEnv('AWS_DEFAULT_REGION', undefined);
    vi.stubEnv('AWS_PROFILE', undefined);
  }
  beforeEach(() => vi.unstubAllEnvs());

  it('uses --region first, then AWS_REGION, then AWS_DEFAULT_REGION (which the SDK alone ignores)', async () => {
    await isolate();
    vi.stubEnv('AWS_DEFAULT_REGION', 'eu-north-1');
    expect((await createAwsProvider({})).region).toBe('eu-north-1');
    vi.stubEnv('AWS_REGION', 'eu-west-3');
    expect((await createAwsProvider({})).region).toBe('eu-west-3');
    expect((await createAwsProvider({ region: 'sa-east-1' })).region).toBe('sa-east-1');
  });

  it("falls back to the profile's region in ~/.aws/config", async () => {
    await isolate('[profile dev]\nregion = ap-south-1\n');
    expect((await createAwsProvider({ profile: 'dev' })).region).toBe('ap-south-1');
  });

  it('says how to set a region when there is none', async () => {
    await isolate();
    await expect(createAwsProvider({})).rejects.toThrow(
      'no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or set region in your AWS profile (~/.aws/config)',
    );
  });
});

const event = (EventId: string, LogicalResourceId: string, ResourceStatus: string, Timestamp: Date) => ({
  EventId,
  StackId: 's',
  StackName: STACK,
  LogicalResourceId,
  ResourceStatus: ResourceStatus as 'CREATE_COMPLETE',
  Timestamp,
});

describe('AWS provider: following a change set (issue 12, defects 3, 6, 9)', () => {
  it('waits past a stale status for the update it started and returns the new outputs', async () => {
    const oldOutputs = STACK_OUTPUTS.map((o) => (o.OutputKey === 'ClaimPolicyName' ? { ...o, OutputValue: 'old-claim' } : o));
    const answers: Stack[] = [
      { StackName: STACK, StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date(0), LastUpdatedTime: new Date(1_000), Outputs: oldOutputs },
      // Read right after ExecuteChangeSet: CloudFormation has not started yet.
      { StackName: STACK, StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date(0), LastUpdatedTime: new Date(1_000), Outputs: oldOutputs },
      { StackName: STACK, StackStatus: 'UPDATE_IN_PROGRESS', CreationTime: new Date(0), LastUpdatedTime: new Date(9_000), Outputs: oldOutputs },
      { StackName: STACK, StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date(0), LastUpdatedTime: new Date(9_000), Outputs: STACK_OUTPUTS },
    ];
    let i = 0;
    cfn.on(DescribeStacksCommand).callsFake(async () => ({ Stacks: [answers[Math.min(i++, answers.length - 1)]!] }));
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'CREATE_COMPLETE', CreationTime: new Date(5_000), Changes: [{ ResourceChange: { Action: 'Modify', LogicalResourceId: 'ClaimPolicy', ResourceType: 'AWS::IoT::Policy' } }] });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    cfn.on(DescribeStackEventsCommand).resolves({ StackEvents: [event('old', STACK, 'UPDATE_COMPLETE', new Date(1_000))] });

    const result = await provider().deploy(INPUT, recordingUi().ui);

    expect(result.names.claimPolicy).toBe('fp-yocto-claim');
    expect(cfn.commandCalls(DescribeStacksCommand).length).toBeGreaterThanOrEqual(4);
  });

  it('reads every page of stack events and filters them by the change set time CloudFormation reports', async () => {
    stackStatuses('UPDATE_COMPLETE', 'UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE');
    cfn.on(CreateChangeSetCommand).resolves({});
    // CloudFormation's clock is years behind this host's: the local clock must not filter.
    const created = new Date('2020-01-01T00:00:00Z');
    const at = (s: number) => new Date(created.getTime() + s * 1000);
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'CREATE_COMPLETE', CreationTime: created, Changes: [{ ResourceChange: { Action: 'Modify', LogicalResourceId: 'ThingGroup', ResourceType: 'AWS::IoT::ThingGroup' } }] });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    cfn
      .on(DescribeStackEventsCommand)
      .resolvesOnce({ StackEvents: [event('before', STACK, 'UPDATE_COMPLETE', at(-60))] })
      .resolvesOnce({ StackEvents: [event('e3', 'ThingGroup', 'UPDATE_COMPLETE', at(3)), event('e2', 'ThingGroup', 'UPDATE_IN_PROGRESS', at(2))], NextToken: 'p2' })
      .resolvesOnce({ StackEvents: [event('e1', STACK, 'UPDATE_IN_PROGRESS', at(1)), event('before', STACK, 'UPDATE_COMPLETE', at(-60))], NextToken: 'p3' })
      .resolves({ StackEvents: [{ ...ownEvent('UPDATE_COMPLETE'), Timestamp: at(4) }, event('e3', 'ThingGroup', 'UPDATE_COMPLETE', at(3))] });
    const { ui, lines } = recordingUi();

    await provider().deploy(INPUT, ui);

    expect(lines).toEqual([
      '~ ThingGroup (AWS::IoT::ThingGroup)',
      'fp-yocto UPDATE_IN_PROGRESS',
      'ThingGroup UPDATE_IN_PROGRESS',
      'ThingGroup UPDATE_COMPLETE',
      'fp-yocto UPDATE_COMPLETE',
    ]);
    const pages = cfn.commandCalls(DescribeStackEventsCommand).map((c) => c.args[0].input);
    expect(pages).toContainEqual({ StackName: STACK, NextToken: 'p2' });
    // Paging stops at the first event from before the change set: page p3 is never asked for.
    expect(pages).not.toContainEqual({ StackName: STACK, NextToken: 'p3' });
  });

  it('deletes a stack left in REVIEW_IN_PROGRESS by a failed CREATE change set and creates it again, saying so', async () => {
    stackStatuses('REVIEW_IN_PROGRESS', 'DELETE_IN_PROGRESS', 'missing', 'CREATE_COMPLETE');
    cfn.on(DeleteStackCommand).resolves({});
    cfn.on(DescribeStackEventsCommand).resolvesOnce({ StackEvents: [] }).resolves({ StackEvents: [ownEvent('CREATE_COMPLETE')] });
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'CREATE_COMPLETE', CreationTime: new Date(), Changes: [] });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    const { ui, lines, questions } = recordingUi();

    await provider().deploy(INPUT, ui);

    expect(lines[0]).toBe('warn: stack fp-yocto is in REVIEW_IN_PROGRESS: an earlier CREATE change set failed or was never run; it has no resources');
    expect(lines[1]).toBe('deleting stack fp-yocto and its change sets, then creating it again');
    expect(questions).toEqual([]);
    expect(cfn.commandCalls(DeleteStackCommand).map((c) => c.args[0].input)).toEqual([{ StackName: STACK }]);
    expect(cfn.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetType).toBe('CREATE');
  });
});

describe('AWS provider: rotate-claim grace period in the cloud (defect 8)', () => {
  it('creates a one-time schedule whose universal target deactivates exactly that certificate, then deletes itself', async () => {
    scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn:aws:scheduler:eu-west-1:123456789012:schedule/fp-yocto-claims/x' });
    const id = 'a'.repeat(64);
    const name = await provider().scheduleDeactivation({ certificateId: id, certificateArn: `arn:aws:iot:eu-west-1:123456789012:cert/${id}` }, new Date('2030-05-06T07:08:09.100Z'), NAMES);
    expect(name).toBe(`retire-${'a'.repeat(32)}`);
    expect(scheduler.commandCalls(CreateScheduleCommand).map((c) => c.args[0].input)).toEqual([
      {
        Name: `retire-${'a'.repeat(32)}`,
        GroupName: 'fp-yocto-claims',
        Description: `fp-yocto: deactivate claim certificate ${id} after rotate-claim's grace period`,
        ScheduleExpression: 'at(2030-05-06T07:08:10)',
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        Target: {
          Arn: 'arn:aws:scheduler:::aws-sdk:iot:updateCertificate',
          RoleArn: NAMES.claimRetirementRoleArn,
          Input: JSON.stringify({ certificateId: id, newStatus: 'INACTIVE' }),
        },
        ActionAfterCompletion: 'DELETE',
      },
    ]);
  });

  it('uses the partition of the stack, and schedules nothing for a stack without the schedule group', async () => {
    scheduler.on(CreateScheduleCommand).resolves({});
    const cert = { certificateId: 'b'.repeat(64), certificateArn: 'x' };
    await provider().scheduleDeactivation(cert, new Date(), { ...NAMES, claimRetirementRoleArn: 'arn:aws-eusc:iam::123456789012:role/r' });
    expect(scheduler.commandCalls(CreateScheduleCommand)[0]!.args[0].input.Target!.Arn).toBe('arn:aws-eusc:scheduler:::aws-sdk:iot:updateCertificate');
    const { claimRetirementScheduleGroup: _g, claimRetirementRoleArn: _r, ...old } = NAMES;
    expect(await provider().scheduleDeactivation(cert, new Date(), old)).toBeUndefined();
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
  });
});

describe('AWS provider: destroy with a provisioned fleet (defect 2)', () => {
  it('deletes a thing: its principals detached, their certificates detached from policies, deactivated and deleted', async () => {
    const certArn = (c: string) => `arn:aws:iot:eu-west-1:123456789012:cert/${c.repeat(64)}`;
    iot.on(ListThingPrincipalsCommand).resolvesOnce({ principals: [certArn('c')], nextToken: 'n' }).resolves({ principals: [certArn('d')] });
    iot.on(DetachThingPrincipalCommand).resolves({});
    iot.on(DescribeCertificateCommand).resolves({ certificateDescription: { status: 'ACTIVE' } });
    iot.on(ListAttachedPoliciesCommand).resolves({ policies: [{ policyName: 'fp-yocto-device' }] });
    iot.on(DetachPolicyCommand).resolves({});
    iot.on(UpdateCertificateCommand).resolves({});
    iot.on(DeleteCertificateCommand).resolves({});
    iot.on(DeleteThingCommand).resolves({});
    const { ui, lines } = recordingUi();

    await provider().deleteThing('fp-yocto-aabbccddeeff', ui);

    expect(iot.commandCalls(ListThingPrincipalsCommand).map((c) => c.args[0].input)).toEqual([
      { thingName: 'fp-yocto-aabbccddeeff', nextToken: undefined },
      { thingName: 'fp-yocto-aabbccddeeff', nextToken: 'n' },
    ]);
    expect(iot.commandCalls(DetachThingPrincipalCommand).map((c) => c.args[0].input)).toEqual([
      { thingName: 'fp-yocto-aabbccddeeff', principal: certArn('c') },
      { thingName: 'fp-yocto-aabbccddeeff', principal: certArn('d') },
    ]);
    expect(iot.commandCalls(DetachPolicyCommand).map((c) => c.args[0].input)).toEqual([
      { policyName: 'fp-yocto-device', target: certArn('c') },
      { policyName: 'fp-yocto-device', target: certArn('d') },
    ]);
    expect(iot.commandCalls(UpdateCertificateCommand).map((c) => c.args[0].input)).toEqual([
      { certificateId: 'c'.repeat(64), newStatus: 'INACTIVE' },
      { certificateId: 'd'.repeat(64), newStatus: 'INACTIVE' },
    ]);
    expect(iot.commandCalls(DeleteCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: 'c'.repeat(64) }, { certificateId: 'd'.repeat(64) }]);
    expect(iot.commandCalls(DeleteThingCommand).map((c) => c.args[0].input)).toEqual([{ thingName: 'fp-yocto-aabbccddeeff' }]);
    expect(lines).toEqual(['- thing fp-yocto-aabbccddeeff and 2 certificate(s)']);
  });

  function deletedStack() {
    stackStatuses('CREATE_COMPLETE', 'missing');
    cfn.on(DeleteStackCommand).resolves({});
    cfn.on(DescribeStackEventsCommand).resolves({ StackEvents: [] });
    logs.on(DeleteLogGroupCommand, { logGroupName: '/aws/lambda/fp-yocto-pre-provisioning-hook' }).resolves({});
    logs.on(DeleteLogGroupCommand, { logGroupName: '/aws/lambda/fp-yocto-iot-endpoints' }).rejects(awsError('ResourceNotFoundException', 'never invoked'));
  }

  it('deletes the retained device policy after the stack, retrying DeleteConflict while the detach propagates, and the Lambda log groups', async () => {
    deletedStack();
    iot.on(ListPolicyVersionsCommand).resolves({ policyVersions: [{ versionId: '2', isDefaultVersion: true }, { versionId: '1', isDefaultVersion: false }] });
    iot.on(DeletePolicyVersionCommand).resolves({});
    iot
      .on(DeletePolicyCommand)
      .rejectsOnce(awsError('DeleteConflictException', 'The policy cannot be deleted as the policy is attached to one or more principals'))
      .rejectsOnce(awsError('DeleteConflictException', 'The policy cannot be deleted as the policy is attached to one or more principals'))
      .resolves({});
    const { ui, lines } = recordingUi();

    const left = await provider().destroyStack(STACK, NAMES, { keepDevicePolicy: false }, ui);

    expect(left).toEqual([]);
    expect(cfn.commandCalls(DeleteStackCommand).map((c) => c.args[0].input)).toEqual([{ StackName: STACK }]);
    expect(iot.commandCalls(DeletePolicyCommand).map((c) => c.args[0].input)).toEqual(Array(3).fill({ policyName: 'fp-yocto-device' }));
    expect(iot.commandCalls(ListPolicyVersionsCommand)[0]!.args[0].input).toEqual({ policyName: 'fp-yocto-device' });
    expect(iot.commandCalls(DeletePolicyVersionCommand).map((c) => c.args[0].input)).toEqual([{ policyName: 'fp-yocto-device', policyVersionId: '1' }]);
    expect(lines.filter((l) => l.includes('retrying'))).toEqual([
      'policy fp-yocto-device is still attached as far as AWS IoT can tell (detaching takes a while to show); retrying in 1 s',
      'policy fp-yocto-device is still attached as far as AWS IoT can tell (detaching takes a while to show); retrying in 2 s',
    ]);
    expect(logs.commandCalls(DeleteLogGroupCommand).map((c) => c.args[0].input)).toEqual([
      { logGroupName: '/aws/lambda/fp-yocto-pre-provisioning-hook' },
      { logGroupName: '/aws/lambda/fp-yocto-iot-endpoints' },
    ]);
    expect(lines).toContain('- log group /aws/lambda/fp-yocto-pre-provisioning-hook');
  });

  it('says exactly what is left: the device policy kept for the fleet, or one AWS kept refusing', async () => {
    deletedStack();
    const kept = await provider().destroyStack(STACK, NAMES, { keepDevicePolicy: true }, recordingUi().ui);
    expect(kept).toEqual(['policy fp-yocto-device: kept for the provisioned devices (their certificates hold it)']);
    expect(iot.commandCalls(DeletePolicyCommand)).toHaveLength(0);

    cfn.reset();
    deletedStack();
    iot.on(ListPolicyVersionsCommand).resolves({ policyVersions: [] });
    iot.on(DeletePolicyCommand).rejects(awsError('DeleteConflictException', 'attached'));
    const refused = await provider().destroyStack(STACK, NAMES, { keepDevicePolicy: false }, recordingUi().ui);
    expect(refused).toEqual([
      'policy fp-yocto-device: AWS still reports it attached; delete it later with `aws iot delete-policy --policy-name fp-yocto-device`',
    ]);
    expect(iot.commandCalls(DeletePolicyCommand)).toHaveLength(8);
  });
});
