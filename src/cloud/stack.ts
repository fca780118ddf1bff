// The CloudFormation stack, built as a plain object from typed options. init deploys this object,
// cloudformation/fleet-provisioning.yaml is this object written out, and the local provider
// applies its IoT pieces to the emulator, so the three cannot drift apart.
//
// Every physical name is derived from the stack name (IAM names, being global, also from the
// region) so two stacks, or one stack in two regions, never collide. Each group of resources is
// one small function below; buildStack only puts them together.
import type { DeviceIdSource } from '../shared/config.ts';
import { DEVICE_ID_KIND_OF_SOURCE, DEVICE_ID_KINDS } from '../shared/device-id.ts';
import { DEVICE_ITEM, HOOK_ENV, DEVICE_ID_PARAMETER, PRE_PROVISIONING_HOOK_SOURCE } from '../shared/pre-provisioning-hook.ts';
import { TOPICS, accepted, rejected } from '../shared/protocol.ts';
import { ENDPOINTS_RESOURCE_SOURCE } from './endpoints-resource.ts';
import { provisioningTemplateJson } from './provisioning-template.ts';

/**
 * The Lambda runtime of both functions. "Building Lambda functions with Node.js" (AWS Lambda
 * Developer Guide) lists nodejs24.x with deprecation on Apr 30, 2028 and nodejs22.x on Apr 30,
 * 2027. Node.js 24 drops callback-style handlers; both of ours are async.
 */
export const LAMBDA_RUNTIME = 'nodejs24.x';

export interface StackOptions {
  /** Structural: Greengrass lite topics and data-plane actions in the device policy. */
  greengrass: boolean;
  /** Structural: S3 buckets holding component artifacts the devices may read (s3:GetObject). */
  artifactBuckets?: string[];
  /** Explicit names; by default each is `<stack name>-<role>`. */
  templateName?: string;
  thingGroupName?: string;
  /** Defaults of the stack parameters (STACK_PARAMETERS). */
  thingNamePrefix: string;
  clientIdPrefix: string;
  /** Only ids on the allow-list (the device table) may provision. */
  requireAllowList: boolean;
  /** One identity per device id: a second provisioning of an id needs `fp-yocto devices reset`. */
  oneIdentity: boolean;
  /** Where the devices read their id (the agent's deviceId.source); decides the hook's id kind. */
  deviceIdSource: DeviceIdSource;
  /**
   * Structural: per-device attributes (columns of `devices import`) the template declares as
   * parameters and writes into the thing's attributes. At most two: a thing without a thing
   * type has three attributes, and deviceId is one.
   */
  thingAttributes?: string[];
}

const ON_OFF = ['on', 'off'];

/** The stack's parameters, so people who deploy the YAML by hand can set them too. */
export const STACK_PARAMETERS = {
  ThingNamePrefix: { description: 'Prepended to the device id to make the thing name; written into the provisioning template, never chosen by a device.' },
  ClientIdPrefix: { description: 'Claim connections must use a client id starting with this (the agent adds the device id).' },
  AllowList: { description: 'on: only device ids in the device table (fp-yocto devices allow|import) may provision.', allowed: ON_OFF },
  OneIdentity: { description: 'on: a device id provisions once; again only after fp-yocto devices reset ID.', allowed: ON_OFF },
  DeviceIdKind: { description: 'What a device id is: mac (MAC address), machine-id, or serial (device tree, DMI, a file).', allowed: [...DEVICE_ID_KINDS] },
} as const satisfies Record<string, { description: string; allowed?: readonly string[] }>;
export type StackParameter = keyof typeof STACK_PARAMETERS;

const onOff = (value: boolean) => (value ? 'on' : 'off');

export function stackParameterValues(options: StackOptions): Record<StackParameter, string> {
  return {
    ThingNamePrefix: options.thingNamePrefix,
    ClientIdPrefix: options.clientIdPrefix,
    AllowList: onOff(options.requireAllowList),
    OneIdentity: onOff(options.oneIdentity),
    DeviceIdKind: DEVICE_ID_KIND_OF_SOURCE[options.deviceIdSource],
  };
}

