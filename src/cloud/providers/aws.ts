// The AWS provider: CloudFormation change sets for the stack, AWS IoT for the claim certificate
// and the fleet, EventBridge Scheduler for rotate-claim's grace period, CloudWatch Logs for the
// Lambda log groups destroy removes. Credentials come from the SDK's default chain (env, SSO,
// profiles, IMDS); the region is resolved the way the AWS CLI does it, including
// AWS_DEFAULT_REGION, which the SDK ignores.
import {
  CloudFormationClient,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  type Change,
  type Stack,
  type StackEvent,
} from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, DeleteLogGroupCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
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
  ListThingsInThingGroupCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { CreateScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { UserError } from '../../shared/errors.ts';
import { amazonRootCaPath } from '../../shared/package-root.ts';
import type { ResourceNames } from '../project.ts';
import type { CertificateRef, CloudProvider, DeployInput, DeployResult, DestroyOptions, StackInfo, Ui } from '../provider.ts';
import { lambdaLogGroups } from '../stack.ts';

export interface AwsOptions {
  region?: string;
  profile?: string;
  /** Delay between polls of change sets and stack events, and the unit of retry backoff; tests set 0. */
  pollMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Where the region came from, in the AWS CLI's order; the profile's region is left to the SDK. */
export function regionFromFlagsOrEnv(options: AwsOptions): string | undefined {
  const env = options.env ?? process.env;
  return options.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
}

export interface AwsClients {
  cfn: CloudFormationClient;
  iot: IoTClient;
  scheduler: SchedulerClient;
  logs: CloudWatchLogsClient;
  dynamodb: DynamoDBClient;
}

export async function createAwsProvider(options: AwsOptions): Promise<AwsProvider> {
  // fp-yocto supports Node 20 (engines); the SDK's Node-version notice would only add noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const config = { region: regionFromFlagsOrEnv(options), profile: options.profile, maxAttempts: 5 };
  const cfn = new CloudFormationClient(config);
  let region: string;
  try {
    region = await cfn.config.region();
  } catch {
    region = '';
  }
  if (!region) {
    cfn.destroy();
    throw new UserError(
      'no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or set region in your AWS profile (~/.aws/config)',
    );
  }
  const regional = { ...config, region };
  const clients = {
    cfn,
    iot: new IoTClient(regional),
    scheduler: new SchedulerClient(regional),
    logs: new CloudWatchLogsClient(regional),
    // Imports keep several batches in flight: sockets for them, and the SDK's retries for throttling.
    dynamodb: new DynamoDBClient({ ...regional, maxAttempts: 8 }),
  };
  return new AwsProvider(clients, region, options.pollMs ?? 3_000);
}

// CloudFormation reports an empty change set as FAILED with one of these reasons.
const NO_CHANGES = /didn't contain changes|No updates are to be performed/i;
const CREDENTIALS = /CredentialsProviderError|Could not load credentials/i;
const ACCESS_DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'UnauthorizedException']);
const THROTTLED = new Set(['Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded']);
const BAD_TOKEN = new Set(['ExpiredToken', 'ExpiredTokenException', 'InvalidClientTokenId', 'UnrecognizedClientException']);

const firstLine = (text: string): string => text.split('\n')[0]!.trim();
const errorName = (error: unknown): string | undefined => (error as { name?: string }).name;

/** Turns any SDK failure into one line that names the action and what to do. */
export function toUserError(action: string, error: unknown): UserError {
  if (error instanceof UserError) return error;
  const e = error as { name?: string; message?: string; Code?: string };
  const name = e.name ?? e.Code ?? 'Error';
  const message = firstLine(e.message ?? String(error));
  if (CREDENTIALS.test(name) || CREDENTIALS.test(message)) {
    return new UserError(`no AWS credentials found (run \`aws configure\` or \`aws sso login\`, or set AWS_PROFILE): ${message}`);
  }
  if (ACCESS_DENIED.has(name)) return new UserError(`no permission for ${action} (${message})`);
  if (THROTTLED.has(name)) return new UserError(`AWS throttled ${action} and retries ran out; wait a minute and run again (${message})`);
  if (BAD_TOKEN.has(name)) return new UserError(`AWS rejected the credentials for ${action} (${name}): refresh them and run again`);
  return new UserError(`${action} failed: ${name}: ${message}`);
}

