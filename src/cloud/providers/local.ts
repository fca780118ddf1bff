// The local provider: applies the same stack object to the emulator through its control plane.
// The emulator has IoT only, so the stack's IoT resources (thing group, policies, provisioning
// template with its hook) are created there; IAM roles and the Lambda have no local counterpart,
// and the hook runs inside the emulator from the same shared source.
import { BatchGetItemCommand, BatchWriteItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { ControlPlane, DynamoDbOperation, ProvisioningTemplateInput } from '../../emulator/control-plane.ts';
import type { DynamoDbSender } from '../devices/device-store.ts';
import { resolve, resolveString, type ResolveContext } from '../intrinsics.ts';
import type { ResourceNames } from '../project.ts';
import type { CertificateRef, CloudProvider, DeployInput, DeployResult, DestroyOptions, Ui } from '../provider.ts';
import type { CfnTemplate } from '../stack.ts';

export interface LocalTarget {
  control: ControlPlane;
  region: string;
  accountId: string;
  /** Stops what connecting started (never the emulator itself). */
  close?: () => Promise<void>;
}

/** Which property holds each resource type's physical name, and its ARN shape. */
const PHYSICAL: Record<string, { name: string; arn?: (n: string, region: string, account: string) => string }> = {
  'AWS::IoT::Policy': { name: 'PolicyName' },
  'AWS::IoT::ThingGroup': { name: 'ThingGroupName' },
  'AWS::IoT::ProvisioningTemplate': { name: 'TemplateName' },
  'AWS::IoT::RoleAlias': { name: 'RoleAlias', arn: (n, r, a) => `arn:aws:iot:${r}:${a}:rolealias/${n}` },
  'AWS::IAM::Role': { name: 'RoleName', arn: (n, _r, a) => `arn:aws:iam::${a}:role/${n}` },
  'AWS::Lambda::Function': { name: 'FunctionName', arn: (n, r, a) => `arn:aws:lambda:${r}:${a}:function:${n}` },
  'AWS::Scheduler::ScheduleGroup': { name: 'Name', arn: (n, r, a) => `arn:aws:scheduler:${r}:${a}:schedule-group/${n}` },
  'AWS::DynamoDB::Table': { name: 'TableName', arn: (n, r, a) => `arn:aws:dynamodb:${r}:${a}:table/${n}` },
};

/** The SDK commands the device store sends, and the emulator's operation for each. */
const DYNAMODB_COMMANDS: [new (input: never) => object, DynamoDbOperation][] = [
  [BatchGetItemCommand, 'BatchGetItem'],
  [BatchWriteItemCommand, 'BatchWriteItem'],
  [UpdateItemCommand, 'UpdateItem'],
  [ScanCommand, 'Scan'],
];

const ATTRIBUTE_NAMES: Record<string, string> = { 'AWS::IoT::RoleAlias': 'RoleAliasArn' };

/** Evaluation context for the stack: pseudo parameters, parameters, and every resource's name and ARN. */
export function stackContext(template: CfnTemplate, input: DeployInput['parameters'], stackName: string, region: string, accountId: string): ResolveContext {
  const values: Record<string, string> = {
    'AWS::StackName': stackName,
    'AWS::Region': region,
    'AWS::AccountId': accountId,
    'AWS::Partition': 'aws',
    'AWS::URLSuffix': 'amazonaws.com',
  };
  for (const [name, p] of Object.entries(template.Parameters)) values[name] = input[name] ?? p.Default;
  const ctx: ResolveContext = { values, refs: {}, attributes: {} };
  // Names depend only on parameters and pseudo parameters, so one pass gives them all.
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    const physical = PHYSICAL[resource.Type];
    if (!physical) continue;
    const name = resolveString(resource.Properties[physical.name], ctx);
    ctx.refs[logicalId] = name;
    if (physical.arn) ctx.attributes[`${logicalId}.${ATTRIBUTE_NAMES[resource.Type] ?? 'Arn'}`] = physical.arn(name, region, accountId);
  }
  return ctx;
}

const isNotFound = (error: unknown): boolean => (error as { name?: string }).name === 'ResourceNotFoundException';

const canonicalJson = (text: string): string => JSON.stringify(JSON.parse(text));

export class LocalProvider implements CloudProvider {
  readonly kind = 'local' as const;
  readonly region: string;

  constructor(private readonly target: LocalTarget) {
    this.region = target.region;
  }

  private get control(): ControlPlane {
    return this.target.control;
  }