type Json = unknown;
const sub = (text: string): Json => ({ 'Fn::Sub': text });
const ref = (name: string): Json => ({ Ref: name });
const getAtt = (resource: string, attribute: string): Json => ({ 'Fn::GetAtt': [resource, attribute] });
const ARN_PREFIX = 'arn:${AWS::Partition}';
const iotArn = (rest: string): string => `${ARN_PREFIX}:iot:\${AWS::Region}:\${AWS::AccountId}:${rest}`;
const logsArn = (rest: string): string => `${ARN_PREFIX}:logs:\${AWS::Region}:\${AWS::AccountId}:${rest}`;
/** Fn::Sub needs `${!x}` to keep a literal `${x}` (an IoT or IAM policy variable). */
const THING = '${!iot:Connection.Thing.ThingName}';
/** The fleet's things: every thing name is the prefix plus a device id. */
const FLEET_THING = '${ThingNamePrefix}*';

/** Physical names, as Fn::Sub templates over the stack's pseudo parameters. */
export function resourceNames(options: Pick<StackOptions, 'templateName' | 'thingGroupName'>) {
  return {
    templateName: options.templateName ?? '${AWS::StackName}-provisioning',
    thingGroupName: options.thingGroupName ?? '${AWS::StackName}-devices',
    claimPolicy: '${AWS::StackName}-claim',
    devicePolicy: '${AWS::StackName}-device',
    roleAlias: '${AWS::StackName}-token-exchange',
    tokenExchangeRole: '${AWS::StackName}-${AWS::Region}-token-exchange',
    provisioningRole: '${AWS::StackName}-${AWS::Region}-provisioning',
    hookRole: '${AWS::StackName}-${AWS::Region}-hook',
    hookFunction: '${AWS::StackName}-pre-provisioning-hook',
    deviceTable: '${AWS::StackName}-devices',
    endpointsRole: '${AWS::StackName}-${AWS::Region}-endpoints',
    endpointsFunction: '${AWS::StackName}-iot-endpoints',
    scheduleGroup: '${AWS::StackName}-claims',
    claimRetirementRole: '${AWS::StackName}-${AWS::Region}-claim-retirement',
  };
}
type Names = ReturnType<typeof resourceNames>;

/** The log groups Lambda creates for the stack's functions (/aws/lambda/<function name>). */
export function lambdaLogGroups(stackName: string): string[] {
  const names = resourceNames({});
  return [names.hookFunction, names.endpointsFunction].map((n) => `/aws/lambda/${n.replace('${AWS::StackName}', stackName)}`);
}

const policyDocument = (statements: Json[]): Json => ({ Version: '2012-10-17', Statement: statements });
const allow = (action: string | string[], resource: Json): Json => ({ Effect: 'Allow', Action: action, Resource: resource });

/**
 * Exactly the topics the claim connection uses, per action (the agent makes its key and CSR on
 * the device): it publishes the two requests and subscribes to and receives their replies.
 * Reply topics are never publishable and request topics never receivable.
 */
function claimPolicy(templateName: string): Json {
  const requests = [TOPICS.createFromCsr, TOPICS.registerThing(templateName)];
  const replies = requests.flatMap((t) => [accepted(t), rejected(t)]);
  return policyDocument([
    allow('iot:Connect', sub(iotArn('client/${ClientIdPrefix}*'))),
    allow('iot:Publish', requests.map((t) => sub(iotArn(`topic/${t}`)))),
    allow('iot:Subscribe', replies.map((t) => sub(iotArn(`topicfilter/${t}`)))),
    allow('iot:Receive', replies.map((t) => sub(iotArn(`topic/${t}`)))),
  ]);
}

/**
 * Greengrass core device actions. AWS IoT Greengrass V2 "Device authentication and
 * authorization": thing policy variables (iot:Connection.Thing.*) are not supported in policies
 * for core devices or for Greengrass data-plane operations, and its "Minimal AWS IoT policy for
 * AWS IoT Greengrass V2 core devices" grants these four on "*" (public components live under
 * account `aws`, so an account-scoped ARN never matches them).
 */
export const GREENGRASS_DATA_PLANE_ACTIONS = [
  'greengrass:GetComponentVersionArtifact',
  'greengrass:ResolveComponentCandidates',
  'greengrass:GetDeploymentConfiguration',
  'greengrass:ListThingGroupsForCoreDevice',
];

