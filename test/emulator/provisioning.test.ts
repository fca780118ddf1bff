// Fleet provisioning end to end: real TLS on loopback, real mqtt.js clients, openssl-made CSRs.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TOPICS } from '../../src/shared/protocol.ts';
import {
  CLAIM_POLICY,
  CLIENT_ID_PREFIX,
  claimPolicyDocument,
  closed,
  connectMqtt,
  fleetRequest,
  nextMessage,
  startTestEmulator,
  type TestEmulator,
} from '../helpers/emulator.ts';
import { makeCsr, type KeySpec } from './csr.ts';

let ids = 0;
const clientId = () => `${CLIENT_ID_PREFIX}${process.pid}-${ids++}`;

async function claimClient(t: TestEmulator, protocolVersion: 4 | 5 = 5) {
  return connectMqtt(t.emulator, t.claim, { clientId: clientId(), protocolVersion });
}

/** A second template, reachable by the claim policy, without the hook unless given. */
async function addTemplate(t: TestEmulator, templateName: string, body: object, hookSource?: string) {
  await t.emulator.control.updatePolicy(CLAIM_POLICY, claimPolicyDocument('*'));
  await t.emulator.control.createProvisioningTemplate({
    templateName,
    templateBody: JSON.stringify(body),
    enabled: true,
    provisioningRoleArn: 'arn:aws:iam::000000000000:role/x',
    ...(hookSource ? { preProvisioningHook: { source: hookSource } } : {}),
  });
}

const simpleTemplate = (thingName: object | string = { Ref: 'Serial' }) => ({
  Parameters: { Serial: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
  Resources: {
    thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: thingName } },
    certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' } },
  },
});

function tamperSignature(csrPem: string): string {
  const b64 = csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  der[der.length - 3] = der[der.length - 3]! ^ 0x01;
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

async function createFromCsr(t: TestEmulator, client: Awaited<ReturnType<typeof claimClient>>, spec: KeySpec = 'ec-p256') {
  const { csrPem, keyPem } = makeCsr(spec);
  const reply = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: csrPem });
  expect(reply.accepted, JSON.stringify(reply.body)).toBe(true);
  return { ...reply.body, keyPem } as { certificateId: string; certificatePem: string; certificateOwnershipToken: string; keyPem: string };
}

