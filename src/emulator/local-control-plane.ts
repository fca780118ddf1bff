// The control plane in-process: AWS IoT's names, shapes and exceptions over the emulator registry.
import type {
  CertificateDescription,
  CertificateStatus,
  ControlPlane,
  DynamoDbOperation,
  Faults,
  ProvisioningTemplateInput,
  ThingDescription,
} from './control-plane.ts';
import { arn, certificateIdFrom } from './arn.ts';
import { AwsError } from './aws-error.ts';
import type { DynamoDbService } from './dynamodb/service.ts';
import { certificateFacts, CsrError, type CertificateAuthority } from './ca.ts';
import type { FaultState } from './faults.ts';
import { parsePolicyDocument, PolicyDocumentError } from './policy.ts';
import type { CertificateRecord, PolicyRecord, Registry, ThingRecord } from './registry.ts';
import { parseTemplate, TemplateError } from './template-engine.ts';

export interface LocalControlPlaneDeps {
  registry: Registry;
  ca: CertificateAuthority;
  caPath: string;
  faults: FaultState;
  endpoint: () => { endpointAddress: string; port: number };
  now: () => number;
  dynamodb: DynamoDbService;
}

export function describeCertificateRecord(c: CertificateRecord): CertificateDescription {
  return {
    certificateId: c.certificateId,
    certificateArn: arn.cert(c.certificateId),
    status: c.status,
    creationDate: c.creationDate,
    notAfter: c.notAfter,
    ...(c.claimCertificateId ? { claimCertificateId: c.claimCertificateId } : {}),
  };
}

export function describeThingRecord(t: ThingRecord): ThingDescription {
  return {
    thingName: t.thingName,
    thingArn: arn.thing(t.thingName),
    attributes: { ...t.attributes },
    thingGroups: [...t.thingGroups],
    principals: t.principals.map(arn.cert),
  };
}

/** A registry record for a certificate signed by the emulator CA (not yet stored). */
export function certificateRecord(certificatePem: string, status: CertificateStatus, now: number, extra: Partial<CertificateRecord> = {}): CertificateRecord {
  const { certificateId, notAfter } = certificateFacts(certificatePem);
  return {
    certificateId,
    certificatePem,
    status,
    creationDate: new Date(now).toISOString(),
    notAfter: notAfter.toISOString(),
    ...extra,
  };
}

export class LocalControlPlane implements ControlPlane {
  constructor(private readonly deps: LocalControlPlaneDeps) {}

  private get registry() {
    return this.deps.registry;
  }

  private cert(idOrArn: string): CertificateRecord {
    const id = certificateIdFrom(idOrArn);
    const cert = this.registry.getCertificate(id);
    if (!cert) throw new AwsError('ResourceNotFoundException', `certificate ${id} does not exist`);
    return cert;
  }

  private policy(policyName: string): PolicyRecord {
    const policy = this.registry.getPolicy(policyName);
    if (!policy) throw new AwsError('ResourceNotFoundException', `policy ${policyName} does not exist`);
    return policy;
  }

  async describeEndpoint(_endpointType: 'iot:Data-ATS' | 'iot:CredentialProvider') {
    return this.deps.endpoint();
  }

  async getRootCa() {
    return { pem: this.deps.ca.certPem, path: this.deps.caPath };
  }

  async createPolicy(policyName: string, policyDocument: string) {
    if (!/^[\w+=,.@-]{1,128}$/.test(policyName)) throw new AwsError('InvalidRequestException', `policy name "${policyName}" is not valid`);
    checkPolicyDocument(policyDocument);
    await this.registry.write((tx) => {
      if (tx.getPolicy(policyName)) throw new AwsError('ResourceAlreadyExistsException', `policy ${policyName} already exists`);
      tx.putPolicy({ policyName, policyDocument });
    });
    return { policyArn: arn.policy(policyName) };
  }

  async updatePolicy(policyName: string, policyDocument: string) {
    checkPolicyDocument(policyDocument);
    await this.registry.write((tx) => {
      this.policy(policyName);
      tx.putPolicy({ policyName, policyDocument });
    });
  }

  async getPolicy(policyName: string) {
    return this.registry.getPolicy(policyName);
  }

  async deletePolicy(policyName: string) {
    await this.registry.write((tx) => {
      this.policy(policyName);
      const users = tx.certificatesWithPolicy(policyName);
      if (users > 0) throw new AwsError('DeleteConflictException', `policy ${policyName} is attached to ${users} certificate(s)`);
      tx.deletePolicy(policyName);
    });
  }

  async attachPolicy(policyName: string, certificateId: string) {
    await this.registry.write((tx) => {
      this.policy(policyName);
      tx.attachPolicy(this.cert(certificateId).certificateId, policyName);
    });
  }

  async detachPolicy(policyName: string, certificateId: string) {
    await this.registry.write((tx) => tx.detachPolicy(this.cert(certificateId).certificateId, policyName));
  }

  async listAttachedPolicies(certificateId: string) {
    return this.registry.policiesOf(this.cert(certificateId).certificateId);
  }

  async createProvisioningTemplate(input: ProvisioningTemplateInput) {
    const template = checkTemplate(input);
    await this.registry.write((tx) => {
      if (tx.getTemplate(input.templateName)) throw new AwsError('ResourceAlreadyExistsException', `provisioning template ${input.templateName} already exists`);
      tx.putTemplate(template);
    });
    return { templateArn: arn.template(input.templateName) };
  }

