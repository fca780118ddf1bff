// The pre-provisioning hook exactly as the Lambda runs it: the shared source in a fresh context,
// with Node's require. Only the AWS SDK is mocked, and every DynamoDB and IoT call it makes is
// asserted with its exact input (conditions included).
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createCsr } from '../../src/agent/csr.ts';
import { makeClaimKey } from '../../src/cloud/claim.ts';
import { CertificateAuthority, certificateIdOf, createCa } from '../../src/emulator/ca.ts';
import { DEVICE_ID_PARAMETER, hookEnvironment, HOOK_ENV, PRE_PROVISIONING_HOOK_SOURCE } from '../../src/shared/pre-provisioning-hook.ts';

// The hook is CommonJS and requires the SDK's CommonJS build: mock those very classes.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const require = createRequire(import.meta.url);
const sdk = require('@aws-sdk/client-dynamodb') as typeof import('@aws-sdk/client-dynamodb');
const iotSdk = require('@aws-sdk/client-iot') as typeof import('@aws-sdk/client-iot');
const ddb = mockClient(sdk.DynamoDBClient);
const iot = mockClient(iotSdk.IoTClient);

type Result = { allowProvisioning: boolean; parameterOverrides?: Record<string, string> };
type Handler = (event: unknown) => Promise<Result>;

function loadHook(env: Record<string, string> = {}): { handler: Handler; logs: string[] } {
  const module = { exports: {} as { handler?: Handler } };
  const logs: string[] = [];
  vm.runInNewContext(PRE_PROVISIONING_HOOK_SOURCE, {
    module,
    exports: module.exports,
    require,
    setTimeout,
    // A global in Lambda's Node.js runtimes, as in the emulator's hook runner.
    Buffer,
    process: { env: { [HOOK_ENV.parameter]: DEVICE_ID_PARAMETER, ...env } },
    console: { log: (line: string) => logs.push(line) },
  });
  return { handler: module.exports.handler!, logs };
}

const ca = new CertificateAuthority(createCa());
function deviceCertificate() {
  const key = makeClaimKey('device');
  const certificatePem = ca.issueFromCsr(key.csrPem, new Date());
  return { csrPem: key.csrPem, certificatePem, certificateId: certificateIdOf(certificatePem) };
}
/** A second certificate for the same key, as after a lost RegisterThing reply. */
const sameKeyCertificate = (csrPem: string) => {
  const certificatePem = ca.issueFromCsr(csrPem, new Date(Date.now() + 1000));
  return { certificatePem, certificateId: certificateIdOf(certificatePem) };
};
const keyHash = (pem: string) => {
  const { X509Certificate } = require('node:crypto') as typeof import('node:crypto');
  return createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
};

const event = (deviceId: unknown, cert = { certificateId: 'cert', certificatePem: '-----BEGIN CERTIFICATE-----' }) => ({
  claimCertificateId: 'claim',
  certificateId: cert.certificateId,
  certificatePem: cert.certificatePem,
  templateArn: 'arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/fp-yocto-provisioning',
  clientId: 'fleetprov-x',
  parameters: { [DEVICE_ID_PARAMETER]: deviceId },
});

const TABLE = 'fp-yocto-devices';
const env = (settings: Partial<Parameters<typeof hookEnvironment>[0]> = {}, inFlightMs = 50) => ({
  ...hookEnvironment({ kind: 'mac', table: TABLE, allowList: true, oneIdentity: true, templateParameters: ['model'], ...settings }),
  [HOOK_ENV.inFlightMs]: String(inFlightMs),
});
const ISO = expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/);
const conditionFailed = (Item?: Record<string, unknown>) => new sdk.ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {}, ...(Item ? { Item: Item as never } : {}) });
const updates = () => ddb.commandCalls(sdk.UpdateItemCommand).map((c) => c.args[0].input);

beforeEach(() => {
  ddb.reset();
  iot.reset();
});

