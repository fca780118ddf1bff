// The control plane in-process: AWS IoT's names, shapes and exceptions over the emulator registry.
import { X509Certificate } from 'node:crypto';
import type {
  CertificateDescription,
  CertificateStatus,
  ControlPlane,
  Faults,
  ProvisioningTemplateInput,
  ThingDescription,
} from './control-plane.ts';
import { arn, certificateIdFrom } from './arn.ts';
import { AwsError } from './aws-error.ts';
import { certificateIdOf, CsrError, type CertificateAuthority } from './ca.ts';
import type { FaultState } from './faults.ts';
import { parsePolicyDocument, PolicyDocumentError } from './policy.ts';
import type { CertificateRecord, Registry, ThingRecord } from './registry.ts';
import { parseTemplate, TemplateError } from './template-engine.ts';

export interface LocalControlPlaneDeps {
  registry: Registry;
  ca: CertificateAuthority;
  caPath: string;
  faults: FaultState;
  endpoint: () => { endpointAddress: string; port: number };
  now: () => number;
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

/** Adds a certificate signed by the emulator CA to the registry. */
export function recordCertificate(
  registry: Registry,
  certificatePem: string,
  status: CertificateStatus,
  now: number,
  extra: Partial<CertificateRecord> = {},
): CertificateRecord {
  const x509 = new X509Certificate(certificatePem);
  const certificateId = certificateIdOf(x509.raw);
  const record: CertificateRecord = {
    certificateId,
    certificatePem,
    status,
    creationDate: new Date(now).toISOString(),
    notAfter: new Date(x509.validTo).toISOString(),
    policies: [],
    ...extra,
  };
  registry.state.certificates[certificateId] = record;
  return record;
}

export class LocalControlPlane implements ControlPlane {
  constructor(private readonly deps: LocalControlPlaneDeps) {}

  private get state() {
    return this.deps.registry.state;
  }

  private cert(idOrArn: string): CertificateRecord {
    const id = certificateIdFrom(idOrArn);
    const cert = this.state.certificates[id];
    if (!cert) throw new AwsError('ResourceNotFoundException', `certificate ${id} does not exist`);
    return cert;
  }

  private policy(policyName: string) {
    const policy = this.state.policies[policyName];
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
    if (this.state.policies[policyName]) throw new AwsError('ResourceAlreadyExistsException', `policy ${policyName} already exists`);
    checkPolicyDocument(policyDocument);
    this.state.policies[policyName] = { policyName, policyDocument };
    await this.deps.registry.save();
    return { policyArn: arn.policy(policyName) };
  }

  async updatePolicy(policyName: string, policyDocument: string) {
    checkPolicyDocument(policyDocument);
    this.policy(policyName).policyDocument = policyDocument;
    await this.deps.registry.save();
  }

  async getPolicy(policyName: string) {
    const policy = this.state.policies[policyName];
    return policy ? { ...policy } : undefined;
  }

  async deletePolicy(policyName: string) {
    this.policy(policyName);
    const users = Object.values(this.state.certificates).filter((c) => c.policies.includes(policyName));
    if (users.length > 0) throw new AwsError('DeleteConflictException', `policy ${policyName} is attached to ${users.length} certificate(s)`);
    delete this.state.policies[policyName];
    await this.deps.registry.save();
  }

  async attachPolicy(policyName: string, certificateId: string) {
    this.policy(policyName);
    const cert = this.cert(certificateId);
    if (!cert.policies.includes(policyName)) cert.policies.push(policyName);
    await this.deps.registry.save();
  }

  async detachPolicy(policyName: string, certificateId: string) {
    const cert = this.cert(certificateId);
    cert.policies = cert.policies.filter((p) => p !== policyName);
    await this.deps.registry.save();
  }

  async listAttachedPolicies(certificateId: string) {
    return [...this.cert(certificateId).policies];
  }

  async createProvisioningTemplate(input: ProvisioningTemplateInput) {
    if (this.state.templates[input.templateName]) throw new AwsError('ResourceAlreadyExistsException', `provisioning template ${input.templateName} already exists`);
    this.state.templates[input.templateName] = checkTemplate(input);
    await this.deps.registry.save();
    return { templateArn: arn.template(input.templateName) };
  }

