// The CloudFormation stack, built as a plain object from typed options. init deploys this object,
// cloudformation/fleet-provisioning.yaml is this object written out, and the local provider
// applies its IoT pieces to the emulator, so the three cannot drift apart.
//
// Every physical name is derived from the stack name (IAM names, being global, also from the
// region) so two stacks, or one stack in two regions, never collide.
import { HOOK_ENV, DEVICE_ID_PARAMETER, PRE_PROVISIONING_HOOK_SOURCE } from '../shared/pre-provisioning-hook.ts';
import { TOPICS } from '../shared/protocol.ts';
import { ENDPOINTS_RESOURCE_SOURCE } from './endpoints-resource.ts';
import { provisioningTemplateJson } from './provisioning-template.ts';

/** The newest Node.js runtime CloudFormation accepts for Lambda (nodejs22.x, supported into 2027). */
export const LAMBDA_RUNTIME = 'nodejs22.x';

export interface StackOptions {
  /** Structural: Greengrass lite topics and data-plane actions in the device policy. */
  greengrass: boolean;
  /** Explicit names; by default each is `<stack name>-<role>`. */
  templateName?: string;
  thingGroupName?: string;
  /** Defaults of the stack parameters (STACK_PARAMETERS). */
  thingNamePrefix: string;
  clientIdPrefix: string;
  allowList: string[];
}

/** The stack's parameters, so people who deploy the YAML by hand can set them too. */
export const STACK_PARAMETERS = {
  ThingNamePrefix: 'Prepended to the device id to make the thing name.',
  ClientIdPrefix: 'Claim connections must use a client id starting with this (the agent adds the device id).',
  AllowedDeviceIds: 'Comma-separated MAC addresses allowed to provision; empty allows every well-formed MAC.',
} as const;
export type StackParameter = keyof typeof STACK_PARAMETERS;

export function stackParameterValues(options: StackOptions): Record<StackParameter, string> {
  return {
    ThingNamePrefix: options.thingNamePrefix,
    ClientIdPrefix: options.clientIdPrefix,
    AllowedDeviceIds: options.allowList.join(','),
  };
}

type Json = unknown;
const sub = (text: string): Json => ({ 'Fn::Sub': text });
const ref = (name: string): Json => ({ Ref: name });
const getAtt = (resource: string, attribute: string): Json => ({ 'Fn::GetAtt': [resource, attribute] });
const iotArn = (rest: string): string => `arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:${rest}`;
/** Fn::Sub needs `${!x}` to keep a literal `${x}` (an IoT policy variable). */
const THING = '${!iot:Connection.Thing.ThingName}';

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
    endpointsRole: '${AWS::StackName}-${AWS::Region}-endpoints',
    endpointsFunction: '${AWS::StackName}-iot-endpoints',
  };
}

const policyDocument = (statements: Json[]): Json => ({ Version: '2012-10-17', Statement: statements });
const allow = (action: string | string[], resource: Json): Json => ({ Effect: 'Allow', Action: action, Resource: resource });

/** Topics the claim connection uses: both certificate APIs (CSR and keys) and this template's RegisterThing. */
function claimPolicy(templateName: string): Json {
  const apis = [TOPICS.createFromCsr, TOPICS.createKeys, TOPICS.registerThing(templateName)];
  return policyDocument([
    allow('iot:Connect', sub(iotArn('client/${ClientIdPrefix}*'))),
    allow(['iot:Publish', 'iot:Receive'], apis.map((t) => sub(iotArn(`topic/${t}*`)))),
    allow('iot:Subscribe', apis.map((t) => sub(iotArn(`topicfilter/${t}*`)))),
  ]);
}

