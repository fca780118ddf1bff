// The pre-provisioning hook, as ONE JavaScript source: the CloudFormation stack deploys it as the
// Lambda's inline code (index.js, CommonJS) and the emulator runs the very same text in-process,
// with stand-ins for the two AWS SDK clients it requires (src/emulator/hook-sdk.ts).
//
// What it decides ("Pre-provisioning hooks", AWS IoT Core Developer Guide: input
// {claimCertificateId, certificateId, certificatePem, templateArn, clientId, parameters}, output
// {allowProvisioning, parameterOverrides}):
// 1. A device may send the DeviceId parameter and nothing else: any other name is refused, so
//    device input can never set a value the template did not mean it to. DeviceId must be a
//    device id of the stack's kind (src/shared/device-id.ts); it is rewritten to its canonical
//    form, so the thing name does not depend on how the device writes it.
// 2. With a device table (the stack always has one) and the allow-list on, the id must be in
//    the table and not revoked.
// 3. With one identity per device id on, the table records the certificate the hook approved for
//    the id, in the same conditional UpdateItem that checks the allow-list, so two devices
//    presenting one id at the same moment cannot both pass. A later request with ANOTHER
//    certificate passes only when it has the same public key as the recorded one (the same
//    device after a lost reply: a CSR proves possession of its key), or when the recorded
//    certificate never became a device's (AWS IoT deletes a certificate not registered within an
//    hour; PENDING_ACTIVATION once the approval is older than IN_FLIGHT_MS, so a registration
//    still running is not mistaken for a failed one). An ACTIVE, INACTIVE or REVOKED recorded
//    certificate refuses it: an operator-disabled device does not re-enrol by itself;
//    `fp-yocto devices reset ID` re-arms the id.
// 4. Per-device attributes from the table become parameterOverrides, but only for parameters the
//    template declares (TEMPLATE_PARAMETERS): the template decides what they mean.
//
// AWS IoT does not pass a denial's reason to the device (RegisterThing is rejected 403
// ACCESS_DENIED), so the hook logs one JSON line per decision (never the certificate PEM) and
// writes the reason of a refusal onto the id's item, where `fp-yocto devices list` shows it.

import { DEVICE_ID_SOURCE_JS, type DeviceIdKind } from './device-id.ts';

/** Name of the template parameter that carries the device id. */
export const DEVICE_ID_PARAMETER = 'DeviceId';

/** The Lambda's environment variables. */
export const HOOK_ENV = {
  parameter: 'DEVICE_ID_PARAMETER',
  kind: 'DEVICE_ID_KIND',
  table: 'DEVICE_TABLE',
  allowList: 'ALLOW_LIST',
  oneIdentity: 'ONE_IDENTITY',
  templateParameters: 'TEMPLATE_PARAMETERS',
  inFlightMs: 'IN_FLIGHT_MS',
} as const;

export interface HookSettings {
  kind: DeviceIdKind;
  /** The device table's name; empty: no table (only the id's form is checked). */
  table: string;
  allowList: boolean;
  oneIdentity: boolean;
  /** Parameters the template declares besides DeviceId, which table attributes may fill. */
  templateParameters: string[];
}

/** The environment that configures the hook (what the stack sets; tests and the emulator too). */
export function hookEnvironment(settings: HookSettings): Record<string, string> {
  return {
    [HOOK_ENV.parameter]: DEVICE_ID_PARAMETER,
    [HOOK_ENV.kind]: settings.kind,
    [HOOK_ENV.table]: settings.table,
    [HOOK_ENV.allowList]: settings.allowList ? 'on' : 'off',
    [HOOK_ENV.oneIdentity]: settings.oneIdentity ? 'on' : 'off',
    [HOOK_ENV.templateParameters]: settings.templateParameters.join(','),
  };
}

/**
 * How long after an approval the recorded certificate counts as still registering. AWS documents
 * no bound on how long RegisterThing takes after the hook answers; this is our assumption, kept
 * well below the 5 s AWS IoT waits for the hook, since a competing request's hook sleeps until it
 * has passed.
 */
export const IN_FLIGHT_MS = 2_500;

/** The device table's attribute names (the item of one device id). */
export const DEVICE_ITEM = {
  key: 'deviceId',
  allowedAt: 'allowedAt',
  revokedAt: 'revokedAt',
  attributes: 'attributes',
  certificateId: 'certificateId',
  publicKeySha256: 'publicKeySha256',
  approvedAt: 'approvedAt',
  claimCertificateId: 'claimCertificateId',
  lastRefusal: 'lastRefusal',
  lastRefusedAt: 'lastRefusedAt',
} as const;

