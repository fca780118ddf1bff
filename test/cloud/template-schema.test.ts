// The generated template against CloudFormation's resource schemas (@aws-cdk/aws-service-spec),
// and deliberately broken copies that the check must catch.
import { describe, expect, it } from 'vitest';
import { buildStack, type CfnTemplate, type StackOptions } from '../../src/cloud/stack.ts';
import { defaultStackOptions } from '../../src/cloud/template-yaml.ts';
import { validateTemplate } from '../helpers/cfn-schema.ts';

const VARIANTS: [string, StackOptions][] = [
  ['defaults (Greengrass)', defaultStackOptions()],
  ['standalone, custom names, artifact buckets, allow-list', { ...defaultStackOptions(), greengrass: false, templateName: 'my-tpl', thingGroupName: 'my-group', artifactBuckets: ['my-artifacts'], requireAllowList: true, oneIdentity: false, deviceIdSource: 'dmi-serial', thingAttributes: ['model', 'batch'] }],
];

describe('the stack against CloudFormation resource schemas', () => {
  it.each(VARIANTS)('%s: every type, property, value, attribute and reference is valid', { timeout: 30_000 }, async (_label, options) => {
    expect(await validateTemplate(buildStack(options))).toEqual([]);
  });

  const broken: [string, (t: CfnTemplate) => void, RegExp][] = [
    ['an unknown resource type', (t) => (t.Resources.ThingGroup!.Type = 'AWS::IoT::ThingGroops'), /ThingGroup: unknown resource type AWS::IoT::ThingGroops/],
    ['a misspelled property', (t) => (t.Resources.ClaimPolicy!.Properties.PolicyDocumnt = {}), /ClaimPolicy.Properties: unknown property PolicyDocumnt/],
    ['a missing required property', (t) => delete t.Resources.ProvisioningTemplate!.Properties.ProvisioningRoleArn, /ProvisioningTemplate.Properties: missing required property ProvisioningRoleArn/],
    ['a wrong property type', (t) => (t.Resources.PreProvisioningHook!.Properties.Timeout = '5s'), /PreProvisioningHook.Properties.Timeout: expected an integer/],
    ['a wrong type inside a nested definition', (t) => ((t.Resources.PreProvisioningHook!.Properties.Code as Record<string, unknown>).ZipFile = 42), /PreProvisioningHook.Properties.Code.ZipFile: expected a string/],
    ['a value outside the allowed ones', (t) => (t.Resources.ProvisioningTemplate!.Properties.TemplateType = 'FLEET'), /TemplateType: "FLEET" is not one of FLEET_PROVISIONING, JITP/],
    ['a Fn::GetAtt attribute the type does not have', (t) => (t.Outputs.RoleAliasArn!.Value = { 'Fn::GetAtt': ['TokenExchangeRoleAlias', 'Arn'] }), /TokenExchangeRoleAlias \(AWS::IoT::RoleAlias\) has no attribute Arn/],
    ['a Ref to nothing', (t) => (t.Outputs.ThingGroupName!.Value = { Ref: 'ThingGroups' }), /Outputs.ThingGroupName.Value: Ref to unknown ThingGroups/],
    ['a Fn::Sub name that is not defined', (t) => (t.Resources.ClaimPolicy!.Properties.PolicyName = { 'Fn::Sub': '${AWS::StackName}-${Flavour}' }), /Ref to unknown Flavour/],
    ['a DependsOn to nothing', (t) => (t.Resources.ProvisioningTemplate!.DependsOn = ['HookPermission']), /DependsOn: no resource HookPermission/],
    ['an unknown DeletionPolicy', (t) => (t.Resources.DevicePolicy!.DeletionPolicy = 'Keep'), /DevicePolicy.DeletionPolicy: Keep is not one of/],
  ];

  it.each(broken)('catches %s', { timeout: 30_000 }, async (_label, breakIt, expected) => {
    const template = structuredClone(buildStack(defaultStackOptions()));
    breakIt(template);
    const problems = await validateTemplate(template);
    expect(problems.join('\n')).toMatch(expected);
  });
});