describe('pre-provisioning hook: the device id', () => {
  const { handler: hook } = loadHook();

  it.each([
    'aa:bb:cc:dd:ee:0f',
    'AA:BB:CC:DD:EE:0F',
    'aa-bb-cc-dd-ee-0f',
    'AA-BB-CC-DD-EE-0F',
    'aa_bb_cc_dd_ee_0f',
    'AA_BB_CC_DD_EE_0F',
    'aabbccddee0f',
    'AABBCCDDEE0F',
  ])('accepts %s and canonicalises it', async (mac) => {
    expect(await hook(event(mac))).toEqual({ allowProvisioning: true, parameterOverrides: { DeviceId: 'aabbccddee0f' } });
  });

  it.each([
    ['mixed separators', 'aa:bb-cc:dd:ee:0f'],
    ['mixed separators 2', 'aa_bb_cc_dd_ee:0f'],
    ['11 digits', 'aabbccddee0'],
    ['13 digits', 'aabbccddee0f1'],
    ['non-hex', 'aabbccddeegg'],
    ['non-hex separated', 'aa:bb:cc:dd:ee:zz'],
    ['empty', ''],
    ['spaces', ' aabbccddee0f'],
    ['dots', 'aabb.ccdd.ee0f'],
    ['number', 123456789012],
    ['null', null],
    ['missing', undefined],
  ])('rejects %s', async (_label, value) => {
    expect(await hook(event(value))).toEqual({ allowProvisioning: false });
  });

  it.each([
    ['ThingNamePrefix', { ThingNamePrefix: 'victim-' }],
    ['ThingName', { ThingName: 'victim-aabbccddee0f' }],
    ['a declared attribute', { model: 'x1' }],
    ['any other name', { Location: 'Seattle' }],
  ])('refuses a request that also sends %s: device input sets only DeviceId (issue 12, defect 4)', async (_label, extra) => {
    const e = event('aabbccddee0f');
    expect(await hook({ ...e, parameters: { ...e.parameters, ...extra } })).toEqual({ allowProvisioning: false });
  });

  it('rejects an event without parameters', async () => {
    expect(await hook({})).toEqual({ allowProvisioning: false });
  });

  it('takes the kind of id the stack names: machine-id, or a serial made thing-name safe', async () => {
    const machine = loadHook({ [HOOK_ENV.kind]: 'machine-id' }).handler;
    expect(await machine(event('0123456789ABCDEF0123456789abcdef'))).toMatchObject({ parameterOverrides: { DeviceId: '0123456789abcdef0123456789abcdef' } });
    expect(await machine(event('aabbccddee0f'))).toEqual({ allowProvisioning: false });
    const serial = loadHook({ [HOOK_ENV.kind]: 'serial' }).handler;
    expect(await serial(event('SN 2024/0001'))).toMatchObject({ parameterOverrides: { DeviceId: 'sn-2024-0001' } });
    expect(await serial(event('To be filled by O.E.M.'))).toEqual({ allowProvisioning: false });
    expect(ddb.calls()).toHaveLength(0);
  });

  it('with the allow-list and one identity off, never touches the table', async () => {
    const { handler } = loadHook(env({ allowList: false, oneIdentity: false }));
    expect(await handler(event('aabbccddee0f'))).toEqual({ allowProvisioning: true, parameterOverrides: { DeviceId: 'aabbccddee0f' } });
    expect(ddb.calls()).toHaveLength(0);
  });
});

