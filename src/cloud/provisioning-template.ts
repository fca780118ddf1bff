// The fleet-provisioning template body (what CreateProvisioningTemplate takes), as an object.
// It uses only the template language that AWS IoT and our emulator both implement (DESIGN.md
// "Template language"). Values that belong to the stack are `${Name}` placeholders, filled in
// by CloudFormation's Fn::Sub (stack.ts), or by the local provider evaluating that Fn::Sub.
//
// The only parameter a device supplies is DeviceId (the hook refuses any other). The thing
// attributes named by the stack's `thingAttributes` are parameters too, with an empty default:
// the hook fills them from the device table's per-device attributes. The thing-name prefix is written into the
// body as text, not declared as a parameter: "Provisioning templates" (AWS IoT) says a default
// applies only when the request does not carry the parameter, so a declared ThingNamePrefix
// would let any claim holder name things outside the fleet.
import { DEVICE_ID_PARAMETER } from '../shared/pre-provisioning-hook.ts';

/** Placeholders inside the body; stack.ts maps each to a stack value with Fn::Sub. */
type BodyPlaceholder = 'ThingNamePrefix' | 'ThingGroupName' | 'DevicePolicyName';

const ph = (name: BodyPlaceholder): string => `\${${name}}`;

export function provisioningTemplateBody(thingAttributes: readonly string[] = []): Record<string, unknown> {
  const attributes = Object.fromEntries(thingAttributes.map((name) => [name, { Ref: name }]));
  return {
    Parameters: {
      [DEVICE_ID_PARAMETER]: { Type: 'String' },
      ...Object.fromEntries(thingAttributes.map((name) => [name, { Type: 'String', Default: '' }])),
      'AWS::IoT::Certificate::Id': { Type: 'String' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { 'Fn::Join': ['', [ph('ThingNamePrefix'), { Ref: DEVICE_ID_PARAMETER }]] },
          AttributePayload: { deviceId: { Ref: DEVICE_ID_PARAMETER }, ...attributes },
          ThingGroups: [ph('ThingGroupName')],
        },
        // A device that provisions again keeps its thing; its group membership is restored.
        OverrideSettings: { AttributePayload: 'REPLACE', ThingGroups: 'MERGE' },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: {
          CertificateId: { Ref: 'AWS::IoT::Certificate::Id' },
          Status: 'ACTIVE',
          // One thing per device certificate: a leaked device key cannot act for another thing.
          ThingPrincipalType: 'EXCLUSIVE_THING',
        },
      },
      policy: {
        Type: 'AWS::IoT::Policy',
        Properties: { PolicyName: ph('DevicePolicyName') },
      },
    },
  };
}

/** The body as the JSON text CreateProvisioningTemplate takes, placeholders still in. */
export const provisioningTemplateJson = (thingAttributes: readonly string[] = []): string =>
  JSON.stringify(provisioningTemplateBody(thingAttributes), null, 2);
