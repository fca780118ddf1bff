// The emulator answers as one fixed account in one region, so ARNs look like AWS's.
export const EMULATOR_REGION = 'us-east-1';
export const EMULATOR_ACCOUNT_ID = '000000000000';

const prefix = `arn:aws:iot:${EMULATOR_REGION}:${EMULATOR_ACCOUNT_ID}`;

export const arn = {
  cert: (certificateId: string) => `${prefix}:cert/${certificateId}`,
  policy: (policyName: string) => `${prefix}:policy/${policyName}`,
  thing: (thingName: string) => `${prefix}:thing/${thingName}`,
  thingGroup: (name: string) => `${prefix}:thinggroup/${name}`,
  template: (name: string) => `${prefix}:provisioningtemplate/${name}`,
};

/** Accepts a certificate id or a certificate ARN (AWS's AttachPolicy target). */
export function certificateIdFrom(idOrArn: string): string {
  const match = /:cert\/([0-9a-f]{64})$/.exec(idOrArn);
  return match ? match[1]! : idOrArn;
}