/** What a provisioned device may do: its own topics, the role alias, and Greengrass's needs. */
function devicePolicy(greengrass: boolean, roleAlias: string): Json {
  const assumeRole = allow('iot:AssumeRoleWithCertificate', sub(iotArn(`rolealias/${roleAlias}`)));
  if (!greengrass) {
    // A plain MQTT device: everything under its own thing name (thing policy variables work over MQTT).
    return policyDocument([
      allow('iot:Connect', sub(iotArn(`client/${THING}`))),
      allow(['iot:Publish', 'iot:Receive'], sub(iotArn(`topic/$aws/things/${THING}/*`))),
      allow('iot:Subscribe', sub(iotArn(`topicfilter/$aws/things/${THING}/*`))),
      assumeRole,
    ]);
  }
  // AWS's minimal Greengrass core device policy, with the fleet's thing-name prefix where AWS
  // writes `core-device-thing-name*` (the wildcard also covers client ids with a suffix).
  const things = `$aws/things/${FLEET_THING}`;
  return policyDocument([
    allow('iot:Connect', sub(iotArn(`client/${FLEET_THING}`))),
    allow(
      ['iot:Publish', 'iot:Receive'],
      [`${things}/greengrass/health/json`, `${things}/greengrassv2/health/json`, `${things}/jobs/*`, `${things}/shadow/*`].map((t) =>
        sub(iotArn(`topic/${t}`)),
      ),
    ),
    allow('iot:Subscribe', [`${things}/jobs/*`, `${things}/shadow/*`].map((t) => sub(iotArn(`topicfilter/${t}`)))),
    allow(['iot:GetThingShadow', 'iot:UpdateThingShadow', 'iot:DeleteThingShadow'], sub(iotArn(`thing/${FLEET_THING}`))),
    assumeRole,
    allow(GREENGRASS_DATA_PLANE_ACTIONS, '*'),
  ]);
}

/**
 * A service's trust policy. `aws:SourceAccount` (and `aws:SourceArn` where the service documents
 * what it sends) keep another account's use of the service from assuming our role ("Cross-service
 * confused deputy prevention", AWS IoT Core Developer Guide; the same keys in the Lambda and
 * EventBridge Scheduler guides).
 */
const assumedBy = (service: string, sourceArn?: string): Json =>
  policyDocument([
    {
      Effect: 'Allow',
      Principal: { Service: service },
      Action: 'sts:AssumeRole',
      Condition: {
        StringEquals: { 'aws:SourceAccount': ref('AWS::AccountId') },
        ...(sourceArn ? { ArnLike: { 'aws:SourceArn': sub(sourceArn) } } : {}),
      },
    },
  ]);

/**
 * The credentials provider's trust policy exactly as "Authorizing direct calls to AWS services"
 * (AWS IoT Core Developer Guide) gives it: AWS documents no source condition keys for
 * credentials.iot.amazonaws.com, and a condition it does not send would refuse every device.
 * Devices reach this role only through the role alias their certificate's policy names.
 */
const assumedByCredentialsProvider = (): Json =>
  policyDocument([{ Effect: 'Allow', Principal: { Service: 'credentials.iot.amazonaws.com' }, Action: 'sts:AssumeRole' }]);

/**
 * Actions that IAM (or AWS's own guidance) only allows on "*". They are listed here so a test can
 * check that nothing else ever gets "*".
 */
export const RESOURCE_STAR_ACTIONS = ['iot:DescribeEndpoint', ...GREENGRASS_DATA_PLANE_ACTIONS];

type Resource = {
  Type: string;
  DependsOn?: string[];
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
  Properties: Record<string, Json>;
};

export type CfnTemplate = {
  AWSTemplateFormatVersion: string;
  Description: string;
  Parameters: Record<string, { Type: string; Default: string; Description: string; AllowedValues?: string[] }>;
  Resources: Record<string, Resource>;
  Outputs: Record<string, { Description: string; Value: Json }>;
};

/**
 * The token exchange role ("Authorize core devices to interact with AWS services", Greengrass V2):
 * CloudWatch logs for the log manager (/aws/greengrass/...) and the system log forwarder
 * (greengrass/systemLogs, one stream per thing, as "System log forwarder" requires), and
 * s3:GetObject only on the artifact buckets the operator names (AWS's default role has none).
 */
