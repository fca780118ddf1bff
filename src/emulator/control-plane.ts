// The emulator's control plane: the subset of the AWS IoT control-plane API that fp-yocto uses,
// with AWS's names and shapes. The emulator implements it in-process (`startEmulator`) and serves
// it on loopback to other processes (`connectEmulator`), so `fp-yocto init --local` drives the
// emulator the way `fp-yocto init` drives AWS through the SDK.

export type CertificateStatus = 'ACTIVE' | 'INACTIVE' | 'REVOKED' | 'PENDING_ACTIVATION';

export interface CertificateDescription {
  certificateId: string;
  certificateArn: string;
  status: CertificateStatus;
  /** ISO 8601. */
  creationDate: string;
  notAfter: string;
  /** Set for certificates issued through fleet provisioning: the claim certificate that asked. */
  claimCertificateId?: string;
}

export interface ThingDescription {
  thingName: string;
  thingArn: string;
  attributes: Record<string, string>;
  thingGroups: string[];
  principals: string[];
}

export interface ProvisioningTemplateInput {
  templateName: string;
  /** The template body as JSON text, exactly as CreateProvisioningTemplate takes it. */
  templateBody: string;
  enabled: boolean;
  provisioningRoleArn: string;
  /** The pre-provisioning hook. Its source defaults to the shared hook (src/shared/pre-provisioning-hook.ts). */
  preProvisioningHook?: { source?: string; env?: Record<string, string> };
}

/** The DynamoDB operations the emulator serves, for the stack's device table (src/emulator/dynamodb/). */
export const DYNAMODB_OPERATIONS = [
  'CreateTable',
  'DescribeTable',
  'DeleteTable',
  'GetItem',
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchGetItem',
  'BatchWriteItem',
  'Scan',
] as const;
export type DynamoDbOperation = (typeof DYNAMODB_OPERATIONS)[number];

export type FaultStep = 'connect' | 'create-certificate' | 'register-thing';

/** Fault injection, for tests and for trying the agent's retry logic by hand. */
export interface Faults {
  /** Reject the next N fleet-provisioning requests with 429 ThrottlingException. */
  throttle?: number;
  /** Delay every fleet-provisioning reply by this many milliseconds. */
  delayMs?: number;
  /**
   * Drop the client's connection once, when it reaches this step: the request is lost unanswered
   * and unprocessed (for 'connect', before CONNACK), so the device must retry.
   */
  dropAfter?: FaultStep;
  /** Make the pre-provisioning hook deny every request. */
  denyHook?: boolean;
}

export interface ControlPlane {
  describeEndpoint(endpointType: 'iot:Data-ATS' | 'iot:CredentialProvider'): Promise<{ endpointAddress: string; port: number }>;
  /** The root CA that device clients must trust to verify the emulator's server certificate. */
  getRootCa(): Promise<{ pem: string; path: string }>;

  createPolicy(policyName: string, policyDocument: string): Promise<{ policyArn: string }>;
  /** Replaces the document of an existing policy (as CreatePolicyVersion with setAsDefault). */
  updatePolicy(policyName: string, policyDocument: string): Promise<void>;
  getPolicy(policyName: string): Promise<{ policyName: string; policyDocument: string } | undefined>;
  deletePolicy(policyName: string): Promise<void>;
  attachPolicy(policyName: string, certificateId: string): Promise<void>;
  detachPolicy(policyName: string, certificateId: string): Promise<void>;
  listAttachedPolicies(certificateId: string): Promise<string[]>;

  createProvisioningTemplate(input: ProvisioningTemplateInput): Promise<{ templateArn: string }>;
  updateProvisioningTemplate(input: ProvisioningTemplateInput): Promise<void>;
  describeProvisioningTemplate(templateName: string): Promise<ProvisioningTemplateInput | undefined>;
  deleteProvisioningTemplate(templateName: string): Promise<void>;

  createThingGroup(thingGroupName: string): Promise<{ thingGroupArn: string }>;
  deleteThingGroup(thingGroupName: string): Promise<void>;
  listThingsInThingGroup(thingGroupName: string): Promise<string[]>;
  describeThing(thingName: string): Promise<ThingDescription | undefined>;
  listThings(): Promise<ThingDescription[]>;
  /** The certificate ARNs attached to the thing (ListThingPrincipals). */
  listThingPrincipals(thingName: string): Promise<string[]>;
  /** DetachThingPrincipal: the principal is a certificate ARN or id. */
  detachThingPrincipal(thingName: string, principal: string): Promise<void>;
  /** DeleteThing: succeeds for a thing that does not exist, as AWS IoT's does. */
  deleteThing(thingName: string): Promise<void>;

  /** Signs a CSR made elsewhere: the private key never reaches the emulator. */
  createCertificateFromCsr(
    certificateSigningRequest: string,
    setAsActive: boolean,
  ): Promise<{ certificateId: string; certificateArn: string; certificatePem: string }>;
  describeCertificate(certificateId: string): Promise<CertificateDescription | undefined>;
  listCertificates(): Promise<CertificateDescription[]>;
  updateCertificate(certificateId: string, newStatus: 'ACTIVE' | 'INACTIVE' | 'REVOKED'): Promise<void>;
  deleteCertificate(certificateId: string): Promise<void>;

  /**
   * One DynamoDB API call, with DynamoDB's operation names, inputs, outputs and exception names
   * (ConditionalCheckFailedException, ResourceNotFoundException, ValidationException).
   */
  dynamoDb(operation: DynamoDbOperation, input: Record<string, unknown>): Promise<Record<string, unknown>>;

  setFaults(faults: Faults): Promise<void>;
}