/** What a provisioned device may do: its own topics, the role alias, and Greengrass lite's needs. */
function devicePolicy(greengrass: boolean, roleAlias: string): Json {
  const statements = [
    allow('iot:Connect', sub(iotArn(`client/${THING}`))),
    // Shadows, jobs and Greengrass's own topics all live under the thing's name.
    allow(['iot:Publish', 'iot:Receive'], sub(iotArn(`topic/$aws/things/${THING}/*`))),
    allow('iot:Subscribe', sub(iotArn(`topicfilter/$aws/things/${THING}/*`))),
    allow('iot:AssumeRoleWithCertificate', sub(iotArn(`rolealias/${roleAlias}`))),
  ];
  if (greengrass) {
    const gg = 'arn:${AWS::Partition}:greengrass:${AWS::Region}:${AWS::AccountId}';
    statements.push(
      allow(['greengrass:GetComponentVersionArtifact', 'greengrass:ResolveComponentCandidates'], sub(`${gg}:components:*`)),
      allow(['greengrass:GetDeploymentConfiguration', 'greengrass:ListThingGroupsForCoreDevice'], sub(iotArn(`thing/${THING}`))),
    );
  }
  return policyDocument(statements);
}

const assumedBy = (service: string): Json =>
  policyDocument([{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }]);

/**
 * Actions that have no resource-level permissions: IAM only accepts them on "*". They are read-only
 * and listed here so a test can check that nothing else ever gets "*".
 */
export const RESOURCE_STAR_ACTIONS = ['iot:DescribeEndpoint'];

export type CfnTemplate = {
  AWSTemplateFormatVersion: string;
  Description: string;
  Parameters: Record<string, { Type: string; Default: string; Description: string }>;
  Resources: Record<string, { Type: string; DependsOn?: string[]; Properties: Record<string, Json> }>;
  Outputs: Record<string, { Description: string; Value: Json }>;
};