describe('pre-provisioning hook: the device table', () => {
  it('approves a listed id in one conditional UpdateItem, recording the certificate and its key, and passes declared attributes', async () => {
    const cert = deviceCertificate();
    ddb.on(sdk.UpdateItemCommand).resolves({
      Attributes: { deviceId: { S: 'aabbccddee0f' }, attributes: { M: { model: { S: 'x1' }, batch: { S: '7' } } } },
    });
    const { handler, logs } = loadHook(env());
    // batch is not a parameter of the template: it stays in the table.
    expect(await handler(event('AA:BB:CC:DD:EE:0F', cert))).toEqual({ allowProvisioning: true, parameterOverrides: { model: 'x1', DeviceId: 'aabbccddee0f' } });
    expect(updates()).toEqual([
      {
        TableName: TABLE,
        Key: { deviceId: { S: 'aabbccddee0f' } },
        UpdateExpression: 'SET certificateId = :cert, approvedAt = :now, claimCertificateId = :claim, publicKeySha256 = :key',
        ConditionExpression: 'attribute_exists(allowedAt) AND (attribute_not_exists(certificateId) OR certificateId = :cert OR publicKeySha256 = :key)',
        ExpressionAttributeValues: { ':cert': { S: cert.certificateId }, ':now': { S: ISO }, ':claim': { S: 'claim' }, ':key': { S: keyHash(cert.certificatePem) } },
        ReturnValues: 'ALL_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    ]);
    expect(iot.calls()).toHaveLength(0);
    expect(JSON.parse(logs.at(-1)!)).toEqual({ deviceId: 'aabbccddee0f', certificateId: cert.certificateId, allow: true, reason: null });
    expect(logs.join('\n')).not.toContain('BEGIN CERTIFICATE');
  });

  it('without the allow-list, only one identity is checked (and the item is created on first provisioning)', async () => {
    ddb.on(sdk.UpdateItemCommand).resolves({ Attributes: { deviceId: { S: 'aabbccddee0f' } } });
    const { handler } = loadHook(env({ allowList: false }));
    expect((await handler(event('aabbccddee0f'))).allowProvisioning).toBe(true);
    // No key for a certificate that does not parse: the condition has no key clause.
    expect(updates()[0]).toMatchObject({
      UpdateExpression: 'SET certificateId = :cert, approvedAt = :now, claimCertificateId = :claim',
      ConditionExpression: '(attribute_not_exists(certificateId) OR certificateId = :cert)',
    });
  });

  it('with one identity off, checks the allow-list and still records the certificate', async () => {
    ddb.on(sdk.UpdateItemCommand).resolves({ Attributes: { deviceId: { S: 'aabbccddee0f' } } });
    const { handler } = loadHook(env({ oneIdentity: false }));
    expect((await handler(event('aabbccddee0f'))).allowProvisioning).toBe(true);
    expect(updates()[0]!.ConditionExpression).toBe('attribute_exists(allowedAt)');
  });

  it('refuses an id that is not on the allow-list, and writes nothing for it', async () => {
    ddb.on(sdk.UpdateItemCommand).rejects(conditionFailed());
    const { handler, logs } = loadHook(env());
    expect(await handler(event('001122334455'))).toEqual({ allowProvisioning: false });
    expect(updates()).toHaveLength(1);
    expect(JSON.parse(logs.at(-1)!)).toMatchObject({ deviceId: '001122334455', allow: false, reason: 'device 001122334455 is not on the allow-list' });
  });

  it('refuses a revoked id and records the reason on its item for `devices list`', async () => {
    ddb.on(sdk.UpdateItemCommand).rejectsOnce(conditionFailed({ deviceId: { S: '001122334455' }, revokedAt: { S: '2026-01-02T03:04:05.000Z' } })).resolves({});
    const { handler } = loadHook(env());
    expect(await handler(event('001122334455'))).toEqual({ allowProvisioning: false });
    expect(updates()[1]).toEqual({
      TableName: TABLE,
      Key: { deviceId: { S: '001122334455' } },
      UpdateExpression: 'SET lastRefusal = :reason, lastRefusedAt = :now',
      ConditionExpression: 'attribute_exists(deviceId)',
      ExpressionAttributeValues: { ':reason': { S: 'device 001122334455 was removed from the allow-list on 2026-01-02T03:04:05.000Z' }, ':now': { S: ISO } },
    });
  });

  it.each(['ACTIVE', 'INACTIVE', 'REVOKED'])('refuses a second identity while the recorded certificate is %s, naming the id', async (status) => {
    const recorded = { deviceId: { S: 'aabbccddee0f' }, allowedAt: { S: 'x' }, certificateId: { S: 'first' }, approvedAt: { S: '2026-01-01T00:00:00.000Z' } };
    ddb.on(sdk.UpdateItemCommand).rejectsOnce(conditionFailed(recorded)).resolves({});
    iot.on(iotSdk.DescribeCertificateCommand).resolves({ certificateDescription: { certificateId: 'first', status: status as never } });
    const { handler, logs } = loadHook(env());
    expect(await handler(event('aabbccddee0f', { certificateId: 'second', certificatePem: 'x' }))).toEqual({ allowProvisioning: false });
    expect(iot.commandCalls(iotSdk.DescribeCertificateCommand).map((c) => c.args[0].input)).toEqual([{ certificateId: 'first' }]);
    const reason = `device aabbccddee0f already provisioned with certificate first (${status}) on 2026-01-01T00:00:00.000Z; refused certificate second (run fp-yocto devices reset aabbccddee0f to let it provision again)`;
    expect(JSON.parse(logs.at(-1)!).reason).toBe(reason);
    expect(updates()[1]!.ExpressionAttributeValues![':reason']).toEqual({ S: reason });
  });

  it.each([
    ['never registered (PENDING_ACTIVATION)', { certificateDescription: { status: 'PENDING_ACTIVATION' } }],
    ['deleted by AWS IoT after an hour', new Error('gone')],
  ])('lets a device whose first attempt failed in again when the recorded certificate was %s', async (_label, answer) => {
    const recorded = { deviceId: { S: 'aabbccddee0f' }, allowedAt: { S: 'x' }, certificateId: { S: 'first' }, approvedAt: { S: '2026-01-01T00:00:00.000Z' } };
    ddb.on(sdk.UpdateItemCommand).rejectsOnce(conditionFailed(recorded)).resolves({ Attributes: { deviceId: { S: 'aabbccddee0f' } } });
    if (answer instanceof Error) iot.on(iotSdk.DescribeCertificateCommand).rejects(Object.assign(answer, { name: 'ResourceNotFoundException' }));
    else iot.on(iotSdk.DescribeCertificateCommand).resolves(answer as never);
    const { handler, logs } = loadHook(env());
    expect((await handler(event('aabbccddee0f', { certificateId: 'second', certificatePem: 'x' }))).allowProvisioning).toBe(true);
    // Compare-and-swap: only if the record still names the failed certificate.
    expect(updates()[1]).toEqual({
      TableName: TABLE,
      Key: { deviceId: { S: 'aabbccddee0f' } },
      UpdateExpression: 'SET certificateId = :cert, approvedAt = :now, claimCertificateId = :claim',
      ConditionExpression: 'attribute_exists(allowedAt) AND certificateId = :old',
      ExpressionAttributeValues: { ':cert': { S: 'second' }, ':now': { S: ISO }, ':claim': { S: 'claim' }, ':old': { S: 'first' } },
      ReturnValues: 'ALL_NEW',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    expect(JSON.parse(logs.at(-1)!)).toMatchObject({ allow: true, replaced: 'first' });
  });

  it('refuses when another device took the id between the check and the swap', async () => {
    const recorded = { deviceId: { S: 'aabbccddee0f' }, allowedAt: { S: 'x' }, certificateId: { S: 'first' }, approvedAt: { S: '2026-01-01T00:00:00.000Z' } };
    ddb.on(sdk.UpdateItemCommand).rejectsOnce(conditionFailed(recorded)).rejectsOnce(conditionFailed(recorded)).resolves({});
    iot.on(iotSdk.DescribeCertificateCommand).resolves({ certificateDescription: { status: 'PENDING_ACTIVATION' } });
    const { handler, logs } = loadHook(env());
    expect(await handler(event('aabbccddee0f', { certificateId: 'second', certificatePem: 'x' }))).toEqual({ allowProvisioning: false });
    expect(JSON.parse(logs.at(-1)!).reason).toBe('another device took id aabbccddee0f at the same moment');
  });

  it('waits for a registration approved a moment ago to finish before judging its certificate', async () => {
    const approvedAt = new Date().toISOString();
    const recorded = { deviceId: { S: 'aabbccddee0f' }, allowedAt: { S: 'x' }, certificateId: { S: 'first' }, approvedAt: { S: approvedAt } };
    ddb.on(sdk.UpdateItemCommand).rejectsOnce(conditionFailed(recorded)).resolves({});
    let askedAt = 0;
    iot.on(iotSdk.DescribeCertificateCommand).callsFake(async () => {
      askedAt = Date.now();
      return { certificateDescription: { status: 'ACTIVE' } };
    });
    const { handler } = loadHook(env({}, 300));
    expect((await handler(event('aabbccddee0f', { certificateId: 'second', certificatePem: 'x' }))).allowProvisioning).toBe(false);
    expect(askedAt).toBeGreaterThanOrEqual(Date.parse(approvedAt) + 300);
  });

  it('lets the same device in with a new certificate for the same key (a lost reply): the condition matches the key', async () => {
    const first = deviceCertificate();
    const second = sameKeyCertificate(first.csrPem);
    expect(keyHash(second.certificatePem)).toBe(keyHash(first.certificatePem));
    ddb.on(sdk.UpdateItemCommand).resolves({ Attributes: { deviceId: { S: 'aabbccddee0f' } } });
    const { handler } = loadHook(env());
    expect((await handler(event('aabbccddee0f', second))).allowProvisioning).toBe(true);
    expect(updates()[0]!.ExpressionAttributeValues![':key']).toEqual({ S: keyHash(first.certificatePem) });
  });

  it("records the SHA-256 of the certificate's SubjectPublicKeyInfo, read from its DER, for RSA and EC keys alike", async () => {
    const keys = [
      generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
      generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey,
      // 4096 bits: the certificate's lengths take two bytes, and the key's.
      generateKeyPairSync('rsa', { modulusLength: 4096 }).privateKey,
    ];
    ddb.on(sdk.UpdateItemCommand).resolves({ Attributes: { deviceId: { S: 'aabbccddee0f' } } });
    for (const key of keys) {
      ddb.resetHistory();
      const certificatePem = ca.issueFromCsr(createCsr(key, 'device'), new Date());
      const { handler } = loadHook(env());
      expect((await handler(event('aabbccddee0f', { certificateId: certificateIdOf(certificatePem), certificatePem }))).allowProvisioning).toBe(true);
      expect(updates()[0]!.ExpressionAttributeValues![':key']).toEqual({ S: keyHash(certificatePem) });
    }
  });

  it('records no key hash for a certificate it cannot read, and still decides on the id', async () => {
    ddb.on(sdk.UpdateItemCommand).resolves({ Attributes: { deviceId: { S: 'aabbccddee0f' } } });
    const { certificatePem, certificateId } = deviceCertificate();
    const der = Buffer.from(certificatePem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    for (const broken of ['x', `-----BEGIN CERTIFICATE-----\n${der.subarray(0, 40).toString('base64')}\n-----END CERTIFICATE-----\n`]) {
      ddb.resetHistory();
      const { handler } = loadHook(env());
      expect((await handler(event('aabbccddee0f', { certificateId, certificatePem: broken }))).allowProvisioning).toBe(true);
      expect(updates()[0]!.ExpressionAttributeValues![':key']).toBeUndefined();
    }
  });

  it('refuses, and says why in the log, when the table cannot be read', async () => {
    ddb.on(sdk.UpdateItemCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' }));
    const { handler, logs } = loadHook(env());
    expect(await handler(event('aabbccddee0f'))).toEqual({ allowProvisioning: false });
    expect(JSON.parse(logs.at(-1)!).reason).toBe('device table fp-yocto-devices unavailable: ProvisionedThroughputExceededException: Rate exceeded');
  });
});