export const PRE_PROVISIONING_HOOK_SOURCE = `'use strict';
// fp-yocto pre-provisioning hook: the device id's form, the allow-list and one identity per
// device id, in the stack's device table (DynamoDB). Generated from src/shared/pre-provisioning-hook.ts.
const crypto = require('crypto');
${DEVICE_ID_SOURCE_JS}
const env = process.env;
const PARAMETER = env.DEVICE_ID_PARAMETER || 'DeviceId';
const KIND = env.DEVICE_ID_KIND || 'mac';
const TABLE = env.DEVICE_TABLE || '';
const ALLOW_LIST = env.ALLOW_LIST === 'on';
const ONE_IDENTITY = env.ONE_IDENTITY !== 'off';
const TEMPLATE_PARAMETERS = (env.TEMPLATE_PARAMETERS || '').split(',').filter(Boolean);
const IN_FLIGHT_MS = Number(env.IN_FLIGHT_MS || ${IN_FLIGHT_MS});
// Refusal: the recorded certificate belongs to a device (or an operator disabled it).
const SETTLED = ['ACTIVE', 'INACTIVE', 'REVOKED', 'PENDING_TRANSFER', 'REGISTER_INACTIVE'];

// Clients live as long as the warm container. AWS IoT waits 5 s for the hook: short attempts.
let sdk;
function clients() {
  if (!sdk) {
    const ddb = require('@aws-sdk/client-dynamodb');
    const iot = require('@aws-sdk/client-iot');
    const config = { maxAttempts: 2, requestHandler: { connectionTimeout: 1000, requestTimeout: 1500 } };
    sdk = { ddb, iot, dynamo: new ddb.DynamoDBClient(config), iotClient: new iot.IoTClient(config) };
  }
  return sdk;
}

// One DER element at offset at: its tag, where its content starts, where it ends.
function element(der, at) {
  if (at + 2 > der.length) throw new Error('truncated');
  let length = der[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes < 1 || bytes > 3 || start + bytes > der.length) throw new Error('unsupported length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i];
    start += bytes;
  }
  if (start + length > der.length) throw new Error('truncated');
  return { tag: der[at], start, end: start + length };
}

// SHA-256 of the certificate's SubjectPublicKeyInfo, as DER: the same key gives the same hash in
// every certificate. Read from the DER (RFC 5280 4.1: tbsCertificate = [0] version, serial,
// signature, issuer, validity, subject, subjectPublicKeyInfo): parsing the whole certificate and
// re-exporting its key took ~0.5 ms of a provisioning on a 2-core x86 VM, more in a small Lambda.
function publicKeySha256(pem) {
  try {
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\\s/g, ''), 'base64');
    const certificate = element(der, 0);
    const tbs = element(der, certificate.start);
    if (certificate.tag !== 0x30 || tbs.tag !== 0x30) return null;
    let at = tbs.start;
    if (element(der, at).tag === 0xa0) at = element(der, at).end;
    for (let field = 0; field < 5; field++) at = element(der, at).end;
    const spki = element(der, at);
    if (spki.tag !== 0x30 || spki.end > tbs.end) return null;
    return crypto.createHash('sha256').update(der.subarray(at, spki.end)).digest('hex');
  } catch (error) {
    return null;
  }
}

const S = (value) => ({ S: value });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const isConditionFailure = (error) => Boolean(error && error.name === 'ConditionalCheckFailedException');

// One conditional write approves the certificate for the id: the allow-list entry must exist
// (allow-list on) and the id must be free, or hold this certificate or this key (one identity).
function approve(id, event, keyHash, now, extraCondition) {
  const { ddb, dynamo } = clients();
  const conditions = [];
  const values = { ':cert': S(event.certificateId), ':now': S(now), ':claim': S(String(event.claimCertificateId || '')) };
  if (ALLOW_LIST) conditions.push('attribute_exists(allowedAt)');
  if (extraCondition) {
    conditions.push(extraCondition.expression);
    Object.assign(values, extraCondition.values);
  } else if (ONE_IDENTITY) {
    const sameKey = keyHash ? ' OR publicKeySha256 = :key' : '';
    conditions.push('(attribute_not_exists(certificateId) OR certificateId = :cert' + sameKey + ')');
  }
  const set = ['certificateId = :cert', 'approvedAt = :now', 'claimCertificateId = :claim'];
  if (keyHash) {
    values[':key'] = S(keyHash);
    set.push('publicKeySha256 = :key');
  }
  return dynamo.send(new ddb.UpdateItemCommand({
    TableName: TABLE,
    Key: { deviceId: S(id) },
    UpdateExpression: 'SET ' + set.join(', '),
    ...(conditions.length ? { ConditionExpression: conditions.join(' AND ') } : {}),
    ExpressionAttributeValues: values,
    ReturnValues: 'ALL_NEW',
    ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
  }));
}

async function certificateStatus(certificateId) {
  const { iot, iotClient } = clients();
  try {
    const out = await iotClient.send(new iot.DescribeCertificateCommand({ certificateId }));
    return (out.certificateDescription && out.certificateDescription.status) || 'UNKNOWN';
  } catch (error) {
    if (error && error.name === 'ResourceNotFoundException') return 'GONE';
    throw error;
  }
}

// The item's per-device attributes, for the parameters the template declares.
function overridesOf(item) {
  const attributes = (item && item.attributes && item.attributes.M) || {};
  const out = {};
  for (const name of TEMPLATE_PARAMETERS) if (attributes[name] && typeof attributes[name].S === 'string') out[name] = attributes[name].S;
  return out;
}

async function decide(id, event) {
  const keyHash = publicKeySha256(event.certificatePem);
  try {
    const out = await approve(id, event, keyHash, new Date().toISOString());
    return { allow: true, overrides: overridesOf(out.Attributes) };
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    const old = error.Item;
    if (!old) return { reason: 'device ' + id + ' is not on the allow-list' };
    if (ALLOW_LIST && !old.allowedAt) {
      return { reason: 'device ' + id + ' was removed from the allow-list' + (old.revokedAt ? ' on ' + old.revokedAt.S : ''), recorded: true };
    }
    const recorded = old.certificateId.S;
    const approvedAt = old.approvedAt ? old.approvedAt.S : '';
    // A registration approved a moment ago may still be running: let it finish before judging.
    const wait = Date.parse(approvedAt) + IN_FLIGHT_MS - Date.now();
    if (wait > 0) await sleep(wait);
    const status = await certificateStatus(recorded);
    if (SETTLED.includes(status) || status === 'UNKNOWN') {
      return {
        reason: 'device ' + id + ' already provisioned with certificate ' + recorded + ' (' + status + ') on ' + approvedAt +
          '; refused certificate ' + event.certificateId + ' (run fp-yocto devices reset ' + id + ' to let it provision again)',
        recorded: true,
      };
    }
    // The recorded certificate never became a device's: take its place, unless someone else just did.
    try {
      const out = await approve(id, event, keyHash, new Date().toISOString(), {
        expression: 'certificateId = :old',
        values: { ':old': S(recorded) },
      });
      return { allow: true, overrides: overridesOf(out.Attributes), replaced: recorded };
    } catch (again) {
      if (!isConditionFailure(again)) throw again;
      return { reason: 'another device took id ' + id + ' at the same moment', recorded: true };
    }
  }
}

// The operator sees the last refusal of a listed id in \`fp-yocto devices list\`.
async function recordRefusal(id, reason) {
  const { ddb, dynamo } = clients();
  try {
    await dynamo.send(new ddb.UpdateItemCommand({
      TableName: TABLE,
      Key: { deviceId: S(id) },
      UpdateExpression: 'SET lastRefusal = :reason, lastRefusedAt = :now',
      ConditionExpression: 'attribute_exists(deviceId)',
      ExpressionAttributeValues: { ':reason': S(reason), ':now': S(new Date().toISOString()) },
    }));
  } catch (error) {
    // The decision stands; the log line below has the reason.
  }
}

exports.handler = async (event) => {
  const parameters = (event && event.parameters) || {};
  const certificateId = event && event.certificateId;
  const extra = Object.keys(parameters).filter((key) => key !== PARAMETER);
  let id = null;
  let decision;
  if (extra.length) decision = { reason: 'unexpected parameter ' + extra.slice(0, 3).join(', ') + ' (only ' + PARAMETER + ' may be sent)' };
  else if (!(id = canonicalDeviceId(KIND, parameters[PARAMETER]))) decision = { reason: 'parameter ' + PARAMETER + ' is not a device id of kind ' + KIND };
  else if (!TABLE || (!ALLOW_LIST && !ONE_IDENTITY)) decision = { allow: true, overrides: {} };
  else {
    try {
      decision = await decide(id, event);
    } catch (error) {
      // Without the table there is no decision to trust: refuse, and say why in the log.
      decision = { reason: 'device table ' + TABLE + ' unavailable: ' + ((error && error.name) || 'Error') + ': ' + ((error && error.message) || error) };
    }
    if (decision.recorded) await recordRefusal(id, decision.reason);
  }
  // One line per decision: never the certificate PEM or any token.
  console.log(JSON.stringify({ deviceId: id, certificateId: certificateId, allow: Boolean(decision.allow), reason: decision.reason || null, ...(decision.replaced ? { replaced: decision.replaced } : {}) }));
  if (!decision.allow) return { allowProvisioning: false };
  return { allowProvisioning: true, parameterOverrides: { ...decision.overrides, [PARAMETER]: id } };
};
`;