export function buildStack(options: StackOptions): CfnTemplate {
  const names = resourceNames(options);
  const defaults = stackParameterValues(options);
  const logs = 'arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}';
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: 'fp-yocto: AWS IoT fleet provisioning by claim (generated by fp-yocto; edit stack.ts, not this file)',
    Parameters: Object.fromEntries(
      Object.entries(STACK_PARAMETERS).map(([name, description]) => [
        name,
        { Type: 'String', Default: defaults[name as StackParameter], Description: description },
      ]),
    ),
    Resources: {
      TokenExchangeRole: {
        Type: 'AWS::IAM::Role',
        Properties: {
          RoleName: sub(names.tokenExchangeRole),
          AssumeRolePolicyDocument: assumedBy('credentials.iot.amazonaws.com'),
          Policies: [
            {
              PolicyName: 'greengrass-token-exchange',
              PolicyDocument: policyDocument([
                allow(
                  ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
                  sub(`${logs}:log-group:/aws/greengrass/*`),
                ),
                allow('s3:GetBucketLocation', sub('arn:${AWS::Partition}:s3:::*')),
              ]),
            },
          ],
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
      ProvisioningRole: {
        Type: 'AWS::IAM::Role',
        Properties: {
          RoleName: sub(names.provisioningRole),
          AssumeRolePolicyDocument: assumedBy('iot.amazonaws.com'),
          ManagedPolicyArns: [sub('arn:${AWS::Partition}:iam::aws:policy/service-role/AWSIoTThingsRegistration')],
        },
      },
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
        Properties: {
          PolicyName: sub(names.devicePolicy),
          PolicyDocument: devicePolicy(options.greengrass, names.roleAlias),
        },
      },
      PreProvisioningHookRole: {
        Type: 'AWS::IAM::Role',
        Properties: {
          RoleName: sub(names.hookRole),
          AssumeRolePolicyDocument: assumedBy('lambda.amazonaws.com'),
          ManagedPolicyArns: [sub('arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole')],
        },
      },
      PreProvisioningHook: {
        Type: 'AWS::Lambda::Function',
        Properties: {
          FunctionName: sub(names.hookFunction),
          Description: 'fp-yocto: validates the device id (a MAC address) and the optional allow-list',
          Runtime: LAMBDA_RUNTIME,
          Handler: 'index.handler',
          Role: getAtt('PreProvisioningHookRole', 'Arn'),
          // AWS IoT waits at most 5 s for the hook.
          Timeout: 5,
          MemorySize: 128,
          Code: { ZipFile: PRE_PROVISIONING_HOOK_SOURCE },
          Environment: {
            Variables: { [HOOK_ENV.parameter]: DEVICE_ID_PARAMETER, [HOOK_ENV.allowList]: ref('AllowedDeviceIds') },
          },
        },
      },
      PreProvisioningHookPermission: {
        Type: 'AWS::Lambda::Permission',
        Properties: {
          Action: 'lambda:InvokeFunction',
          FunctionName: getAtt('PreProvisioningHook', 'Arn'),
          Principal: 'iot.amazonaws.com',
          // Only this stack's template, in this account, may invoke the hook.
          SourceArn: sub(iotArn(`provisioningtemplate/${names.templateName}`)),
          SourceAccount: ref('AWS::AccountId'),
        },
      },
      ProvisioningTemplate: {
        Type: 'AWS::IoT::ProvisioningTemplate',
        // AWS IoT checks that it may invoke the hook when the template is created.
        DependsOn: ['PreProvisioningHookPermission'],
        Properties: {
          TemplateName: sub(names.templateName),
          Description: 'fp-yocto: one thing per device, named by its MAC address',
          Enabled: true,
          TemplateType: 'FLEET_PROVISIONING',
          ProvisioningRoleArn: getAtt('ProvisioningRole', 'Arn'),
          PreProvisioningHook: { TargetArn: getAtt('PreProvisioningHook', 'Arn'), PayloadVersion: '2020-04-01' },
          TemplateBody: {
            'Fn::Sub': [
              provisioningTemplateJson(),
              {
                ThingNamePrefix: ref('ThingNamePrefix'),
                ThingGroupName: ref('ThingGroup'),
                DevicePolicyName: ref('DevicePolicy'),
              },
            ],
          },
        },
      },
      EndpointsFunctionRole: {
        Type: 'AWS::IAM::Role',
        Properties: {
          RoleName: sub(names.endpointsRole),
          AssumeRolePolicyDocument: assumedBy('lambda.amazonaws.com'),
          ManagedPolicyArns: [sub('arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole')],
          Policies: [{ PolicyName: 'describe-iot-endpoints', PolicyDocument: policyDocument([allow(RESOURCE_STAR_ACTIONS, '*')]) }],
        },
      },
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
        Properties: { ServiceToken: getAtt('EndpointsFunction', 'Arn') },
      },
    },
    Outputs: {
      ProvisioningTemplateName: { Description: 'Template the devices name (FLEETPROV_TEMPLATE_NAME)', Value: ref('ProvisioningTemplate') },
      ClaimPolicyName: { Description: 'Policy attached to the claim certificate', Value: ref('ClaimPolicy') },
      DevicePolicyName: { Description: 'Policy attached to every provisioned device', Value: ref('DevicePolicy') },
      ThingGroupName: { Description: 'Group every provisioned thing joins', Value: ref('ThingGroup') },
      RoleAlias: { Description: 'Role alias for the credentials provider (FLEETPROV_ROLE_ALIAS)', Value: ref('TokenExchangeRoleAlias') },
      RoleAliasArn: { Description: 'ARN of the role alias', Value: getAtt('TokenExchangeRoleAlias', 'RoleAliasArn') },
      TokenExchangeRoleArn: { Description: 'Role the devices assume through the role alias', Value: getAtt('TokenExchangeRole', 'Arn') },
      ProvisioningRoleArn: { Description: 'Role AWS IoT uses to register things', Value: getAtt('ProvisioningRole', 'Arn') },
      PreProvisioningHookArn: { Description: 'The pre-provisioning hook Lambda', Value: getAtt('PreProvisioningHook', 'Arn') },
      ClientIdPrefix: { Description: 'Claim connections must use a client id with this prefix', Value: ref('ClientIdPrefix') },
      IotDataEndpoint: { Description: 'AWS IoT data endpoint (FLEETPROV_IOT_DATA_ENDPOINT)', Value: getAtt('Endpoints', 'DataEndpoint') },
      IotCredentialEndpoint: { Description: 'AWS IoT credentials endpoint (FLEETPROV_IOT_CRED_ENDPOINT)', Value: getAtt('Endpoints', 'CredentialEndpoint') },
    },
  };
}