  async updateProvisioningTemplate(input: ProvisioningTemplateInput) {
    const template = checkTemplate(input);
    await this.registry.write((tx) => {
      if (!tx.getTemplate(input.templateName)) throw new AwsError('ResourceNotFoundException', `provisioning template ${input.templateName} does not exist`);
      tx.putTemplate(template);
    });
  }

  async describeProvisioningTemplate(templateName: string) {
    return this.registry.getTemplate(templateName);
  }

  async deleteProvisioningTemplate(templateName: string) {
    await this.registry.write((tx) => {
      if (!tx.getTemplate(templateName)) throw new AwsError('ResourceNotFoundException', `provisioning template ${templateName} does not exist`);
      tx.deleteTemplate(templateName);
    });
  }

  async createThingGroup(thingGroupName: string) {
    await this.registry.write((tx) => tx.putThingGroup(thingGroupName));
    return { thingGroupArn: arn.thingGroup(thingGroupName) };
  }

  async deleteThingGroup(thingGroupName: string) {
    await this.registry.write((tx) => tx.deleteThingGroup(thingGroupName));
  }

  async listThingsInThingGroup(thingGroupName: string) {
    if (!this.registry.hasThingGroup(thingGroupName)) throw new AwsError('ResourceNotFoundException', `thing group ${thingGroupName} does not exist`);
    return this.registry.thingsInGroup(thingGroupName);
  }

  async describeThing(thingName: string) {
    const thing = this.registry.getThing(thingName);
    return thing && describeThingRecord(thing);
  }

  async listThings() {
    return this.registry.listThings().map(describeThingRecord);
  }

  private thing(thingName: string): ThingRecord {
    const thing = this.registry.getThing(thingName);
    if (!thing) throw new AwsError('ResourceNotFoundException', `thing ${thingName} does not exist`);
    return thing;
  }

  async listThingPrincipals(thingName: string) {
    return this.thing(thingName).principals.map(arn.cert);
  }

  async detachThingPrincipal(thingName: string, principal: string) {
    const id = certificateIdFrom(principal);
    await this.registry.write((tx) => {
      const thing = this.thing(thingName);
      tx.putThing({ ...thing, principals: thing.principals.filter((p) => p !== id) });
    });
  }

  async deleteThing(thingName: string) {
    await this.registry.write((tx) => tx.deleteThing(thingName));
  }

  async createCertificateFromCsr(certificateSigningRequest: string, setAsActive: boolean) {
    let certificatePem: string;
    try {
      certificatePem = this.deps.ca.issueFromCsr(certificateSigningRequest, new Date(this.deps.now()));
    } catch (error) {
      if (error instanceof CsrError) throw new AwsError('InvalidRequestException', error.message);
      throw error;
    }
    const record = certificateRecord(certificatePem, setAsActive ? 'ACTIVE' : 'INACTIVE', this.deps.now());
    await this.registry.write((tx) => tx.putCertificate(record));
    return { certificateId: record.certificateId, certificateArn: arn.cert(record.certificateId), certificatePem };
  }

  async describeCertificate(certificateId: string) {
    const cert = this.registry.getCertificate(certificateIdFrom(certificateId));
    return cert && describeCertificateRecord(cert);
  }

  async listCertificates() {
    return this.registry.listCertificates().map(describeCertificateRecord);
  }

  async updateCertificate(certificateId: string, newStatus: 'ACTIVE' | 'INACTIVE' | 'REVOKED') {
    await this.registry.write((tx) => {
      const cert = this.cert(certificateId);
      if (cert.status === 'REVOKED' && newStatus === 'ACTIVE') throw new AwsError('CertificateStateException', `certificate ${cert.certificateId} is revoked`);
      tx.setCertificateStatus(cert.certificateId, newStatus);
    });
  }

  async deleteCertificate(certificateId: string) {
    await this.registry.write((tx) => {
      const cert = this.cert(certificateId);
      if (cert.status === 'ACTIVE') throw new AwsError('CertificateStateException', `certificate ${cert.certificateId} is ACTIVE: deactivate it first`);
      const things = tx.thingsOf(cert.certificateId);
      if (things.length > 0) throw new AwsError('DeleteConflictException', `certificate ${cert.certificateId} is attached to thing ${things[0]}`);
      tx.deleteCertificate(cert.certificateId);
    });
  }

  async dynamoDb(operation: DynamoDbOperation, input: Record<string, unknown>) {
    return this.deps.dynamodb.call(operation, input);
  }

  async setFaults(faults: Faults) {
    this.deps.faults.set(faults);
  }
}

function checkPolicyDocument(document: string): void {
  try {
    parsePolicyDocument(document);
  } catch (error) {
    if (error instanceof PolicyDocumentError) throw new AwsError('MalformedPolicyException', error.message);
    throw error;
  }
}

function checkTemplate(input: ProvisioningTemplateInput): ProvisioningTemplateInput {
  if (!/^[0-9A-Za-z_-]{1,36}$/.test(input.templateName)) throw new AwsError('InvalidRequestException', `template name "${input.templateName}" is not valid`);
  try {
    parseTemplate(input.templateBody);
  } catch (error) {
    if (error instanceof TemplateError) throw new AwsError('InvalidRequestException', error.message);
    throw error;
  }
  return structuredClone(input);
}
