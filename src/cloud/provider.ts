// What init, status, rotate-claim and destroy need from a cloud: AWS through the SDK
// (providers/aws.ts) or the local emulator through its control plane (providers/local.ts).
import type { DynamoDbSender } from './devices/device-store.ts';
import type { ResourceNames } from './project.ts';
import type { CfnTemplate } from './stack.ts';

export interface Ui {
  /** One line of progress (a stack event, a step done). */
  info(message: string): void;
  warn(message: string): void;
  /**
   * Asks a yes/no question. Without a terminal (or with --yes) it answers yes, except that a
   * destructive question is answered no unless --yes was given.
   */
  confirm(question: string, options?: { destructive?: boolean }): Promise<boolean>;
}

export interface DeployInput {
  stackName: string;
  template: CfnTemplate;
  parameters: Record<string, string>;
}

export interface DeployResult {
  /** Readable lines such as "+ ClaimPolicy (AWS::IoT::Policy)"; empty when nothing changed. */
  changes: string[];
  names: ResourceNames;
}

export interface CertificateRef {
  certificateId: string;
  certificateArn: string;
}

export interface IssuedCertificate extends CertificateRef {
  certificatePem: string;
}

export interface CertificateInfo {
  status: string;
  /** ISO 8601. */
  notAfter?: string;
}

export interface Endpoints {
  data: string;
  credentials: string;
  port: number;
}

export interface StackInfo {
  status: string;
  reason?: string;
}

export interface DestroyOptions {
  /** --keep-fleet: the provisioned devices keep their certificates, so they keep the device policy too. */
  keepDevicePolicy: boolean;
}

export interface CloudProvider {
  readonly kind: 'aws' | 'local';
  readonly region: string;
  deploy(input: DeployInput, ui: Ui): Promise<DeployResult>;
  /** Signs a CSR made on this host; the claim key never leaves it. */
  createCertificateFromCsr(csrPem: string): Promise<IssuedCertificate>;
  attachPolicy(policyName: string, certificate: CertificateRef): Promise<void>;
  describeCertificate(certificateId: string): Promise<CertificateInfo | undefined>;
  deactivateCertificate(certificateId: string): Promise<void>;
  /**
   * Has the cloud deactivate the certificate at `at`, whoever runs fp-yocto by then; returns what
   * was scheduled, or undefined when this cloud cannot (then status or rotate-claim does it).
   */
  scheduleDeactivation(certificate: CertificateRef, at: Date, names: ResourceNames): Promise<string | undefined>;
  /** Detaches every policy from the certificate, deactivates it and deletes it. */
  deleteCertificate(certificate: CertificateRef): Promise<void>;
  describeEndpoints(): Promise<Endpoints>;
  /** The CA devices must trust to verify the data endpoint. */
  rootCaPem(): Promise<string>;
  describeStack(stackName: string, names?: ResourceNames): Promise<StackInfo | undefined>;
  listThingsInGroup(thingGroupName: string): Promise<string[]>;
  /** The DynamoDB API where the stack's device table lives (AWS, or the emulator's stand-in). */
  dynamoDb(): DynamoDbSender;
  /** Deletes a provisioned thing and its certificates (policies detached, principal detached, deactivated). */
  deleteThing(thingName: string, ui: Ui): Promise<void>;
  /** Deletes what the stack created (for local: the recorded names); returns what is left, one line each. */
  destroyStack(stackName: string, names: ResourceNames, options: DestroyOptions, ui: Ui): Promise<string[]>;
  close(): Promise<void>;
}