  async deploy(input: DeployInput, ui: Ui): Promise<DeployResult> {
    const { template, stackName } = input;
    const ctx = stackContext(template, input.parameters, stackName, this.target.region, this.target.accountId);
    const changes: string[] = [];
    const byType = (type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
    const note = (sign: '+' | '~', logicalId: string, type: string) => {
      const line = `${sign} ${logicalId} (${type})`;
      changes.push(line);
      ui.info(line);
    };

    for (const [logicalId, r] of byType('AWS::IoT::ThingGroup')) {
      const name = ctx.refs[logicalId]!;
      const exists = await this.control.listThingsInThingGroup(name).then(
        () => true,
        (error) => (isNotFound(error) ? false : Promise.reject(error)),
      );
      if (!exists) {
        await this.control.createThingGroup(name);
        note('+', logicalId, r.Type);
      }
    }

    // The device table: its key schema is all the emulator's DynamoDB needs (no capacity, no keys).
    for (const [logicalId, r] of byType('AWS::DynamoDB::Table')) {
      const name = ctx.refs[logicalId]!;
      const exists = await this.control.dynamoDb('DescribeTable', { TableName: name }).then(
        () => true,
        (error) => (isNotFound(error) ? false : Promise.reject(error)),
      );
      if (!exists) {
        await this.control.dynamoDb('CreateTable', {
          TableName: name,
          KeySchema: resolve(r.Properties.KeySchema, ctx),
          AttributeDefinitions: resolve(r.Properties.AttributeDefinitions, ctx),
        });
        note('+', logicalId, r.Type);
      }
    }

    for (const [logicalId, r] of byType('AWS::IoT::Policy')) {
      const name = ctx.refs[logicalId]!;
      const document = JSON.stringify(resolve(r.Properties.PolicyDocument, ctx));
      const current = await this.control.getPolicy(name);
      if (!current) {
        await this.control.createPolicy(name, document);
        note('+', logicalId, r.Type);
      } else if (canonicalJson(current.policyDocument) !== document) {
        await this.control.updatePolicy(name, document);
        note('~', logicalId, r.Type);
      }
    }

    for (const [logicalId, r] of byType('AWS::IoT::ProvisioningTemplate')) {
      const wanted = this.templateInput(template, r.Properties, ctx);
      const current = await this.control.describeProvisioningTemplate(wanted.templateName);
      if (!current) {
        await this.control.createProvisioningTemplate(wanted);
        note('+', logicalId, r.Type);
      } else if (!sameTemplate(current, wanted)) {
        await this.control.updateProvisioningTemplate(wanted);
        note('~', logicalId, r.Type);
      }
    }
    return { changes, names: namesFrom(template, ctx) };
  }

  /** The template as the emulator takes it; the hook's source and environment come from the Lambda. */
  private templateInput(template: CfnTemplate, props: Record<string, unknown>, ctx: ResolveContext): ProvisioningTemplateInput {
    const input: ProvisioningTemplateInput = {
      templateName: resolveString(props.TemplateName, ctx),
      templateBody: resolveString(props.TemplateBody, ctx),
      enabled: props.Enabled !== false,
      provisioningRoleArn: resolveString(props.ProvisioningRoleArn, ctx),
    };
    const hook = props.PreProvisioningHook as { TargetArn?: { 'Fn::GetAtt'?: [string, string] } } | undefined;
    const lambdaId = hook?.TargetArn?.['Fn::GetAtt']?.[0];
    if (lambdaId) {
      const lambda = template.Resources[lambdaId]?.Properties as
        | { Code?: { ZipFile?: string }; Environment?: { Variables?: Record<string, unknown> } }
        | undefined;
      input.preProvisioningHook = {
        source: lambda?.Code?.ZipFile,
        env: resolve(lambda?.Environment?.Variables ?? {}, ctx) as Record<string, string>,
      };
    }
    return input;
  }

  async createCertificateFromCsr(csrPem: string) {
    return this.control.createCertificateFromCsr(csrPem, true);
  }

  async attachPolicy(policyName: string, certificate: { certificateId: string }): Promise<void> {
    await this.control.attachPolicy(policyName, certificate.certificateId);
  }

  async describeCertificate(certificateId: string) {
    const d = await this.control.describeCertificate(certificateId);
    return d && { status: d.status, notAfter: d.notAfter };
  }

  async deactivateCertificate(certificateId: string): Promise<void> {
    await this.control.updateCertificate(certificateId, 'INACTIVE');
  }

  /**
   * The emulator has no scheduler: a retired claim certificate is deactivated by the next
   * `status` or `rotate-claim` after its grace period (lifecycle.ts deactivateOverdue).
   */
  async scheduleDeactivation(): Promise<undefined> {
    return undefined;
  }

  async deleteThing(thingName: string, ui: Ui): Promise<void> {
    const principals = await this.control.listThingPrincipals(thingName);
    for (const principal of principals) {
      await this.control.detachThingPrincipal(thingName, principal);
      await this.deleteCertificate({ certificateId: principal });
    }
    await this.control.deleteThing(thingName);
    ui.info(`- thing ${thingName} and ${principals.length} certificate(s)`);
  }

  async deleteCertificate(certificate: Pick<CertificateRef, 'certificateId'>): Promise<void> {
    const { certificateId } = certificate;
    if (!(await this.control.describeCertificate(certificateId))) return;
    for (const policy of await this.control.listAttachedPolicies(certificateId)) {
      await this.control.detachPolicy(policy, certificateId);
    }
    await this.control.updateCertificate(certificateId, 'INACTIVE');
    await this.control.deleteCertificate(certificateId);
  }

  async describeEndpoints() {
    const data = await this.control.describeEndpoint('iot:Data-ATS');
    const credentials = await this.control.describeEndpoint('iot:CredentialProvider');
    return { data: data.endpointAddress, credentials: credentials.endpointAddress, port: data.port };
  }

  async rootCaPem(): Promise<string> {
    return (await this.control.getRootCa()).pem;
  }

  /** There is no stack locally: it counts as complete while its provisioning template exists. */
  async describeStack(_stackName: string, names?: ResourceNames) {
    if (!names || !(await this.control.describeProvisioningTemplate(names.templateName))) return undefined;
    return { status: 'CREATE_COMPLETE', reason: 'applied to the local emulator' };
  }

  /** The device store's commands, sent as the same DynamoDB operations through the control plane. */
  dynamoDb(): DynamoDbSender {
    return {
      send: (command) => {
        const operation = DYNAMODB_COMMANDS.find(([type]) => command instanceof type)?.[1];
        if (!operation) throw new Error(`the emulator has no DynamoDB operation for ${command.constructor.name}`);
        return this.control.dynamoDb(operation, command.input as unknown as Record<string, unknown>);
      },
    };
  }

  async listThingsInGroup(thingGroupName: string): Promise<string[]> {
    try {
      return await this.control.listThingsInThingGroup(thingGroupName);
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
  }

  /** Deletes exactly the recorded names; a resource already gone is fine. Returns what is left. */
  async destroyStack(_stackName: string, names: ResourceNames, options: DestroyOptions, ui: Ui): Promise<string[]> {
    const ignoreMissing = (error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error));
    await this.control.deleteProvisioningTemplate(names.templateName).catch(ignoreMissing);
    ui.info(`- provisioning template ${names.templateName}`);
    const left: string[] = [];
    for (const policy of [names.claimPolicy, names.devicePolicy]) {
      // As on AWS, where the stack retains the device policy: --keep-fleet leaves it to the devices.
      if (policy === names.devicePolicy && options.keepDevicePolicy) {
        left.push(`policy ${policy}: kept for the provisioned devices (their certificates hold it)`);
        continue;
      }
      try {
        await this.control.deletePolicy(policy);
      } catch (error) {
        if (isNotFound(error)) continue;
        if ((error as { name?: string }).name === 'DeleteConflictException') {
          left.push(`policy ${policy}: still attached to certificates fp-yocto did not create (${(error as Error).message})`);
          continue;
        }
        throw error;
      }
      ui.info(`- policy ${policy}`);
    }
    await this.control.deleteThingGroup(names.thingGroupName).catch(ignoreMissing);
    ui.info(`- thing group ${names.thingGroupName}`);
    if (names.deviceTable) {
      await this.control.dynamoDb('DeleteTable', { TableName: names.deviceTable }).catch(ignoreMissing);
      ui.info(`- device table ${names.deviceTable}`);
    }
    return left;
  }

  async close(): Promise<void> {
    await this.target.close?.();
  }
}

function sameTemplate(a: ProvisioningTemplateInput, b: ProvisioningTemplateInput): boolean {
  return (
    canonicalJson(a.templateBody) === canonicalJson(b.templateBody) &&
    a.enabled === b.enabled &&
    a.provisioningRoleArn === b.provisioningRoleArn &&
    (a.preProvisioningHook?.source ?? '') === (b.preProvisioningHook?.source ?? '') &&
    JSON.stringify(a.preProvisioningHook?.env ?? {}) === JSON.stringify(b.preProvisioningHook?.env ?? {})
  );
}

/** The names the stack's outputs would give. */
function namesFrom(template: CfnTemplate, ctx: ResolveContext): ResourceNames {
  const out = (key: string) => resolveString(template.Outputs[key]!.Value, ctx);
  return {
    templateName: out('ProvisioningTemplateName'),
    thingGroupName: out('ThingGroupName'),
    claimPolicy: out('ClaimPolicyName'),
    devicePolicy: out('DevicePolicyName'),
    roleAlias: out('RoleAlias'),
    ...(template.Outputs.DeviceTableName ? { deviceTable: out('DeviceTableName') } : {}),
  };
}
