// The outputs a deployed fp-yocto stack (default options) reports, as DescribeStacks returns them.
export const STACK_OUTPUTS = Object.entries({
  ProvisioningTemplateName: 'fp-yocto-provisioning',
  ThingGroupName: 'fp-yocto-devices',
  ClaimPolicyName: 'fp-yocto-claim',
  DevicePolicyName: 'fp-yocto-device',
  RoleAlias: 'fp-yocto-token-exchange',
  ClaimRetirementScheduleGroup: 'fp-yocto-claims',
  ClaimRetirementRoleArn: 'arn:aws:iam::123456789012:role/fp-yocto-eu-west-1-claim-retirement',
  DeviceTableName: 'fp-yocto-devices',
}).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue }));
