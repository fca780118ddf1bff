// The AWS provider: CloudFormation change sets for the stack, AWS IoT for the claim certificate.
// Credentials come from the SDK's default chain (env, SSO, profiles, IMDS); the region is
// resolved the way the AWS CLI does it, including AWS_DEFAULT_REGION, which the SDK ignores.
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
  ListThingsInThingGroupCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { UserError } from '../../shared/errors.ts';
import { amazonRootCaPath } from '../../shared/package-root.ts';
import type { ResourceNames } from '../project.ts';
import type { CloudProvider, DeployInput, DeployResult, StackInfo, Ui } from '../provider.ts';

export interface AwsOptions {
  region?: string;
  profile?: string;
  /** Delay between polls of change sets and stack events; tests set 0. */
  pollMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Where the region came from, in the AWS CLI's order; the profile's region is left to the SDK. */
export function regionFromFlagsOrEnv(options: AwsOptions): string | undefined {
  const env = options.env ?? process.env;
  return options.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
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
  const iot = new IoTClient({ ...config, region });
  return new AwsProvider(cfn, iot, region, options.pollMs ?? 3_000);
}

// CloudFormation reports an empty change set as FAILED with one of these reasons.
const NO_CHANGES = /didn't contain changes|No updates are to be performed/i;
const CREDENTIALS = /CredentialsProviderError|Could not load credentials/i;
const ACCESS_DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'UnauthorizedException']);
const THROTTLED = new Set(['Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded']);
const BAD_TOKEN = new Set(['ExpiredToken', 'ExpiredTokenException', 'InvalidClientTokenId', 'UnrecognizedClientException']);

const firstLine = (text: string): string => text.split('\n')[0]!.trim();

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

const isMissingStack = (error: unknown): boolean =>
  (error as { name?: string }).name === 'ValidationError' && /does not exist/.test((error as Error).message ?? '');

const TERMINAL_OK = new Set(['CREATE_COMPLETE', 'UPDATE_COMPLETE', 'IMPORT_COMPLETE']);
const UPDATABLE = new Set([...TERMINAL_OK, 'UPDATE_ROLLBACK_COMPLETE', 'IMPORT_ROLLBACK_COMPLETE']);

/** One line of the change-set diff. */
export function describeChange(change: Change): string {
  const rc = change.ResourceChange ?? {};
  const sign = rc.Action === 'Add' ? '+' : rc.Action === 'Remove' ? '-' : '~';
  const replace = rc.Replacement === 'True' ? ' (replaced)' : rc.Replacement === 'Conditional' ? ' (may be replaced)' : '';
  const what = rc.Details?.map((d) => d.Target?.Name).filter(Boolean) ?? [];
  const detail = rc.Action === 'Modify' && what.length ? `: ${[...new Set(what)].join(', ')}` : '';
  return `${sign} ${rc.LogicalResourceId} (${rc.ResourceType})${replace}${detail}`;
}

export class AwsProvider implements CloudProvider {
  readonly kind = 'aws' as const;