function tokenExchange(names: Names, artifactBuckets: string[]): Record<string, Resource> {
  const systemLogs = 'log-group:greengrass/systemLogs';
  const statements = [
    allow(
      ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      sub(logsArn('log-group:/aws/greengrass/*')),
    ),
    allow('logs:CreateLogGroup', sub(logsArn(`${systemLogs}:*`))),
    allow(['logs:CreateLogStream', 'logs:PutLogEvents'], sub(logsArn(`${systemLogs}:log-stream:\${!credentials-iot:ThingName}`))),
    allow('s3:GetBucketLocation', sub(`${ARN_PREFIX}:s3:::*`)),
  ];
  if (artifactBuckets.length) statements.push(allow('s3:GetObject', artifactBuckets.map((b) => sub(`${ARN_PREFIX}:s3:::${b}/*`))));
  return {
    TokenExchangeRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        RoleName: sub(names.tokenExchangeRole),
        AssumeRolePolicyDocument: assumedByCredentialsProvider(),
        Policies: [{ PolicyName: 'greengrass-token-exchange', PolicyDocument: policyDocument(statements) }],
      },
    },
    TokenExchangeRoleAlias: {
      Type: 'AWS::IoT::RoleAlias',
      Properties: {
        RoleAlias: sub(names.roleAlias),
        RoleArn: getAtt('TokenExchangeRole', 'Arn'),
        CredentialDurationSeconds: 3600,
      },
    },
  };
}

function iotPolicies(names: Names, greengrass: boolean): Record<string, Resource> {
  return {
    ThingGroup: {
      Type: 'AWS::IoT::ThingGroup',
      Properties: { ThingGroupName: sub(names.thingGroupName) },
    },
    ClaimPolicy: {
      Type: 'AWS::IoT::Policy',
      Properties: { PolicyName: sub(names.claimPolicy), PolicyDocument: claimPolicy(names.templateName) },
    },
    DevicePolicy: {
      Type: 'AWS::IoT::Policy',
      // Every device certificate holds this policy, and CloudFormation's delete handler does not
      // detach it, so DeletePolicy would fail the stack's deletion. The stack keeps it; `destroy`
      // deletes it after the fleet (--delete-fleet) or leaves it to the devices (--keep-fleet).
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: { PolicyName: sub(names.devicePolicy), PolicyDocument: devicePolicy(greengrass, names.roleAlias) },
    },
  };
}

function lambdaRole(roleName: string, extra: Record<string, Json> = {}): Resource {
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      RoleName: sub(roleName),
      AssumeRolePolicyDocument: assumedBy('lambda.amazonaws.com'),
      ManagedPolicyArns: [sub(`${ARN_PREFIX}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole`)],
      ...extra,
    },
  };
}

/**
 * The device table: one item per canonical device id (the allow-list entry, its per-device
 * attributes, and the certificate the hook approved for it). On-demand capacity: a fleet
 * provisions in bursts and idles for months ("Read/write capacity mode", DynamoDB Developer
 * Guide); encrypted with the AWS managed key, so its use shows in CloudTrail ("Encryption at rest"),
 * and point-in-time recovery, since it is the record of which certificate each id holds.
 */
function deviceTable(names: Names): Record<string, Resource> {
  return {
    DeviceTable: {
      Type: 'AWS::DynamoDB::Table',
      Properties: {
        TableName: sub(names.deviceTable),
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: DEVICE_ITEM.key, AttributeType: 'S' }],
        KeySchema: [{ AttributeName: DEVICE_ITEM.key, KeyType: 'HASH' }],
        SSESpecification: { SSEEnabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      },
    },
  };
}

/** The template's parameters a table attribute may fill (beyond DeviceId). */
export const templateAttributeParameters = (options: Pick<StackOptions, 'thingAttributes'>): string[] => options.thingAttributes ?? [];