describe('CreateCertificateFromCsr + RegisterThing', () => {
  it('provisions; the device then connects with its new certificate as its thing name', async () => {
    const t = await startTestEmulator();
    const claim = await claimClient(t);
    const created = await createFromCsr(t, claim);
    expect(created.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(new X509Certificate(created.certificatePem).checkPrivateKey(createPrivateKey(created.keyPem))).toBe(true);
    expect(new X509Certificate(created.certificatePem).verify(new X509Certificate(t.emulator.caPem).publicKey)).toBe(true);
    expect(await t.emulator.control.describeCertificate(created.certificateId)).toMatchObject({ status: 'PENDING_ACTIVATION', claimCertificateId: t.claim.certificateId });

    const registered = await fleetRequest(claim, TOPICS.registerThing(t.templateName), {
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { DeviceId: 'AA:BB:CC:DD:EE:01' },
    });
    expect(registered).toMatchObject({ accepted: true, body: { thingName: 'fp-aabbccddee01', deviceConfiguration: { thingNamePrefix: 'fp-' } } });
    expect(await t.emulator.control.describeCertificate(created.certificateId)).toMatchObject({ status: 'ACTIVE' });
    expect(await t.emulator.control.listAttachedPolicies(created.certificateId)).toEqual(['fp-test-device-policy']);
    expect(await t.emulator.control.describeThing('fp-aabbccddee01')).toMatchObject({
      attributes: { deviceId: 'aabbccddee01' },
      principals: [expect.stringMatching(new RegExp(`:cert/${created.certificateId}$`))],
    });

    const device = await connectMqtt(t.emulator, { certPem: created.certificatePem, keyPem: created.keyPem }, { clientId: 'fp-aabbccddee01' });
    await device.subscribeAsync('things/fp-aabbccddee01/echo', { qos: 1 });
    const message = nextMessage(device, 'things/fp-aabbccddee01/echo');
    await device.publishAsync('things/fp-aabbccddee01/echo', 'hello', { qos: 1 });
    expect(String(await message)).toBe('hello');
  });

  it.each<KeySpec>(['ec-p384', 'rsa-2048'])('accepts a %s CSR', async (spec) => {
    const t = await startTestEmulator();
    const created = await createFromCsr(t, await claimClient(t), spec);
    expect(created.certificateId).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['a CSR with a bad signature', () => ({ certificateSigningRequest: tamperSignature(makeCsr('ec-p256').csrPem) }), 'signature'],
    ['an RSA-1024 key', () => ({ certificateSigningRequest: makeCsr('rsa-1024').csrPem }), '1024'],
    ['an EC P-521 key', () => ({ certificateSigningRequest: makeCsr('ec-p521').csrPem }), 'secp521r1'],
    ['an ed25519 key', () => ({ certificateSigningRequest: makeCsr('ed25519').csrPem }), 'ed25519'],
    ['no CSR', () => ({}), 'certificateSigningRequest'],
    ['a payload that is not JSON', () => '{"certificateSigningRequest": ', 'JSON'],
  ] as Array<[string, () => unknown, string]>)('rejects %s with 400', async (_, body, mentions) => {
    const t = await startTestEmulator();
    const reply = await fleetRequest(await claimClient(t), TOPICS.createFromCsr, body());
    expect(reply.accepted).toBe(false);
    expect(reply.body).toMatchObject({ statusCode: 400, errorCode: expect.stringMatching(/^Invalid/) });
    expect(reply.body.errorMessage).toContain(mentions);
    expect(Object.keys(reply.body).sort()).toEqual(['errorCode', 'errorMessage', 'statusCode']);
  });
});

describe('CreateKeysAndCertificate', () => {
  it('returns a key pair and certificate; RegisterThing works over MQTT 3.1.1', async () => {
    const t = await startTestEmulator();
    const claim = await claimClient(t, 4);
    const created = await fleetRequest(claim, TOPICS.createKeys, {});
    expect(created.accepted).toBe(true);
    const { certificatePem, privateKey, certificateOwnershipToken } = created.body;
    expect(new X509Certificate(certificatePem).checkPrivateKey(createPrivateKey(privateKey))).toBe(true);
    const registered = await fleetRequest(claim, TOPICS.registerThing(t.templateName), { certificateOwnershipToken, parameters: { DeviceId: '001122334455' } });
    expect(registered.body.thingName).toBe('fp-001122334455');
    await connectMqtt(t.emulator, { certPem: certificatePem, keyPem: privateKey }, { clientId: 'fp-001122334455', protocolVersion: 4 });
  });
});

describe('RegisterThing rejections', () => {
  it('an unknown token, then a reused one', async () => {
    const t = await startTestEmulator();
    const claim = await claimClient(t);
    const unknown = await fleetRequest(claim, TOPICS.registerThing(t.templateName), { certificateOwnershipToken: 'bm90LWEtdG9rZW4=', parameters: { DeviceId: 'aabbccddeeff' } });
    expect(unknown.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' });
    const empty = await fleetRequest(claim, TOPICS.registerThing(t.templateName), { parameters: {} });
    expect(empty.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' });

    const created = await createFromCsr(t, claim);
    const request = { certificateOwnershipToken: created.certificateOwnershipToken, parameters: { DeviceId: 'aabbccddeeff' } };
    expect((await fleetRequest(claim, TOPICS.registerThing(t.templateName), request)).accepted).toBe(true);
    const reused = await fleetRequest(claim, TOPICS.registerThing(t.templateName), request);
    expect(reused.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' });
  });

  it('an unknown template', async () => {
    const t = await startTestEmulator();
    await t.emulator.control.updatePolicy(CLAIM_POLICY, claimPolicyDocument('*'));
    const claim = await claimClient(t);
    const created = await createFromCsr(t, claim);
    const reply = await fleetRequest(claim, TOPICS.registerThing('no-such-template'), { certificateOwnershipToken: created.certificateOwnershipToken });
    expect(reply.body).toMatchObject({ statusCode: 404 });
    expect(reply.body.errorMessage).toContain('no-such-template');
  });

  it('every version of a template: its new body, then disabled, then deleted', async () => {
    // RegisterThing keeps the template it read parsed: each change must reach the next request.
    const t = await startTestEmulator();
    await addTemplate(t, 'changing', simpleTemplate());
    const claim = await claimClient(t);
    const register = async (serial: string) => {
      const created = await createFromCsr(t, claim);
      return (await fleetRequest(claim, TOPICS.registerThing('changing'), { certificateOwnershipToken: created.certificateOwnershipToken, parameters: { Serial: serial } })).body;
    };
    const version = (thingName: object, enabled = true) => ({
      templateName: 'changing',
      templateBody: JSON.stringify(simpleTemplate(thingName)),
      enabled,
      provisioningRoleArn: 'arn:aws:iam::000000000000:role/x',
    });
    expect((await register('s1')).thingName).toBe('s1');
    await t.emulator.control.updateProvisioningTemplate(version({ 'Fn::Join': ['', ['v2-', { Ref: 'Serial' }]] }));
    expect((await register('s2')).thingName).toBe('v2-s2');
    await t.emulator.control.updateProvisioningTemplate(version({ Ref: 'Serial' }, false));
    expect(await register('s3')).toMatchObject({ statusCode: 404 });
    await t.emulator.control.deleteProvisioningTemplate('changing');
    expect(await register('s4')).toMatchObject({ statusCode: 404 });
  });

  it('a missing parameter and an unknown intrinsic, naming them', async () => {
    const t = await startTestEmulator();
    await addTemplate(t, 'plain', simpleTemplate());
    await t.emulator.control.updatePolicy(CLAIM_POLICY, claimPolicyDocument('*'));
    await addTemplate(t, 'bad-fn', simpleTemplate({ 'Fn::Base64': 'x' }));
    const claim = await claimClient(t);
    const a = await createFromCsr(t, claim);
    const missing = await fleetRequest(claim, TOPICS.registerThing('plain'), { certificateOwnershipToken: a.certificateOwnershipToken, parameters: {} });
    expect(missing.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidParameters', errorMessage: expect.stringContaining('Serial') });
    const unknownFn = await fleetRequest(claim, TOPICS.registerThing('bad-fn'), { certificateOwnershipToken: a.certificateOwnershipToken, parameters: { Serial: 's1' } });
    expect(unknownFn.body).toMatchObject({ statusCode: 400, errorMessage: expect.stringContaining('Fn::Base64') });
    // A rejected registration leaves the token usable.
    const ok = await fleetRequest(claim, TOPICS.registerThing('plain'), { certificateOwnershipToken: a.certificateOwnershipToken, parameters: { Serial: 's1' } });
    expect(ok.body.thingName).toBe('s1');
  });

  it('the hook denies a device id that is not a MAC address (403)', async () => {
    const t = await startTestEmulator();
    const claim = await claimClient(t);
    const created = await createFromCsr(t, claim);
    const reply = await fleetRequest(claim, TOPICS.registerThing(t.templateName), { certificateOwnershipToken: created.certificateOwnershipToken, parameters: { DeviceId: 'serial-1' } });
    expect(reply.body).toMatchObject({ statusCode: 403, errorCode: 'ACCESS_DENIED' });
    expect(await t.emulator.control.describeThing('fp-serial-1')).toBeUndefined();
  });

  it('a hook that times out or throws is rejected', async () => {
    const t = await startTestEmulator({ hookTimeoutMs: 300 });
    await addTemplate(t, 'slow', simpleTemplate(), 'exports.handler = () => new Promise(() => {})');
    await addTemplate(t, 'broken', simpleTemplate(), 'exports.handler = async () => { throw new Error("kaput") }');
    const claim = await claimClient(t);
    const created = await createFromCsr(t, claim);
    const body = { certificateOwnershipToken: created.certificateOwnershipToken, parameters: { Serial: 's' } };
    const slow = await fleetRequest(claim, TOPICS.registerThing('slow'), body);
    expect(slow.body).toMatchObject({ statusCode: 403, errorMessage: expect.stringContaining('300 ms') });
    const broken = await fleetRequest(claim, TOPICS.registerThing('broken'), body);
    expect(broken.body).toMatchObject({ statusCode: 403, errorMessage: expect.stringContaining('kaput') });
  });

  it('an expired token (1 hour): rejected, and the unregistered certificate is deleted', async () => {
    let now = Date.now();
    const t = await startTestEmulator({ now: () => now });
    const claim = await claimClient(t);
    const kept = await createFromCsr(t, claim);
    const expired = await createFromCsr(t, claim);
    now += 59 * 60_000;
    expect(await t.emulator.sweepExpired()).toBe(0);
    const ok = await fleetRequest(claim, TOPICS.registerThing(t.templateName), { certificateOwnershipToken: kept.certificateOwnershipToken, parameters: { DeviceId: '0a0b0c0d0e0f' } });
    expect(ok.accepted).toBe(true);
    now += 2 * 60_000;
    const late = await fleetRequest(claim, TOPICS.registerThing(t.templateName), { certificateOwnershipToken: expired.certificateOwnershipToken, parameters: { DeviceId: '0a0b0c0d0e0e' } });
    expect(late.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidCertificateOwnershipToken' });
    expect(await t.emulator.control.describeCertificate(expired.certificateId)).toBeUndefined();
    expect(await t.emulator.control.describeCertificate(kept.certificateId)).toMatchObject({ status: 'ACTIVE' });
  });
});

describe('templates with thing groups and OverrideSettings', () => {
  it('re-provisioning a device merges attributes and keeps both certificates; groups must exist', async () => {
    const t = await startTestEmulator();
    const body = {
      Parameters: { Serial: { Type: 'String' }, Fw: { Type: 'String', Default: '1' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
      Resources: {
        thing: {
          Type: 'AWS::IoT::Thing',
          Properties: { ThingName: { Ref: 'Serial' }, AttributePayload: { fw: { Ref: 'Fw' } }, ThingGroups: ['fleet'] },
          OverrideSettings: { AttributePayload: 'MERGE', ThingGroups: 'MERGE' },
        },
        certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' } } },
      },
    };
    await addTemplate(t, 'grouped', body);
    const claim = await claimClient(t);
    const first = await createFromCsr(t, claim);
    const noGroup = await fleetRequest(claim, TOPICS.registerThing('grouped'), { certificateOwnershipToken: first.certificateOwnershipToken, parameters: { Serial: 'g1' } });
    expect(noGroup.body).toMatchObject({ statusCode: 400, errorMessage: expect.stringContaining('fleet') });
    await t.emulator.control.createThingGroup('fleet');
    expect((await fleetRequest(claim, TOPICS.registerThing('grouped'), { certificateOwnershipToken: first.certificateOwnershipToken, parameters: { Serial: 'g1' } })).accepted).toBe(true);
    const second = await createFromCsr(t, claim);
    expect((await fleetRequest(claim, TOPICS.registerThing('grouped'), { certificateOwnershipToken: second.certificateOwnershipToken, parameters: { Serial: 'g1', Fw: '2' } })).accepted).toBe(true);
    const thing = await t.emulator.control.describeThing('g1');
    expect(thing).toMatchObject({ attributes: { fw: '2' }, thingGroups: ['fleet'] });
    expect(thing!.principals).toHaveLength(2);
    expect(await t.emulator.control.listThingsInThingGroup('fleet')).toEqual(['g1']);
  });
});

describe('fault injection', () => {
  it('throttles N requests with 429, then answers', async () => {
    const t = await startTestEmulator();
    await t.emulator.control.setFaults({ throttle: 2 });
    const claim = await claimClient(t);
    const body = { certificateSigningRequest: makeCsr('ec-p256').csrPem };
    for (let i = 0; i < 2; i++) expect((await fleetRequest(claim, TOPICS.createFromCsr, body)).body).toMatchObject({ statusCode: 429, errorCode: 'ThrottlingException' });
    expect((await fleetRequest(claim, TOPICS.createFromCsr, body)).accepted).toBe(true);
  });

  it('delays replies', async () => {
    const t = await startTestEmulator();
    await t.emulator.control.setFaults({ delayMs: 400 });
    const claim = await claimClient(t);
    const started = performance.now();
    await createFromCsr(t, claim);
    expect(performance.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('drops the connection once at a step, without replying', async () => {
    const t = await startTestEmulator();
    await t.emulator.control.setFaults({ dropAfter: 'create-certificate' });
    const claim = await claimClient(t);
    const gone = closed(claim);
    let replied = false;
    claim.on('message', () => (replied = true));
    await claim.subscribeAsync([`${TOPICS.createFromCsr}/accepted`, `${TOPICS.createFromCsr}/rejected`], { qos: 1 });
    claim.publish(TOPICS.createFromCsr, JSON.stringify({ certificateSigningRequest: makeCsr('ec-p256').csrPem }), { qos: 1 });
    await gone;
    expect(replied).toBe(false);
    // Once only: the next connection provisions.
    await createFromCsr(t, await claimClient(t));
  });

  it('drops at CONNECT, and denies in the hook, on request', async () => {
    const t = await startTestEmulator();
    await t.emulator.control.setFaults({ dropAfter: 'connect', denyHook: true });
    await expect(claimClient(t)).rejects.toThrow();
    const claim = await claimClient(t);
    const created = await createFromCsr(t, claim);
    const reply = await fleetRequest(claim, TOPICS.registerThing(t.templateName), { certificateOwnershipToken: created.certificateOwnershipToken, parameters: { DeviceId: 'aabbccddeeff' } });
    expect(reply.body).toMatchObject({ statusCode: 403, errorCode: 'ACCESS_DENIED' });
  });
});