  constructor(
    private readonly cfn: CloudFormationClient,
    private readonly iot: IoTClient,
    readonly region: string,
    private readonly pollMs: number,
  ) {}

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
    } else if (stack && !UPDATABLE.has(stack.StackStatus ?? '')) {
      const busy = stack.StackStatus?.endsWith('_IN_PROGRESS');
      throw new UserError(
        busy
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

    const changes = await this.waitForChangeSet(stackName, changeSetName);
    if (changes === undefined) {
      await this.call('cloudformation:DeleteChangeSet', () =>
        this.cfn.send(new DeleteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })),
      );
      return { changes: [], names: namesFromOutputs(stack, stackName) };
    }
    for (const line of changes) ui.info(line);
    if (stack && !(await ui.confirm(`Apply these ${changes.length} change(s) to stack ${stackName}?`))) {
      await this.cfn.send(new DeleteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })).catch(() => undefined);
      throw new UserError('cancelled: the stack was not changed');
    }

    const since = new Date();
    await this.call('cloudformation:ExecuteChangeSet', () =>
      this.cfn.send(new ExecuteChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })),
    );
    const { stack: done, failure } = await this.followStack(stackName, since, ui);
    if (!TERMINAL_OK.has(done.StackStatus ?? '')) {
      const why = failure ?? done.StackStatusReason;
      throw new UserError(`stack ${stackName} ended in ${done.StackStatus}${why ? `: ${why}` : ''}`);
    }
    return { changes, names: namesFromOutputs(done, stackName) };
  }

  /** The diff, or undefined when the change set is empty. */
  private async waitForChangeSet(stackName: string, changeSetName: string): Promise<string[] | undefined> {
    for (;;) {
      const out = await this.call('cloudformation:DescribeChangeSet', () =>
        this.cfn.send(new DescribeChangeSetCommand({ StackName: stackName, ChangeSetName: changeSetName })),
      );
      if (out.Status === 'FAILED') {
        if (NO_CHANGES.test(out.StatusReason ?? '')) return undefined;
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
        return changes.map(describeChange);
      }
      await delay(this.pollMs);
    }
  }

  /**
   * Prints new stack events until the stack leaves *_IN_PROGRESS. Returns the final stack and the
   * first resource failure, which says why far better than the stack's own status reason.
   */
  private async followStack(stackName: string, since: Date, ui: Ui): Promise<{ stack: Stack; failure?: string }> {
    const seen = new Set<string>();
    let failure: string | undefined;
    for (;;) {
      const events = await this.call('cloudformation:DescribeStackEvents', () =>
        this.cfn.send(new DescribeStackEventsCommand({ StackName: stackName })),
      );
      // Newest first; print oldest first and only what happened since we started.
      for (const event of [...(events.StackEvents ?? [])].reverse()) {
        if (!event.EventId || seen.has(event.EventId)) continue;
        seen.add(event.EventId);
        if (event.Timestamp && event.Timestamp < since) continue;
        const reason = event.ResourceStatusReason ? ` ${event.ResourceStatusReason}` : '';
        const line = `${event.LogicalResourceId} ${event.ResourceStatus}${reason}`;
        if (event.ResourceStatus?.endsWith('_FAILED')) {
          failure ??= line;
          ui.warn(line);
        } else ui.info(line);
      }
      const stack = await this.getStack(stackName);
      if (!stack) return { stack: { StackName: stackName, StackStatus: 'DELETE_COMPLETE', CreationTime: since }, failure };
      if (!stack.StackStatus?.endsWith('_IN_PROGRESS')) return { stack, failure };
      await delay(this.pollMs);
    }
  }

  private async deleteStackAndWait(stackName: string, ui: Ui): Promise<void> {
    const since = new Date();
    await this.call('cloudformation:DeleteStack', () => this.cfn.send(new DeleteStackCommand({ StackName: stackName })));
    const { stack: done, failure } = await this.followStack(stackName, since, ui);
    if (done.StackStatus !== 'DELETE_COMPLETE') {
      const why = failure ?? done.StackStatusReason;
      throw new UserError(`stack ${stackName} could not be deleted (${done.StackStatus}${why ? `: ${why}` : ''})`);
    }
  }

  async destroyStack(stackName: string, _names: ResourceNames, ui: Ui): Promise<void> {
    if (!(await this.getStack(stackName))) {
      ui.info(`stack ${stackName} does not exist`);
      return;
    }
    await this.deleteStackAndWait(stackName, ui);
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

  async attachPolicy(policyName: string, certificate: { certificateId: string; certificateArn: string }): Promise<void> {
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
      if ((error as { name?: string }).name === 'ResourceNotFoundException') return undefined;
      throw toUserError('iot:DescribeCertificate', error);
    }
  }

  async deactivateCertificate(certificateId: string): Promise<void> {
    await this.call('iot:UpdateCertificate', () =>
      this.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' })),
    );
  }

  async deleteCertificate(certificate: { certificateId: string; certificateArn: string }): Promise<void> {
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
    do {
      const page = await this.call('iot:ListThingsInThingGroup', () =>
        this.iot.send(new ListThingsInThingGroupCommand({ thingGroupName, nextToken })),
      );
      things.push(...(page.things ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    return things;
  }

  async close(): Promise<void> {
    this.cfn.destroy();
    this.iot.destroy();
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
  };
}
