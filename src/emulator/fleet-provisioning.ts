// The fleet-provisioning MQTT API (DESIGN.md "Wire protocol"): turns one request on a reserved
// topic into the one reply for the connection that sent it.
import { createHash, generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { PRE_PROVISIONING_HOOK_SOURCE } from '../shared/pre-provisioning-hook.ts';
import { accepted, OWNERSHIP_TOKEN_TTL_MS, rejected, TOPICS, type HookEvent, type RejectedResponse } from '../shared/protocol.ts';
import { arn, EMULATOR_ACCOUNT_ID, EMULATOR_REGION } from './arn.ts';
import { CsrError, type CertificateAuthority } from './ca.ts';
import type { FaultStep } from './control-plane.ts';
import type { FaultState } from './faults.ts';
import { createHookRunner, type HookRunner } from './hook-runner.ts';
import { recordCertificate } from './local-control-plane.ts';
import { parsePolicyDocument } from './policy.ts';
import type { Registry, ThingRecord } from './registry.ts';
import { evaluateTemplate, parseTemplate, TemplateError, type Override, type ProvisioningPlan } from './template-engine.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

export type RequestKind = 'create-keys' | 'create-from-csr' | 'register-thing';

export interface ProvisioningRequest {
  kind: RequestKind;
  /** The request topic; replies go to its /accepted or /rejected. */
  topic: string;
  templateName?: string;
  payload: Buffer;
  clientId: string;
  /** The certificate the requesting connection authenticated with (the claim certificate). */
  certificateId: string;
}

export type ProvisioningReply = { topic: string; payload: object } | { drop: true };

/** Recognises the fleet-provisioning request topics (not their replies). */
export function requestKindOf(topic: string): { kind: RequestKind; templateName?: string } | undefined {
  if (topic === TOPICS.createKeys) return { kind: 'create-keys' };
  if (topic === TOPICS.createFromCsr) return { kind: 'create-from-csr' };
  const match = /^\$aws\/provisioning-templates\/([^/]+)\/provision\/json$/.exec(topic);
  return match ? { kind: 'register-thing', templateName: match[1]! } : undefined;
}

class Rejection extends Error {
  constructor(
    readonly statusCode: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

export interface FleetProvisioningDeps {
  registry: Registry;
  ca: CertificateAuthority;
  faults: FaultState;
  now: () => number;
  hookTimeoutMs?: number;
  log: (line: string) => void;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const stepOf = (kind: RequestKind): FaultStep => (kind === 'register-thing' ? 'register-thing' : 'create-certificate');

export class FleetProvisioning {
  /** One warm hook per template version, as Lambda keeps a container warm. */
  readonly #hooks = new Map<string, { key: string; run: HookRunner }>();

  constructor(private readonly deps: FleetProvisioningDeps) {}

  #hook(templateName: string, hook: { source?: string; env?: Record<string, string> }): HookRunner {
    const source = hook.source ?? PRE_PROVISIONING_HOOK_SOURCE;
    const key = JSON.stringify([source, hook.env ?? {}]);
    const cached = this.#hooks.get(templateName);
    if (cached?.key === key) return cached.run;
    const run = createHookRunner(source, { env: hook.env, timeoutMs: this.deps.hookTimeoutMs, log: (line) => this.deps.log(`hook ${templateName}: ${line}`) });
    this.#hooks.set(templateName, { key, run });
    return run;
  }

  async handle(request: ProvisioningRequest): Promise<ProvisioningReply> {
    const { faults } = this.deps;
    // The request is lost with the connection: the device must retry from scratch.
    if (faults.takeDrop(stepOf(request.kind))) return { drop: true };
    let reply: ProvisioningReply;
    try {
      if (faults.takeThrottle()) throw new Rejection(429, 'ThrottlingException', 'Rate exceeded');
      const body = parseJson(request.payload);
      const payload =
        request.kind === 'register-thing' ? await this.registerThing(request, body) : await this.createCertificate(request, body);
      reply = { topic: accepted(request.topic), payload };
    } catch (error) {
      const r =
        error instanceof Rejection ? error : new Rejection(500, 'InternalFailure', 'internal error');
      if (!(error instanceof Rejection)) this.deps.log(`fleet provisioning: internal error: ${(error as Error).stack ?? String(error)}`);
      const payload: RejectedResponse = { statusCode: r.statusCode, errorCode: r.errorCode, errorMessage: r.message };
      reply = { topic: rejected(request.topic), payload };
    }
    const delay = faults.current.delayMs ?? 0;
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    return reply;
  }

  /** Deletes certificates whose ownership token expired before registration, as AWS does. */
  async sweepExpired(): Promise<number> {
    const now = this.deps.now();
    const { state } = this.deps.registry;
    const expired = Object.values(state.certificates).filter((c) => c.status === 'PENDING_ACTIVATION' && c.ownership && c.ownership.expiresAt <= now);
    for (const c of expired) delete state.certificates[c.certificateId];
    if (expired.length > 0) await this.deps.registry.save();
    return expired.length;
  }

  private async createCertificate(request: ProvisioningRequest, body: Record<string, unknown>) {
    const { ca, registry, now } = this.deps;
    let certificatePem: string;
    let privateKey: string | undefined;
    if (request.kind === 'create-from-csr') {
      const csr = body.certificateSigningRequest;
      if (typeof csr !== 'string' || csr === '') throw new Rejection(400, 'InvalidPayload', 'certificateSigningRequest is missing');
      try {
        certificatePem = ca.issueFromCsr(csr, new Date(now()));
      } catch (error) {
        if (error instanceof CsrError) throw new Rejection(400, 'InvalidCsr', error.message);
        throw error;
      }
    } else {
      // AWS generates an RSA 2048 key pair for CreateKeysAndCertificate.
      const pair = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
      privateKey = pair.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
      certificatePem = ca.issueClient(pair.publicKey.export({ type: 'spki', format: 'der' }), new Date(now()));
    }
    const token = randomBytes(48).toString('base64');
    const record = recordCertificate(registry, certificatePem, 'PENDING_ACTIVATION', now(), {
      claimCertificateId: request.certificateId,
      ownership: { tokenSha256: sha256(token), expiresAt: now() + OWNERSHIP_TOKEN_TTL_MS },
    });
    await registry.save();
    this.deps.log(`fleet provisioning: certificate ${record.certificateId} created for client ${request.clientId}`);
    return {
      certificateId: record.certificateId,
      certificatePem,
      ...(privateKey ? { privateKey } : {}),
      certificateOwnershipToken: token,
    };
  }

  private async registerThing(request: ProvisioningRequest, body: Record<string, unknown>) {
    await this.sweepExpired();
    const { registry, now } = this.deps;
    const { state } = registry;
    const token = body.certificateOwnershipToken;
    if (typeof token !== 'string' || token === '')
      throw new Rejection(400, 'InvalidCertificateOwnershipToken', 'Certificate ownership token cannot be empty.');
    const parameters = body.parameters ?? {};
    if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters) || Object.values(parameters).some((v) => typeof v !== 'string'))
      throw new Rejection(400, 'InvalidPayload', 'parameters must map names to strings');
    const tokenHash = sha256(token);
    const cert = Object.values(state.certificates).find((c) => c.ownership?.tokenSha256 === tokenHash);
    if (!cert || cert.ownership!.expiresAt <= now())
      throw new Rejection(400, 'InvalidCertificateOwnershipToken', 'Certificate ownership token is not valid or has expired.');
    const templateName = request.templateName!;
    const template = state.templates[templateName];
    if (!template || !template.enabled) throw new Rejection(404, 'ResourceNotFound', `provisioning template ${templateName} does not exist or is disabled`);
    const templateArn = arn.template(templateName);

    let given = { ...(parameters as Record<string, string>) };
    if (this.deps.faults.current.denyHook) throw new Rejection(403, 'ACCESS_DENIED', 'the pre-provisioning hook denied provisioning');
    const hook = template.preProvisioningHook;
    if (hook) {
      const event: HookEvent = {
        claimCertificateId: request.certificateId,
        certificateId: cert.certificateId,
        certificatePem: cert.certificatePem,
        templateArn,
        clientId: request.clientId,
        parameters: given,
      };
      const outcome = await this.#hook(templateName, hook)(event);
      if (!outcome.ok) throw new Rejection(403, 'ACCESS_DENIED', `the pre-provisioning hook failed: ${outcome.message}`);
      if (!outcome.result.allowProvisioning) throw new Rejection(403, 'ACCESS_DENIED', 'the pre-provisioning hook denied provisioning');
      given = { ...given, ...outcome.result.parameterOverrides };
    }

    let plan: ProvisioningPlan;
    try {
      plan = evaluateTemplate(parseTemplate(template.templateBody), given, {
        'AWS::IoT::Certificate::Id': cert.certificateId,
        'AWS::Region': EMULATOR_REGION,
        'AWS::AccountId': EMULATOR_ACCOUNT_ID,
      });
    } catch (error) {
      if (error instanceof TemplateError) throw new Rejection(error.statusCode, error.errorCode, error.message);
      throw error;
    }
    if (plan.certificate && plan.certificate.certificateId !== cert.certificateId)
      throw new Rejection(400, 'InvalidParameters', 'the template certificate is not the certificate of the ownership token');

    // Check everything first, then change the registry in one step.
    const policyNames = plan.policies.map((p) => {
      if ('policyName' in p) {
        if (!state.policies[p.policyName]) throw new Rejection(400, 'InvalidParameters', `policy ${p.policyName} does not exist`);
        return { name: p.policyName };
      }
      try {
        parsePolicyDocument(p.policyDocument);
      } catch (error) {
        throw new Rejection(400, 'InvalidParameters', `template policy document: ${(error as Error).message}`);
      }
      return { name: `${templateName}-${sha256(p.policyDocument).slice(0, 16)}`, document: p.policyDocument };
    });
    let thing: ThingRecord | undefined;
    if (plan.thing) {
      for (const group of plan.thing.thingGroups ?? [])
        if (!state.thingGroups[group]) throw new Rejection(400, 'InvalidParameters', `thing group ${group} does not exist`);
      thing = mergeThing(state.things[plan.thing.thingName], plan.thing);
    }

    for (const p of policyNames) if (p.document) state.policies[p.name] ??= { policyName: p.name, policyDocument: p.document };
    for (const p of policyNames) if (!cert.policies.includes(p.name)) cert.policies.push(p.name);
    if (thing) {
      if (!thing.principals.includes(cert.certificateId)) thing.principals.push(cert.certificateId);
      state.things[thing.thingName] = thing;
    }
    cert.status = plan.certificate?.status ?? 'ACTIVE';
    delete cert.ownership;
    await registry.save();
    this.deps.log(`fleet provisioning: registered ${thing ? `thing ${thing.thingName}` : 'no thing'} with certificate ${cert.certificateId}`);
    return { ...(thing ? { thingName: thing.thingName } : {}), deviceConfiguration: plan.deviceConfiguration };
  }
}

function parseJson(payload: Buffer): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Rejection(400, 'InvalidPayload', 'the payload is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Rejection(400, 'InvalidPayload', 'the payload must be a JSON object');
  return body as Record<string, unknown>;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);
}

