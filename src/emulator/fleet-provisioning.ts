// The fleet-provisioning MQTT API (DESIGN.md "Wire protocol"): turns one request on a reserved
// topic into the one reply for the connection that sent it.
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import { createHash, generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { PRE_PROVISIONING_HOOK_SOURCE } from '../shared/pre-provisioning-hook.ts';
import { accepted, OWNERSHIP_TOKEN_TTL_MS, rejected, type HookEvent, type RejectedResponse } from '../shared/protocol.ts';
import { arn, EMULATOR_ACCOUNT_ID, EMULATOR_REGION } from './arn.ts';
import { CsrError, type CertificateAuthority } from './ca.ts';
import type { FaultStep, ProvisioningTemplateInput } from './control-plane.ts';
import type { FaultState } from './faults.ts';
import { createHookRunner, type HookRunner, type HookSdk } from './hook-runner.ts';
import { certificateRecord } from './local-control-plane.ts';
import { parsePolicyDocument } from './policy.ts';
import type { CertificateRecord, Registry, ThingRecord } from './registry.ts';
import { evaluateTemplate, parseTemplate, TemplateError, type Override, type ProvisioningPlan, type Template } from './template-engine.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

export type RequestKind = 'create-keys' | 'create-from-csr' | 'register-thing';

/** Every API exists as /json and /cbor: request and replies in that format. */
export type PayloadFormat = 'json' | 'cbor';

export interface ProvisioningRequest {
  kind: RequestKind;
  format: PayloadFormat;
  /** The request topic; replies go to its /accepted or /rejected. */
  topic: string;
  templateName?: string;
  payload: Buffer;
  clientId: string;
  /** The certificate the requesting connection authenticated with (the claim certificate). */
  certificateId: string;
}

export type ProvisioningReply = { topic: string; payload: object } | { drop: true };

/**
 * Recognises the fleet-provisioning request topics (not their replies), in both payload formats
 * ("Device provisioning MQTT API": "This API supports response buffers in CBOR ... and JSON,
 * depending on the payload-format of the topic").
 */
export function requestKindOf(topic: string): { kind: RequestKind; format: PayloadFormat; templateName?: string } | undefined {
  const certificates = /^\$aws\/certificates\/(create|create-from-csr)\/(json|cbor)$/.exec(topic);
  if (certificates) return { kind: certificates[1] === 'create' ? 'create-keys' : 'create-from-csr', format: certificates[2] as PayloadFormat };
  const register = /^\$aws\/provisioning-templates\/([^/]+)\/provision\/(json|cbor)$/.exec(topic);
  return register ? { kind: 'register-thing', templateName: register[1]!, format: register[2] as PayloadFormat } : undefined;
}

/** A reply payload in the request's format. */
export function encodePayload(format: PayloadFormat, payload: object): Buffer {
  return format === 'cbor' ? Buffer.from(cborEncode(payload)) : Buffer.from(JSON.stringify(payload));
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
  /** Answers the hook's AWS SDK calls (hook-sdk.ts): the emulator's DynamoDB and certificates. */
  hookSdk?: HookSdk;
  log: (line: string) => void;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const stepOf = (kind: RequestKind): FaultStep => (kind === 'register-thing' ? 'register-thing' : 'create-certificate');

/** A stored template, read and parsed once per version: RegisterThing needs it on every request. */
interface ReadTemplate {
  /** As stored: a new version is a new text. */
  json: string;
  input: ProvisioningTemplateInput;
  /** The parsed body, or why it does not parse (reported where the body is evaluated, after the hook). */
  body: Template | TemplateError;
  /** Identifies its hook's code and environment: another one starts another warm hook. */
  hookKey: string;
}

function readTemplate(json: string): ReadTemplate {
  const input = JSON.parse(json) as ProvisioningTemplateInput;
  let body: Template | TemplateError;
  try {
    body = parseTemplate(input.templateBody);
  } catch (error) {
    if (!(error instanceof TemplateError)) throw error;
    body = error;
  }
  const hook = input.preProvisioningHook;
  return { json, input, body, hookKey: JSON.stringify([hook?.source ?? PRE_PROVISIONING_HOOK_SOURCE, hook?.env ?? {}]) };
}

export class FleetProvisioning {
  /** One warm hook per template version, as Lambda keeps a container warm. */
  readonly #hooks = new Map<string, { key: string; run: HookRunner }>();
  /** The last version read of each template (about 10 KB of JSON with the hook's source). */
  readonly #templates = new Map<string, ReadTemplate>();

  constructor(private readonly deps: FleetProvisioningDeps) {}

  #template(templateName: string): ReadTemplate | undefined {
    const json = this.deps.registry.getTemplateJson(templateName);
    if (json === undefined) {
      this.#templates.delete(templateName);
      return undefined;
    }
    let read = this.#templates.get(templateName);
    if (read?.json !== json) this.#templates.set(templateName, (read = readTemplate(json)));
    return read;
  }

  #hook(templateName: string, hook: { source?: string; env?: Record<string, string> }, key: string): HookRunner {
    const source = hook.source ?? PRE_PROVISIONING_HOOK_SOURCE;
    const cached = this.#hooks.get(templateName);
    if (cached?.key === key) return cached.run;
    void cached?.run.close();
    const run = createHookRunner(source, {
      env: hook.env,
      timeoutMs: this.deps.hookTimeoutMs,
      sdk: this.deps.hookSdk,
      log: (line) => this.deps.log(`hook ${templateName}: ${line}`),
    });
    this.#hooks.set(templateName, { key, run });
    return run;
  }

  /** Ends the warm hook workers. */
  async close(): Promise<void> {
    await Promise.all([...this.#hooks.values()].map((h) => h.run.close()));
    this.#hooks.clear();
  }

  async handle(request: ProvisioningRequest): Promise<ProvisioningReply> {
    const { faults } = this.deps;
    // The request is lost with the connection: the device must retry from scratch.
    if (faults.takeDrop(stepOf(request.kind))) return { drop: true };
    let reply: ProvisioningReply;
    try {
      if (faults.takeThrottle()) throw new Rejection(429, 'ThrottlingException', 'Rate exceeded');
      const body = parsePayload(request);
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
  sweepExpired(): Promise<number> {
    const now = this.deps.now();
    return this.deps.registry.write((tx) => tx.deleteExpiredPending(now));
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
    const record = certificateRecord(certificatePem, 'PENDING_ACTIVATION', now(), {
      claimCertificateId: request.certificateId,
      ownership: { tokenSha256: sha256(token), expiresAt: now() + OWNERSHIP_TOKEN_TTL_MS },
    });
    await registry.write((tx) => tx.putCertificate(record));
    this.deps.log(`fleet provisioning: certificate ${record.certificateId} created for client ${request.clientId}`);
    return {
      certificateId: record.certificateId,
      certificatePem,
      ...(privateKey ? { privateKey } : {}),
      certificateOwnershipToken: token,
    };
  }

  /** The pending certificate a token proves ownership of; an expired one is deleted, as AWS does. */
  async #pendingCertificate(token: unknown): Promise<CertificateRecord> {
    if (typeof token !== 'string' || token === '')
      throw new Rejection(400, 'InvalidCertificateOwnershipToken', 'Certificate ownership token cannot be empty.');
    const cert = this.deps.registry.certificateByOwnershipToken(sha256(token));
    if (cert && cert.ownership!.expiresAt <= this.deps.now()) await this.sweepExpired();
    if (!cert || cert.ownership!.expiresAt <= this.deps.now())
      throw new Rejection(400, 'InvalidCertificateOwnershipToken', 'Certificate ownership token is not valid or has expired.');
    return cert;
  }

  private async registerThing(request: ProvisioningRequest, body: Record<string, unknown>) {
    const { registry } = this.deps;
    const cert = await this.#pendingCertificate(body.certificateOwnershipToken);
    const parameters = body.parameters ?? {};
    if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters) || Object.values(parameters).some((v) => typeof v !== 'string'))
      throw new Rejection(400, 'InvalidPayload', 'parameters must map names to strings');
    const templateName = request.templateName!;
    const read = this.#template(templateName);
    if (!read || !read.input.enabled) throw new Rejection(404, 'ResourceNotFound', `provisioning template ${templateName} does not exist or is disabled`);
    const templateArn = arn.template(templateName);

    let given = { ...(parameters as Record<string, string>) };
    if (this.deps.faults.current.denyHook) throw new Rejection(403, 'ACCESS_DENIED', 'the pre-provisioning hook denied provisioning');
    const hook = read.input.preProvisioningHook;
    if (hook) {
      const event: HookEvent = {
        claimCertificateId: request.certificateId,
        certificateId: cert.certificateId,
        certificatePem: cert.certificatePem,
        templateArn,
        clientId: request.clientId,
        parameters: given,
      };
      const outcome = await this.#hook(templateName, hook, read.hookKey)(event);
      if (!outcome.ok) throw new Rejection(403, 'ACCESS_DENIED', `the pre-provisioning hook failed: ${outcome.message}`);
      if (!outcome.result.allowProvisioning) throw new Rejection(403, 'ACCESS_DENIED', 'the pre-provisioning hook denied provisioning');
      given = { ...given, ...outcome.result.parameterOverrides };
    }

    let plan: ProvisioningPlan;
    try {
      if (read.body instanceof TemplateError) throw read.body;
      plan = evaluateTemplate(read.body, given, {
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
    const policies = plan.policies.map((p) => {
      if ('policyName' in p) return { name: p.policyName };
      try {
        parsePolicyDocument(p.policyDocument);
      } catch (error) {
        throw new Rejection(400, 'InvalidParameters', `template policy document: ${(error as Error).message}`);
      }
      return { name: `${templateName}-${sha256(p.policyDocument).slice(0, 16)}`, document: p.policyDocument };
    });

    // One atomic change, checked against the registry as it is now (the hook ran in between: the
    // token may have been used meanwhile); the reply waits until it is durable.
    const thing = await registry.write((tx) => {
      const current = tx.getCertificate(cert.certificateId);
      if (current?.ownership?.tokenSha256 !== cert.ownership!.tokenSha256)
        throw new Rejection(400, 'InvalidCertificateOwnershipToken', 'Certificate ownership token is not valid or has expired.');
      for (const p of policies) if (!p.document && !tx.getPolicy(p.name)) throw new Rejection(400, 'InvalidParameters', `policy ${p.name} does not exist`);
      let thing: ThingRecord | undefined;
      if (plan.thing) {
        for (const group of plan.thing.thingGroups ?? []) if (!tx.hasThingGroup(group)) throw new Rejection(400, 'InvalidParameters', `thing group ${group} does not exist`);
        thing = mergeThing(tx.getThing(plan.thing.thingName), plan.thing);
        if (!thing.principals.includes(cert.certificateId)) thing.principals.push(cert.certificateId);
      }
      for (const p of policies) {
        if (p.document && !tx.getPolicy(p.name)) tx.putPolicy({ policyName: p.name, policyDocument: p.document });
        tx.attachPolicy(cert.certificateId, p.name);
      }
      if (thing) tx.putThing(thing);
      tx.setCertificateStatus(cert.certificateId, plan.certificate?.status ?? 'ACTIVE');
      return thing;
    });
    this.deps.log(`fleet provisioning: registered ${thing ? `thing ${thing.thingName}` : 'no thing'} with certificate ${cert.certificateId}`);
    return { ...(thing ? { thingName: thing.thingName } : {}), deviceConfiguration: plan.deviceConfiguration };
  }
}

function parsePayload({ kind, format, payload }: ProvisioningRequest): Record<string, unknown> {
  // "Publish a message on $aws/certificates/create/payload-format with an empty message payload."
  if (kind === 'create-keys' && payload.length === 0) return {};
  let body: unknown;
  try {
    body = format === 'cbor' ? cborDecode(payload) : JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Rejection(400, 'InvalidPayload', `the payload is not valid ${format === 'cbor' ? 'CBOR' : 'JSON'}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array)
    throw new Rejection(400, 'InvalidPayload', `the payload must be a ${format === 'cbor' ? 'CBOR map' : 'JSON object'}`);
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