function provisioning(names: Names, options: StackOptions): Record<string, Resource> {
  return {
    ProvisioningRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        RoleName: sub(names.provisioningRole),
        AssumeRolePolicyDocument: assumedBy('iot.amazonaws.com', iotArn('*')),
        ManagedPolicyArns: [sub(`${ARN_PREFIX}:iam::aws:policy/service-role/AWSIoTThingsRegistration`)],
      },
    },
    // The hook reads and writes one item per request with UpdateItem only, and checks whether a
    // recorded certificate ever became a device's (device certificates are made after the stack).
    PreProvisioningHookRole: lambdaRole(names.hookRole, {
      Policies: [
        {
          PolicyName: 'device-table-and-certificates',
          PolicyDocument: policyDocument([
            allow('dynamodb:UpdateItem', getAtt('DeviceTable', 'Arn')),
            allow('iot:DescribeCertificate', sub(iotArn('cert/*'))),
          ]),
        },
      ],
    }),
    PreProvisioningHook: {
      Type: 'AWS::Lambda::Function',
      Properties: {
        FunctionName: sub(names.hookFunction),
        Description: 'fp-yocto: checks the device id, the allow-list and one identity per device id',
        Runtime: LAMBDA_RUNTIME,
        Handler: 'index.handler',
        Role: getAtt('PreProvisioningHookRole', 'Arn'),
        // AWS IoT waits at most 5 s for the hook.
        Timeout: 5,
        // More memory is more CPU: the SDK loads and TLS handshakes faster on a cold start.
        MemorySize: 256,
        Code: { ZipFile: PRE_PROVISIONING_HOOK_SOURCE },
        Environment: {
          Variables: {
            [HOOK_ENV.parameter]: DEVICE_ID_PARAMETER,
            [HOOK_ENV.kind]: ref('DeviceIdKind'),
            [HOOK_ENV.table]: ref('DeviceTable'),
            [HOOK_ENV.allowList]: ref('AllowList'),
            [HOOK_ENV.oneIdentity]: ref('OneIdentity'),
            [HOOK_ENV.templateParameters]: templateAttributeParameters(options).join(','),
          },
        },
      },
    },
    PreProvisioningHookPermission: {
      Type: 'AWS::Lambda::Permission',
      Properties: {
        Action: 'lambda:InvokeFunction',
        FunctionName: getAtt('PreProvisioningHook', 'Arn'),
        Principal: 'iot.amazonaws.com',
        // "Cross-service confused deputy prevention" (AWS IoT): aws:SourceArn in the form
        // arn:aws:iot:region:account-id:* (Lambda compares it with ArnLike), and the account.
        SourceArn: sub(iotArn('*')),
        SourceAccount: ref('AWS::AccountId'),
      },
    },
    ProvisioningTemplate: {
      Type: 'AWS::IoT::ProvisioningTemplate',
      // AWS IoT checks that it may invoke the hook when the template is created.
      DependsOn: ['PreProvisioningHookPermission'],
      Properties: {
        TemplateName: sub(names.templateName),
        Description: 'fp-yocto: one thing per device, named by its device id',
        Enabled: true,
        TemplateType: 'FLEET_PROVISIONING',
        ProvisioningRoleArn: getAtt('ProvisioningRole', 'Arn'),
        PreProvisioningHook: { TargetArn: getAtt('PreProvisioningHook', 'Arn'), PayloadVersion: '2020-04-01' },
        TemplateBody: {
          'Fn::Sub': [
            provisioningTemplateJson(templateAttributeParameters(options)),
            {
              ThingNamePrefix: ref('ThingNamePrefix'),
              ThingGroupName: ref('ThingGroup'),
              DevicePolicyName: ref('DevicePolicy'),
            },
          ],
        },
      },
    },
  };
}

function endpoints(names: Names): Record<string, Resource> {
  return {
    EndpointsFunctionRole: lambdaRole(names.endpointsRole, {
      Policies: [{ PolicyName: 'describe-iot-endpoints', PolicyDocument: policyDocument([allow('iot:DescribeEndpoint', '*')]) }],
    }),
    EndpointsFunction: {
      Type: 'AWS::Lambda::Function',
      Properties: {
        FunctionName: sub(names.endpointsFunction),
        Description: 'fp-yocto: reports the AWS IoT endpoints as stack outputs',
        Runtime: LAMBDA_RUNTIME,
        Handler: 'index.handler',
        Role: getAtt('EndpointsFunctionRole', 'Arn'),
        Timeout: 30,
        MemorySize: 128,
        Code: { ZipFile: ENDPOINTS_RESOURCE_SOURCE },
      },
    },
    Endpoints: {
      Type: 'Custom::IoTEndpoints',
      Properties: {
        ServiceToken: getAtt('EndpointsFunction', 'Arn'),
        // AWS::CloudFormation::CustomResource: without ServiceTimeout a function that never
        // answers holds the stack for 3600 s; ours gives up after its own 30 s.
        ServiceTimeout: 120,
      },
    },
  };
}