const isMissingStack = (error: unknown): boolean => errorName(error) === 'ValidationError' && /does not exist/.test((error as Error).message ?? '');
const isNotFound = (error: unknown): boolean => errorName(error) === 'ResourceNotFoundException';

const TERMINAL_OK = new Set(['CREATE_COMPLETE', 'UPDATE_COMPLETE', 'IMPORT_COMPLETE']);
const UPDATABLE = new Set([...TERMINAL_OK, 'UPDATE_ROLLBACK_COMPLETE', 'IMPORT_ROLLBACK_COMPLETE']);
const inProgress = (status: string | undefined): boolean => Boolean(status?.endsWith('_IN_PROGRESS'));

/** One line of the change-set diff. */
export function describeChange(change: Change): string {
  const rc = change.ResourceChange ?? {};
  const sign = rc.Action === 'Add' ? '+' : rc.Action === 'Remove' ? '-' : '~';
  const replace = rc.Replacement === 'True' ? ' (replaced)' : rc.Replacement === 'Conditional' ? ' (may be replaced)' : '';
  const what = rc.Details?.map((d) => d.Target?.Name).filter(Boolean) ?? [];
  const detail = rc.Action === 'Modify' && what.length ? `: ${[...new Set(what)].join(', ')}` : '';
  return `${sign} ${rc.LogicalResourceId} (${rc.ResourceType})${replace}${detail}`;
}

/**
 * "at(yyyy-mm-ddThh:mm:ss)" in UTC, rounded up to the next whole second: the expression of an
 * EventBridge Scheduler one-time schedule ("Schedule types on EventBridge Scheduler").
 */
export function atExpression(when: Date): string {
  const seconds = new Date(Math.ceil(when.getTime() / 1000) * 1000);
  return `at(${seconds.toISOString().slice(0, 19)})`;
}

/** The partition of an ARN (aws, aws-cn, aws-us-gov, aws-eusc...). */
const partitionOf = (arn: string): string => arn.split(':')[1] ?? 'aws';

/**
 * DeletePolicy answers DeleteConflictException while the policy is attached, and "for minutes"
 * after a DetachPolicy (eventual consistency): retry with backoff, bounded, saying so.
 */
export const DELETE_CONFLICT_BACKOFF = [1, 2, 4, 8, 16, 32, 60];

export class AwsProvider implements CloudProvider {
  readonly kind = 'aws' as const;

  constructor(
    private readonly clients: AwsClients,
    readonly region: string,
    private readonly pollMs: number,
  ) {}

  private get cfn() {
    return this.clients.cfn;
  }

  private get iot() {
    return this.clients.iot;
  }