  async updateProvisioningTemplate(input: ProvisioningTemplateInput) {
    if (!this.state.templates[input.templateName]) throw new AwsError('ResourceNotFoundException', `provisioning template ${input.templateName} does not exist`);
    this.state.templates[input.templateName] = checkTemplate(input);
    await this.deps.registry.save();
  }

  async describeProvisioningTemplate(templateName: string) {
    const template = this.state.templates[templateName];
    return template ? structuredClone(template) : undefined;
  }

  async deleteProvisioningTemplate(templateName: string) {
    if (!this.state.templates[templateName]) throw new AwsError('ResourceNotFoundException', `provisioning template ${templateName} does not exist`);
    delete this.state.templates[templateName];
    await this.deps.registry.save();
  }

  async createThingGroup(thingGroupName: string) {
    this.state.thingGroups[thingGroupName] ??= { thingGroupName };
    await this.deps.registry.save();
    return { thingGroupArn: arn.thingGroup(thingGroupName) };
  }

  async deleteThingGroup(thingGroupName: string) {
    delete this.state.thingGroups[thingGroupName];
    for (const thing of Object.values(this.state.things)) thing.thingGroups = thing.thingGroups.filter((g) => g !== thingGroupName);
    await this.deps.registry.save();
  }

  async listThingsInThingGroup(thingGroupName: string) {
    if (!this.state.thingGroups[thingGroupName]) throw new AwsError('ResourceNotFoundException', `thing group ${thingGroupName} does not exist`);
    return Object.values(this.state.things)
      .filter((t) => t.thingGroups.includes(thingGroupName))
      .map((t) => t.thingName);
  }

  async describeThing(thingName: string) {
    const thing = this.state.things[thingName];
    return thing ? describeThingRecord(thing) : undefined;
  }

  async listThings() {
    return Object.values(this.state.things).map(describeThingRecord);
  }

  private thing(thingName: string): ThingRecord {
    const thing = this.state.things[thingName];
    if (!thing) throw new AwsError('ResourceNotFoundException', `thing ${thingName} does not exist`);
    return thing;
  }

  async listThingPrincipals(thingName: string) {
    return this.thing(thingName).principals.map(arn.cert);
  }

  async detachThingPrincipal(thingName: string, principal: string) {
    const thing = this.thing(thingName);
    const id = certificateIdFrom(principal);
    thing.principals = thing.principals.filter((p) => p !== id);
    await this.deps.registry.save();
  }

  async deleteThing(thingName: string) {
    if (!this.state.things[thingName]) return;
    delete this.state.things[thingName];
    await this.deps.registry.save();
  }

  async createCertificateFromCsr(certificateSigningRequest: string, setAsActive: boolean) {
    let certificatePem: string;
    try {
      certificatePem = this.deps.ca.issueFromCsr(certificateSigningRequest, new Date(this.deps.now()));
    } catch (error) {
      if (error instanceof CsrError) throw new AwsError('InvalidRequestException', error.message);
      throw error;
    }
    const record = recordCertificate(this.deps.registry, certificatePem, setAsActive ? 'ACTIVE' : 'INACTIVE', this.deps.now());
    await this.deps.registry.save();
    return { certificateId: record.certificateId, certificateArn: arn.cert(record.certificateId), certificatePem };
  }

  async describeCertificate(certificateId: string) {
    const cert = this.state.certificates[certificateIdFrom(certificateId)];
    return cert ? describeCertificateRecord(cert) : undefined;
  }

  async listCertificates() {
    return Object.values(this.state.certificates).map(describeCertificateRecord);
  }

  async updateCertificate(certificateId: string, newStatus: 'ACTIVE' | 'INACTIVE' | 'REVOKED') {
    const cert = this.cert(certificateId);
    if (cert.status === 'REVOKED' && newStatus === 'ACTIVE') throw new AwsError('CertificateStateException', `certificate ${cert.certificateId} is revoked`);
    cert.status = newStatus;
    delete cert.ownership;
    await this.deps.registry.save();
  }

  async deleteCertificate(certificateId: string) {
    const cert = this.cert(certificateId);
    if (cert.status === 'ACTIVE') throw new AwsError('CertificateStateException', `certificate ${cert.certificateId} is ACTIVE: deactivate it first`);
    const things = this.deps.registry.thingsOf(cert.certificateId);
    if (things.length > 0) throw new AwsError('DeleteConflictException', `certificate ${cert.certificateId} is attached to thing ${things[0]}`);
    delete this.state.certificates[cert.certificateId];
    await this.deps.registry.save();
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
