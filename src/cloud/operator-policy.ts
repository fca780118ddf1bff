// The IAM policy an operator needs for `fp-yocto init`, `status`, `rotate-claim` and `destroy`
// against AWS, scoped to one stack's names (`fp-yocto init --print-operator-policy`).
//
// fp-yocto passes no CloudFormation service role, so CloudFormation creates, updates and deletes
// the stack's resources with the operator's own credentials: the policy covers what its resource
// handlers call too (CLOUDFORMATION_HANDLER_ACTIONS), not only fp-yocto's own SDK calls.
import { resourceNames, type StackOptions } from './stack.ts';

export interface IamStatement {
  Sid: string;
  Effect: 'Allow';
  Action: string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface IamPolicy {
  Version: '2012-10-17';
  Statement: IamStatement[];
}

export interface OperatorScope {
  stackName: string;
  options: Pick<StackOptions, 'templateName' | 'thingGroupName' | 'thingNamePrefix'>;
  /** Default "*": any region. */
  region?: string;
  /** Default "*": the account the policy is attached in. */
  account?: string;
  /** Default "aws". */
  partition?: string;
}

const tagging = (service: string, list = 'ListTagsForResource') => [`${service}:TagResource`, `${service}:UntagResource`, `${service}:${list}`];

/**
 * What CloudFormation calls, as the operator, for each resource type of the stack (the "handlers"
 * permissions of each type's schema in the CloudFormation registry). A test checks that every
 * resource type of the stack is listed here and that the policy grants all of it.
 */
export const CLOUDFORMATION_HANDLER_ACTIONS: Record<string, string[]> = {
  'AWS::IAM::Role': [
    'iam:CreateRole',
    'iam:GetRole',
    'iam:DeleteRole',
    'iam:UpdateRole',
    'iam:UpdateRoleDescription',
    'iam:UpdateAssumeRolePolicy',
    'iam:PutRolePolicy',
    'iam:GetRolePolicy',
    'iam:DeleteRolePolicy',
    'iam:ListRolePolicies',
    'iam:AttachRolePolicy',
    'iam:DetachRolePolicy',
    'iam:ListAttachedRolePolicies',
    'iam:TagRole',
    'iam:UntagRole',
    'iam:ListRoleTags',
  ],
  'AWS::Lambda::Function': [
    'lambda:CreateFunction',
    'lambda:GetFunction',
    'lambda:GetFunctionConfiguration',
    'lambda:DeleteFunction',
    'lambda:UpdateFunctionCode',
    'lambda:UpdateFunctionConfiguration',
    'lambda:TagResource',
    'lambda:UntagResource',
    'lambda:ListTags',
    'iam:PassRole',
  ],
  'AWS::Lambda::Permission': ['lambda:AddPermission', 'lambda:RemovePermission', 'lambda:GetPolicy'],
  'AWS::IoT::Policy': [
    'iot:CreatePolicy',
    'iot:GetPolicy',
    'iot:DeletePolicy',
    'iot:CreatePolicyVersion',
    'iot:DeletePolicyVersion',
    'iot:ListPolicyVersions',
    'iot:SetDefaultPolicyVersion',
    ...tagging('iot'),
  ],
  'AWS::IoT::ThingGroup': ['iot:CreateThingGroup', 'iot:DescribeThingGroup', 'iot:UpdateThingGroup', 'iot:DeleteThingGroup', ...tagging('iot')],
  'AWS::IoT::RoleAlias': ['iot:CreateRoleAlias', 'iot:DescribeRoleAlias', 'iot:UpdateRoleAlias', 'iot:DeleteRoleAlias', 'iam:PassRole', ...tagging('iot')],
  'AWS::IoT::ProvisioningTemplate': [
    'iot:CreateProvisioningTemplate',
    'iot:DescribeProvisioningTemplate',
    'iot:UpdateProvisioningTemplate',
    'iot:DeleteProvisioningTemplate',
    'iot:CreateProvisioningTemplateVersion',
    'iot:ListProvisioningTemplateVersions',
    'iot:DeleteProvisioningTemplateVersion',
    'iam:PassRole',
    ...tagging('iot'),
  ],
  'AWS::Scheduler::ScheduleGroup': ['scheduler:CreateScheduleGroup', 'scheduler:GetScheduleGroup', 'scheduler:DeleteScheduleGroup', ...tagging('scheduler')],
  // The registry schema's handler permissions for the table's properties we use (SSE with the AWS
  // managed key needs the KMS grant actions; those are in the KMS statement below).
  'AWS::DynamoDB::Table': [
    'dynamodb:CreateTable',
    'dynamodb:DescribeTable',
    'dynamodb:UpdateTable',
    'dynamodb:DeleteTable',
    'dynamodb:DescribeContinuousBackups',
    'dynamodb:UpdateContinuousBackups',
    'dynamodb:DescribeTimeToLive',
    'dynamodb:DescribeContributorInsights',
    'dynamodb:DescribeKinesisStreamingDestination',
    'dynamodb:GetResourcePolicy',
    'dynamodb:TagResource',
    'dynamodb:UntagResource',
    'dynamodb:ListTagsOfResource',
    'kms:CreateGrant',
    'kms:DescribeKey',
    'kms:Decrypt',
    'kms:Encrypt',
    'kms:RevokeGrant',
    'kms:ListAliases',
  ],
  // A Lambda-backed custom resource: CloudFormation invokes the function as the operator.
  'Custom::IoTEndpoints': ['lambda:InvokeFunction'],
};

/** The policy document, least privilege for one stack. */
export function operatorPolicy(scope: OperatorScope): IamPolicy {
  const p = scope.partition ?? 'aws';
  const region = scope.region ?? '*';
  const account = scope.account ?? '*';
  const names = resourceNames(scope.options);
  const name = (template: string) => template.replace('${AWS::StackName}', scope.stackName).replace('${AWS::Region}', region);
  const arn = (service: string, rest: string, withRegion = true) => `arn:${p}:${service}:${withRegion ? region : ''}:${account}:${rest}`;
  const stack = scope.stackName;
  const iot = (rest: string) => arn('iot', rest);
  const stackPolicies = iot(`policy/${stack}-*`);
  const scheduleGroup = name(names.scheduleGroup);

  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'TheStack',
        Effect: 'Allow',
        Action: [
          'cloudformation:CreateChangeSet',
          'cloudformation:DescribeChangeSet',
          'cloudformation:ExecuteChangeSet',
          'cloudformation:DeleteChangeSet',
          'cloudformation:DescribeStacks',
          'cloudformation:DescribeStackEvents',
          'cloudformation:DeleteStack',
        ],
        Resource: [arn('cloudformation', `stack/${stack}/*`), arn('cloudformation', `changeSet/fp-yocto-*/*`)],
      },
      {
        Sid: 'RolesOfTheStack',
        Effect: 'Allow',
        Action: CLOUDFORMATION_HANDLER_ACTIONS['AWS::IAM::Role']!,
        Resource: arn('iam', `role/${stack}-*`, false),
      },
      {
        // The stack hands its roles to Lambda and IoT; rotate-claim hands the retirement role to Scheduler.
        Sid: 'PassRolesOfTheStack',
        Effect: 'Allow',
        Action: ['iam:PassRole'],
        Resource: arn('iam', `role/${stack}-*`, false),
        Condition: { StringEquals: { 'iam:PassedToService': ['lambda.amazonaws.com', 'iot.amazonaws.com', 'scheduler.amazonaws.com'] } },
      },
      {
        Sid: 'FunctionsOfTheStack',
        Effect: 'Allow',
        Action: [
          ...CLOUDFORMATION_HANDLER_ACTIONS['AWS::Lambda::Function']!.filter((a) => a !== 'iam:PassRole'),
          ...CLOUDFORMATION_HANDLER_ACTIONS['AWS::Lambda::Permission']!,
          ...CLOUDFORMATION_HANDLER_ACTIONS['Custom::IoTEndpoints']!,
        ],
        Resource: arn('lambda', `function:${stack}-*`),
      },
      {
        Sid: 'IotResourcesOfTheStack',
        Effect: 'Allow',
        Action: [
          ...new Set(
            ['AWS::IoT::Policy', 'AWS::IoT::ThingGroup', 'AWS::IoT::RoleAlias', 'AWS::IoT::ProvisioningTemplate']
              .flatMap((t) => CLOUDFORMATION_HANDLER_ACTIONS[t]!)
              .filter((a) => a !== 'iam:PassRole'),
          ),
          'iot:ListThingsInThingGroup',
          'iot:AttachPolicy',
          'iot:DetachPolicy',
        ],
        Resource: [
          stackPolicies,
          iot(`thinggroup/${name(names.thingGroupName)}`),
          iot(`rolealias/${stack}-*`),
          iot(`provisioningtemplate/${name(names.templateName)}`),
        ],
      },
      {
        // Claim certificates (and, for --delete-fleet, device certificates): their ids exist only
        // after the stack, so any certificate of the account. CreateCertificateFromCsr and
        // DescribeEndpoint have no resource-level permissions.
        Sid: 'Certificates',
        Effect: 'Allow',
        Action: [
          'iot:DescribeCertificate',
          'iot:UpdateCertificate',
          'iot:DeleteCertificate',
          'iot:ListAttachedPolicies',
          'iot:AttachPolicy',
          'iot:DetachPolicy',
        ],
        Resource: iot('cert/*'),
      },
      { Sid: 'NoResourceLevelPermissions', Effect: 'Allow', Action: ['iot:CreateCertificateFromCsr', 'iot:DescribeEndpoint', 'kms:ListAliases'], Resource: '*' },
      {
        Sid: 'FleetThings',
        Effect: 'Allow',
        Action: ['iot:ListThingPrincipals', 'iot:DetachThingPrincipal', 'iot:DeleteThing'],
        Resource: iot(`thing/${scope.options.thingNamePrefix}*`),
      },
      {
        Sid: 'ClaimRetirementSchedules',
        Effect: 'Allow',
        Action: [...CLOUDFORMATION_HANDLER_ACTIONS['AWS::Scheduler::ScheduleGroup']!, 'scheduler:CreateSchedule'],
        Resource: [arn('scheduler', `schedule-group/${scheduleGroup}`), arn('scheduler', `schedule/${scheduleGroup}/*`)],
      },
      {
        // The stack's device table, and what `fp-yocto devices` and `status` do with it.
        Sid: 'DeviceTable',
        Effect: 'Allow',
        Action: [
          ...CLOUDFORMATION_HANDLER_ACTIONS['AWS::DynamoDB::Table']!.filter((a) => a.startsWith('dynamodb:')),
          'dynamodb:BatchGetItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:UpdateItem',
          'dynamodb:Scan',
        ],
        Resource: arn('dynamodb', `table/${name(names.deviceTable)}`),
      },
      {
        // The table is encrypted with the AWS managed key aws/dynamodb, which DynamoDB uses on the
        // operator's behalf (kms:ViaService); kms:ListAliases has no resource-level permissions.
        Sid: 'DeviceTableEncryption',
        Effect: 'Allow',
        Action: CLOUDFORMATION_HANDLER_ACTIONS['AWS::DynamoDB::Table']!.filter((a) => a.startsWith('kms:') && a !== 'kms:ListAliases'),
        Resource: arn('kms', 'key/*'),
        Condition: { StringLike: { 'kms:ViaService': `dynamodb.${region}.amazonaws.com` } },
      },
      {
        Sid: 'LambdaLogGroups',
        Effect: 'Allow',
        Action: ['logs:DeleteLogGroup'],
        Resource: arn('logs', `log-group:/aws/lambda/${stack}-*`),
      },
    ],
  };
}