/** Applies OverrideSettings to an existing thing (a new thing simply takes the template's values). */
export function mergeThing(existing: ThingRecord | undefined, plan: NonNullable<ProvisioningPlan['thing']>): ThingRecord {
  if (!existing)
    return {
      thingName: plan.thingName,
      attributes: plan.attributes ?? {},
      thingGroups: plan.thingGroups ?? [],
      ...(plan.thingTypeName ? { thingTypeName: plan.thingTypeName } : {}),
      principals: [],
    };
  const next: ThingRecord = structuredClone(existing);
  const apply = (field: keyof typeof plan.overrideSettings, differs: boolean, replace: () => void, merge: () => void) => {
    const mode: Override = plan.overrideSettings[field] ?? 'DO_NOTHING';
    if (mode === 'FAIL' && differs) throw new Rejection(409, 'ResourceConflict', `thing ${plan.thingName} exists with a different ${field} (OverrideSettings FAIL)`);
    if (mode === 'REPLACE') replace();
    if (mode === 'MERGE') merge();
  };
  if (plan.attributes) {
    const attributes = plan.attributes;
    const differs = JSON.stringify(Object.entries(existing.attributes).sort()) !== JSON.stringify(Object.entries(attributes).sort());
    apply('AttributePayload', differs, () => (next.attributes = { ...attributes }), () => (next.attributes = { ...existing.attributes, ...attributes }));
  }
  if (plan.thingGroups) {
    const groups = plan.thingGroups;
    apply('ThingGroups', !sameList(existing.thingGroups, groups), () => (next.thingGroups = [...groups]), () => (next.thingGroups = [...new Set([...existing.thingGroups, ...groups])]));
  }
  if (plan.thingTypeName) {
    const type = plan.thingTypeName;
    apply('ThingTypeName', existing.thingTypeName !== type, () => (next.thingTypeName = type), () => (next.thingTypeName = type));
  }
  return next;
}