/**
 * rotate-claim's grace period, enforced by the cloud: one EventBridge Scheduler one-time schedule
 * per retired claim certificate, in this group, whose universal target calls IoT
 * UpdateCertificate with this role. Claim certificates are made after the stack, so the role
 * may update certificates of this account and region; the trust policy limits it to schedules
 * of this group.
 */
function claimRetirement(names: Names): Record<string, Resource> {
  const group = `${ARN_PREFIX}:scheduler:\${AWS::Region}:\${AWS::AccountId}:schedule/${names.scheduleGroup}/*`;
  return {
    ClaimRetirementSchedules: {
      Type: 'AWS::Scheduler::ScheduleGroup',
      Properties: { Name: sub(names.scheduleGroup) },
    },
    ClaimRetirementRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        RoleName: sub(names.claimRetirementRole),
        AssumeRolePolicyDocument: assumedBy('scheduler.amazonaws.com', group),
        Policies: [
          {
            PolicyName: 'deactivate-claim-certificate',
            PolicyDocument: policyDocument([allow('iot:UpdateCertificate', sub(iotArn('cert/*')))]),
          },
        ],
      },
    },
  };
}

const output = (Description: string, Value: Json) => ({ Description, Value });

export function buildStack(options: StackOptions): CfnTemplate {
  const names = resourceNames(options);
  const defaults = stackParameterValues(options);
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: 'fp-yocto: AWS IoT fleet provisioning by claim (generated by fp-yocto; edit stack.ts, not this file)',
    Parameters: Object.fromEntries(
      Object.entries(STACK_PARAMETERS).map(([name, p]) => [
        name,
        {
          Type: 'String',
          Default: defaults[name as StackParameter],
          Description: p.description,
          ...('allowed' in p ? { AllowedValues: [...p.allowed] } : {}),
        },
      ]),
    ),
    Resources: {
      ...tokenExchange(names, options.artifactBuckets ?? []),
      ...iotPolicies(names, options.greengrass),
      ...deviceTable(names),
      ...provisioning(names, options),
      ...endpoints(names),
      ...claimRetirement(names),
    },
    Outputs: {
      ProvisioningTemplateName: output('Template the devices name (FLEETPROV_TEMPLATE_NAME)', ref('ProvisioningTemplate')),
      ClaimPolicyName: output('Policy attached to the claim certificate', ref('ClaimPolicy')),
      DevicePolicyName: output('Policy attached to every provisioned device (retained when the stack is deleted)', ref('DevicePolicy')),
      ThingGroupName: output('Group every provisioned thing joins', ref('ThingGroup')),
      RoleAlias: output('Role alias for the credentials provider (FLEETPROV_ROLE_ALIAS)', ref('TokenExchangeRoleAlias')),
      RoleAliasArn: output('ARN of the role alias', getAtt('TokenExchangeRoleAlias', 'RoleAliasArn')),
      TokenExchangeRoleArn: output('Role the devices assume through the role alias', getAtt('TokenExchangeRole', 'Arn')),
      ProvisioningRoleArn: output('Role AWS IoT uses to register things', getAtt('ProvisioningRole', 'Arn')),
      PreProvisioningHookArn: output('The pre-provisioning hook Lambda', getAtt('PreProvisioningHook', 'Arn')),
      DeviceTableName: output('Device table: the allow-list and the certificate each device id provisioned with (fp-yocto devices)', ref('DeviceTable')),
      ClientIdPrefix: output('Claim connections must use a client id with this prefix', ref('ClientIdPrefix')),
      ClaimRetirementScheduleGroup: output('Schedule group of the one-time schedules that deactivate retired claim certificates', ref('ClaimRetirementSchedules')),
      ClaimRetirementRoleArn: output('Role those schedules use to call iot:UpdateCertificate', getAtt('ClaimRetirementRole', 'Arn')),
      IotDataEndpoint: output('AWS IoT data endpoint (FLEETPROV_IOT_DATA_ENDPOINT)', getAtt('Endpoints', 'DataEndpoint')),
      IotCredentialEndpoint: output('AWS IoT credentials endpoint (FLEETPROV_IOT_CRED_ENDPOINT)', getAtt('Endpoints', 'CredentialEndpoint')),
    },
  };
}
