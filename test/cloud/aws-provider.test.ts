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
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DetachPolicyCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
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

const provider = () => new AwsProvider(new CloudFormationClient({ region: 'eu-west-1' }), new IoTClient({ region: 'eu-west-1' }), 'eu-west-1', 0);

/** A stack whose DescribeStacks answers follow `statuses`, the last one repeating. */
function stackStatuses(...statuses: (string | 'missing')[]) {
  let i = 0;
  cfn.on(DescribeStacksCommand).callsFake(async () => {
    const s = statuses[Math.min(i++, statuses.length - 1)]!;
    if (s === 'missing') throw missing();
    return stack(s);
  });
}

const later = () => new Date(Date.now() + 60_000);

beforeEach(() => {
  cfn.reset();
  iot.reset();
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
        Changes: [{ Type: 'Resource', ResourceChange: { Action: 'Add', LogicalResourceId: 'ClaimPolicy', ResourceType: 'AWS::IoT::Policy' } }],
      });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    cfn.on(DescribeStackEventsCommand).resolves({
      StackEvents: [
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
        { ParameterKey: 'AllowedDeviceIds', ParameterValue: '' },
      ],
      Capabilities: ['CAPABILITY_NAMED_IAM'],
      Tags: [{ Key: 'fp-yocto:stack', Value: STACK }],
      Description: 'fp-yocto init',
    });
    expect(cfn.commandCalls(ExecuteChangeSetCommand)[0]!.args[0].input).toEqual({ StackName: STACK, ChangeSetName: create.ChangeSetName });
    expect(result.changes).toEqual(['+ ClaimPolicy (AWS::IoT::Policy)']);
    expect(lines).toEqual(['+ ClaimPolicy (AWS::IoT::Policy)', 'ClaimPolicy CREATE_IN_PROGRESS', 'ClaimPolicy CREATE_COMPLETE']);
    expect(questions).toEqual([]);
    expect(result.names).toEqual({
      templateName: 'fp-yocto-provisioning',
      thingGroupName: 'fp-yocto-devices',
      claimPolicy: 'fp-yocto-claim',
      devicePolicy: 'fp-yocto-device',
      roleAlias: 'fp-yocto-token-exchange',
    });
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
    cfn.on(DescribeStackEventsCommand).resolves({ StackEvents: [] });
    cfn.on(CreateChangeSetCommand).resolves({});
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'CREATE_COMPLETE', Changes: [] });
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
    cfn.on(DescribeChangeSetCommand).resolves({ Status: 'CREATE_COMPLETE', Changes: [] });
    cfn.on(ExecuteChangeSetCommand).resolves({});
    cfn.on(DescribeStackEventsCommand).resolves({
      StackEvents: [
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