  private async call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw toUserError(action, error);
    }
  }

  private async getStack(stackName: string): Promise<Stack | undefined> {
    try {
      const out = await this.cfn.send(new DescribeStacksCommand({ StackName: stackName }));
      return out.Stacks?.[0];
    } catch (error) {
      if (isMissingStack(error)) return undefined;
      throw toUserError('cloudformation:DescribeStacks', error);
    }
  }

  async describeStack(stackName: string): Promise<StackInfo | undefined> {
    const stack = await this.getStack(stackName);
    return stack && { status: stack.StackStatus ?? 'UNKNOWN', reason: stack.StackStatusReason };
  }

  async deploy(input: DeployInput, ui: Ui): Promise<DeployResult> {
    const { stackName } = input;
    let stack = await this.getStack(stackName);
    if (stack?.StackStatus === 'ROLLBACK_COMPLETE') {
      // A stack whose creation failed cannot be updated; it has to go first.
      const why = stack.StackStatusReason ? ` (${stack.StackStatusReason})` : '';
      ui.warn(`stack ${stackName} is in ROLLBACK_COMPLETE: its creation failed earlier${why}`);
      if (!(await ui.confirm(`Delete the failed stack ${stackName} and create it again?`, { destructive: true }))) {
        throw new UserError(`stack ${stackName} is in ROLLBACK_COMPLETE; run again with --yes to delete and re-create it`);
      }
      await this.deleteStackAndWait(stackName, ui);
      stack = undefined;
    } else if (stack?.StackStatus === 'REVIEW_IN_PROGRESS') {
      // A CREATE change set that failed (or was never executed) leaves the stack here, with no
      // resources. Nothing is lost by deleting it; DeleteStack accepts this state.
      ui.warn(`stack ${stackName} is in REVIEW_IN_PROGRESS: an earlier CREATE change set failed or was never run; it has no resources`);
      ui.info(`deleting stack ${stackName} and its change sets, then creating it again`);
      await this.deleteStackAndWait(stackName, ui);
      stack = undefined;
    } else if (stack && !UPDATABLE.has(stack.StackStatus ?? '')) {
      throw new UserError(
        inProgress(stack.StackStatus)
          ? `stack ${stackName} is busy (${stack.StackStatus}); wait for it to finish and run again`
          : `stack ${stackName} is in ${stack.StackStatus}${stack.StackStatusReason ? ` (${stack.StackStatusReason})` : ''}; fix it in the CloudFormation console, or run \`fp-yocto destroy\``,
      );
    }

    const changeSetType = stack ? 'UPDATE' : 'CREATE';
    const changeSetName = `fp-yocto-${Date.now()}`;
    await this.call('cloudformation:CreateChangeSet', () =>
      this.cfn.send(
        new CreateChangeSetCommand({
          StackName: stackName,
          ChangeSetName: changeSetName,
          ChangeSetType: changeSetType,
          TemplateBody: JSON.stringify(input.template),
          Parameters: Object.entries(input.parameters).map(([ParameterKey, ParameterValue]) => ({ ParameterKey, ParameterValue })),
          Capabilities: ['CAPABILITY_NAMED_IAM'],
          Tags: [{ Key: 'fp-yocto:stack', Value: stackName }],
          Description: 'fp-yocto init',
        }),
      ),
    );

    const changeSet = await this.waitForChangeSet(stackName, changeSetName);
    if (changeSet.changes === undefined) {
      await this.call('cloudformation:DeleteChangeSet', () =>
        this.cfn.send(new DeleteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })),
      );
      return { changes: [], names: namesFromOutputs(stack, stackName) };
    }
    const { changes } = changeSet;
    for (const line of changes) ui.info(line);
    if (stack && !(await ui.confirm(`Apply these ${changes.length} change(s) to stack ${stackName}?`))) {
      await this.cfn.send(new DeleteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })).catch(() => undefined);
      throw new UserError('cancelled: the stack was not changed');
    }

    const cursor = await this.newestEventId(stackName);
    await this.call('cloudformation:ExecuteChangeSet', () =>
      this.cfn.send(new ExecuteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })),
    );
    // CloudFormation's clock, not ours: the change set's creation time.
    const { stack: done, failure } = await this.followStack(stackName, { since: changeSet.createdAt, cursor }, ui);
    if (!TERMINAL_OK.has(done.StackStatus ?? '')) {
      const why = failure ?? done.StackStatusReason;
      throw new UserError(`stack ${stackName} ended in ${done.StackStatus}${why ? `: ${why}` : ''}`);
    }
    return { changes, names: namesFromOutputs(done, stackName) };
  }

  /** The diff (undefined when the change set is empty) and when CloudFormation created it. */
  private async waitForChangeSet(stackName: string, changeSetName: string): Promise<{ changes?: string[]; createdAt?: Date }> {
    for (;;) {
      const out = await this.call('cloudformation:DescribeChangeSet', () =>
        this.cfn.send(new DescribeChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })),
      );
      if (out.Status === 'FAILED') {
        if (NO_CHANGES.test(out.StatusReason ?? '')) return {};
        throw new UserError(`CloudFormation rejected the change set for ${stackName}: ${out.StatusReason ?? 'no reason given'}`);
      }
      if (out.Status === 'CREATE_COMPLETE') {
        const changes = [...(out.Changes ?? [])];
        let next = out.NextToken;
        while (next) {
          const page = await this.call('cloudformation:DescribeChangeSet', () =>
            this.cfn.send(new DescribeChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName, NextToken: next })),
          );
          changes.push(...(page.Changes ?? []));
          next = page.NextToken;
        }
        return { changes: changes.map(describeChange), createdAt: out.CreationTime };
      }
      await delay(this.pollMs);
    }
  }

  /** The newest event of the stack before we act on it: events up to it are history. */
  private async newestEventId(stackName: string): Promise<string | undefined> {
    try {
      const page = await this.cfn.send(new DescribeStackEventsCommand({ StackName: stackName }));
      return page.StackEvents?.[0]?.EventId;
    } catch (error) {
      if (isMissingStack(error)) return undefined;
      throw toUserError('cloudformation:DescribeStackEvents', error);
    }
  }

  /**
   * Events newer than the cursor, the change set's creation time and what was already seen,
   * oldest first. DescribeStackEvents pages newest first, so paging stops at the first old event.
   */
  private async newEvents(stackName: string, from: { since?: Date; cursor?: string }, seen: Set<string>): Promise<StackEvent[]> {
    const fresh: StackEvent[] = [];
    let NextToken: string | undefined;
    do {
      const page = await this.call('cloudformation:DescribeStackEvents', () =>
        this.cfn.send(new DescribeStackEventsCommand({ StackName: stackName, NextToken })),
      );
      NextToken = page.NextToken;
      for (const event of page.StackEvents ?? []) {
        const old =
          (event.EventId !== undefined && (event.EventId === from.cursor || seen.has(event.EventId))) ||
          (from.since !== undefined && event.Timestamp !== undefined && event.Timestamp < from.since);
        if (old) {
          NextToken = undefined;
          break;
        }
        fresh.push(event);
      }
    } while (NextToken);
    for (const event of fresh) if (event.EventId) seen.add(event.EventId);
    return fresh.reverse();
  }

  /**
   * Prints the stack's new events until the operation we started has ended: DescribeStacks no
   * longer says *_IN_PROGRESS, and either CloudFormation logged the stack's own final event or
   * the stack's update time is after the change set (a status read before the update began is
   * stale). Returns the final stack and the first resource failure.
   */
  private async followStack(stackName: string, from: { since?: Date; cursor?: string }, ui: Ui): Promise<{ stack: Stack; failure?: string }> {
    const seen = new Set<string>();
    let failure: string | undefined;
    let stackEnded = false;
    for (;;) {
      const events = await this.newEvents(stackName, from, seen).catch((error: unknown) => {
        // The stack vanished while we were reading its events (a finished delete).
        if (error instanceof UserError && /does not exist/.test(error.message)) return [];
        throw error;
      });
      for (const event of events) {
        const reason = event.ResourceStatusReason ? ` ${event.ResourceStatusReason}` : '';
        const line = `${event.LogicalResourceId} ${event.ResourceStatus}${reason}`;
        if (event.ResourceStatus?.endsWith('_FAILED')) {
          failure ??= line;
          ui.warn(line);
        } else ui.info(line);
        const ownEvent = event.ResourceType === 'AWS::CloudFormation::Stack' && event.LogicalResourceId === stackName;
        if (ownEvent && !inProgress(event.ResourceStatus)) stackEnded = true;
      }
      const stack = await this.getStack(stackName);
      if (!stack) return { stack: { StackName: stackName, StackStatus: 'DELETE_COMPLETE', CreationTime: from.since }, failure };
      const changedAt = stack.LastUpdatedTime ?? stack.CreationTime;
      const fresh = stackEnded || (from.since !== undefined && changedAt !== undefined && changedAt >= from.since);
      if (!inProgress(stack.StackStatus) && fresh) return { stack, failure };
      await delay(this.pollMs);
    }
  }

  private async deleteStackAndWait(stackName: string, ui: Ui): Promise<void> {
    const cursor = await this.newestEventId(stackName);
    await this.call('cloudformation:DeleteStack', () => this.cfn.send(new DeleteStackCommand({ StackName: stackName })));
    // Without a change set, only the stack's own final event (or its disappearance) ends the wait.
    const { stack: done, failure } = await this.followStack(stackName, { cursor }, ui);
    if (done.StackStatus !== 'DELETE_COMPLETE') {
      const why = failure ?? done.StackStatusReason;
      throw new UserError(`stack ${stackName} could not be deleted (${done.StackStatus}${why ? `: ${why}` : ''})`);
    }
  }

  async destroyStack(stackName: string, names: ResourceNames, options: DestroyOptions, ui: Ui): Promise<string[]> {
    if (await this.getStack(stackName)) await this.deleteStackAndWait(stackName, ui);
    else ui.info(`stack ${stackName} does not exist`);
    const left: string[] = [];
    // The stack retains the device policy (DeletionPolicy Retain): it goes unless devices keep it.
    if (options.keepDevicePolicy) {
      left.push(`policy ${names.devicePolicy}: kept for the provisioned devices (their certificates hold it)`);
    } else if (!(await this.deletePolicy(names.devicePolicy, ui))) {
      left.push(`policy ${names.devicePolicy}: AWS still reports it attached; delete it later with \`aws iot delete-policy --policy-name ${names.devicePolicy}\``);
    }
    for (const logGroupName of lambdaLogGroups(stackName)) {
      try {
        await this.clients.logs.send(new DeleteLogGroupCommand({ logGroupName }));
        ui.info(`- log group ${logGroupName}`);
      } catch (error) {
        if (!isNotFound(error)) throw toUserError('logs:DeleteLogGroup', error);
      }
    }
    return left;
  }

  /** Deletes an IoT policy and its old versions; false when it stayed attached through every retry. */
  private async deletePolicy(policyName: string, ui: Ui): Promise<boolean> {
    try {
      // DeletePolicy also refuses a policy that still has non-default versions.
      const versions = await this.iot.send(new ListPolicyVersionsCommand({ policyName }));
      for (const v of versions.policyVersions ?? []) {
        if (v.isDefaultVersion || !v.versionId) continue;
        await this.iot.send(new DeletePolicyVersionCommand({ policyName, policyVersionId: v.versionId }));
      }
    } catch (error) {
      if (isNotFound(error)) return true;
      throw toUserError('iot:DeletePolicyVersion', error);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await this.iot.send(new DeletePolicyCommand({ policyName }));
        ui.info(`- policy ${policyName}`);
        return true;
      } catch (error) {
        if (isNotFound(error)) return true;
        if (errorName(error) !== 'DeleteConflictException') throw toUserError('iot:DeletePolicy', error);
        const wait = DELETE_CONFLICT_BACKOFF[attempt];
        if (wait === undefined) return false;
        ui.info(`policy ${policyName} is still attached as far as AWS IoT can tell (detaching takes a while to show); retrying in ${wait} s`);
        // Seconds on AWS; no wait at all when polling is off (tests).
        await delay(this.pollMs > 0 ? wait * 1000 : 0);
      }
    }
  }

  async deleteThing(thingName: string, ui: Ui): Promise<void> {
    const principals: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.call('iot:ListThingPrincipals', () => this.iot.send(new ListThingPrincipalsCommand({ thingName, nextToken })));
      principals.push(...(page.principals ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    for (const principal of principals) {
      await this.call('iot:DetachThingPrincipal', () => this.iot.send(new DetachThingPrincipalCommand({ thingName, principal })));
      const certificateId = /:cert\/([0-9a-f]+)$/.exec(principal)?.[1];
      if (certificateId) await this.deleteCertificate({ certificateId, certificateArn: principal });
    }
    await this.call('iot:DeleteThing', () => this.iot.send(new DeleteThingCommand({ thingName })));
    ui.info(`- thing ${thingName} and ${principals.length} certificate(s)`);
  }

  async scheduleDeactivation(certificate: CertificateRef, at: Date, names: ResourceNames): Promise<string | undefined> {
    const { claimRetirementScheduleGroup: group, claimRetirementRoleArn: roleArn } = names;
    if (!group || !roleArn) return undefined; // a stack from before fp-yocto scheduled it
    const name = `retire-${certificate.certificateId.slice(0, 32)}`;
    await this.call('scheduler:CreateSchedule', () =>
      this.clients.scheduler.send(
        new CreateScheduleCommand({
          Name: name,
          GroupName: group,
          Description: `fp-yocto: deactivate claim certificate ${certificate.certificateId} after rotate-claim's grace period`,
          ScheduleExpression: atExpression(at),
          ScheduleExpressionTimezone: 'UTC',
          FlexibleTimeWindow: { Mode: 'OFF' },
          // A universal target ("Using universal targets", EventBridge Scheduler): the API
          // action's ARN, and its request parameters as the IoT API reference names them.
          Target: {
            Arn: `arn:${partitionOf(roleArn)}:scheduler:::aws-sdk:iot:updateCertificate`,
            RoleArn: roleArn,
            Input: JSON.stringify({ certificateId: certificate.certificateId, newStatus: 'INACTIVE' }),
          },
          ActionAfterCompletion: 'DELETE',
        }),
      ),
    );
    return name;
  }

  async createCertificateFromCsr(csrPem: string) {
    const out = await this.call('iot:CreateCertificateFromCsr', () =>
      this.iot.send(new CreateCertificateFromCsrCommand({ certificateSigningRequest: csrPem, setAsActive: true })),
    );
    if (!out.certificateId || !out.certificateArn || !out.certificatePem) {
      throw new UserError('iot:CreateCertificateFromCsr returned no certificate');
    }
    return { certificateId: out.certificateId, certificateArn: out.certificateArn, certificatePem: out.certificatePem };
  }

  async attachPolicy(policyName: string, certificate: CertificateRef): Promise<void> {
    await this.call('iot:AttachPolicy', () =>
      this.iot.send(new AttachPolicyCommand({ policyName, target: certificate.certificateArn })),
    );
  }

  async describeCertificate(certificateId: string) {
    try {
      const out = await this.iot.send(new DescribeCertificateCommand({ certificateId }));
      const d = out.certificateDescription;
      return d && { status: d.status ?? 'UNKNOWN', notAfter: d.validity?.notAfter?.toISOString() };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw toUserError('iot:DescribeCertificate', error);
    }
  }

  async deactivateCertificate(certificateId: string): Promise<void> {
    await this.call('iot:UpdateCertificate', () =>
      this.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' })),
    );
  }

  async deleteCertificate(certificate: CertificateRef): Promise<void> {
    const { certificateId, certificateArn } = certificate;
    if (!(await this.describeCertificate(certificateId))) return;
    const policies: string[] = [];
    let marker: string | undefined;
    do {
      const page = await this.call('iot:ListAttachedPolicies', () =>
        this.iot.send(new ListAttachedPoliciesCommand({ target: certificateArn, marker })),
      );
      policies.push(...(page.policies ?? []).map((p) => p.policyName!).filter(Boolean));
      marker = page.nextMarker;
    } while (marker);
    for (const policyName of policies) {
      await this.call('iot:DetachPolicy', () => this.iot.send(new DetachPolicyCommand({ policyName, target: certificateArn })));
    }
    await this.deactivateCertificate(certificateId);
    await this.call('iot:DeleteCertificate', () => this.iot.send(new DeleteCertificateCommand({ certificateId })));
  }

  async describeEndpoints() {
    const endpoint = async (endpointType: string) => {
      const out = await this.call('iot:DescribeEndpoint', () => this.iot.send(new DescribeEndpointCommand({ endpointType })));
      if (!out.endpointAddress) throw new UserError(`iot:DescribeEndpoint returned no address for ${endpointType}`);
      return out.endpointAddress;
    };
    return { data: await endpoint('iot:Data-ATS'), credentials: await endpoint('iot:CredentialProvider'), port: 8883 };
  }

  rootCaPem(): Promise<string> {
    return readFile(amazonRootCaPath(1), 'utf8');
  }

  async listThingsInGroup(thingGroupName: string): Promise<string[]> {
    const things: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const page = await this.iot.send(new ListThingsInThingGroupCommand({ thingGroupName, nextToken }));
        things.push(...(page.things ?? []));
        nextToken = page.nextToken;
      } while (nextToken);
    } catch (error) {
      if (isNotFound(error)) return [];
      throw toUserError('iot:ListThingsInThingGroup', error);
    }
    return things;
  }

  dynamoDb() {
    return this.clients.dynamodb;
  }

  async close(): Promise<void> {
    for (const client of Object.values(this.clients)) client.destroy();
  }
}

function namesFromOutputs(stack: Stack | undefined, stackName: string): ResourceNames {
  const outputs = Object.fromEntries((stack?.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
  const need = (key: string): string => {
    const value = outputs[key];
    if (!value) throw new UserError(`stack ${stackName} has no output ${key}: was it created by fp-yocto?`);
    return value;
  };
  return {
    templateName: need('ProvisioningTemplateName'),
    thingGroupName: need('ThingGroupName'),
    claimPolicy: need('ClaimPolicyName'),
    devicePolicy: need('DevicePolicyName'),
    roleAlias: need('RoleAlias'),
    // Stacks deployed before rotate-claim scheduled deactivation have neither.
    ...(outputs.ClaimRetirementScheduleGroup ? { claimRetirementScheduleGroup: outputs.ClaimRetirementScheduleGroup } : {}),
    ...(outputs.ClaimRetirementRoleArn ? { claimRetirementRoleArn: outputs.ClaimRetirementRoleArn } : {}),
    // Stacks deployed before the device table have none.
    ...(outputs.DeviceTableName ? { deviceTable: outputs.DeviceTableName } : {}),
  };
}
