import { describe, expect, it } from 'vitest';
import { isAllowed, parsePolicyDocument, PolicyDocumentError, resourceArnFor, substituteVariables, wildcardMatch, type IotAction } from '../../src/emulator/policy.ts';
import { claimPolicyDocument, devicePolicyDocument } from '../helpers/emulator.ts';

const ctx = { clientId: 'fleetprov-1', certificateId: 'c'.repeat(64) };
const check = (doc: string, action: IotAction, name: string, c: typeof ctx & { thingName?: string } = ctx) =>
  isAllowed(parsePolicyDocument(doc), action, resourceArnFor(action, name, 'us-east-1', '000000000000'), c);

describe('IoT policy matcher', () => {
  it('wildcards: * spans slashes, ? is one character, the rest is literal', () => {
    expect(wildcardMatch('topic/$aws/certificates/create/*', 'topic/$aws/certificates/create/json/accepted')).toBe(true);
    expect(wildcardMatch('topic/$aws/certificates/create/*', 'topic/$aws/certificates/create-from-csr/json')).toBe(false);
    expect(wildcardMatch('client/dev-?', 'client/dev-1')).toBe(true);
    expect(wildcardMatch('client/dev-?', 'client/dev-12')).toBe(false);
    expect(wildcardMatch('a.b+c', 'axb+c')).toBe(false);
  });

  it('the claim policy allows the provisioning topics of its template only', () => {
    const doc = claimPolicyDocument('tpl');
    expect(check(doc, 'iot:Connect', 'fleetprov-abc')).toBe(true);
    expect(check(doc, 'iot:Connect', 'other-abc')).toBe(false);
    expect(check(doc, 'iot:Publish', '$aws/certificates/create-from-csr/json')).toBe(true);
    expect(check(doc, 'iot:Publish', '$aws/provisioning-templates/tpl/provision/json')).toBe(true);
    expect(check(doc, 'iot:Publish', '$aws/provisioning-templates/other/provision/json')).toBe(false);
    expect(check(doc, 'iot:Subscribe', '$aws/certificates/create-from-csr/json/accepted')).toBe(true);
    expect(check(doc, 'iot:Receive', '$aws/certificates/create-from-csr/json/rejected')).toBe(true);
    expect(check(doc, 'iot:Publish', 'things/x/telemetry')).toBe(false);
  });

  it('${iot:Connection.Thing.ThingName} applies only when resolved', () => {
    const doc = devicePolicyDocument();
    const asThing = { ...ctx, clientId: 'fp-1', thingName: 'fp-1' };
    expect(check(doc, 'iot:Connect', 'fp-1', asThing)).toBe(true);
    expect(check(doc, 'iot:Publish', 'things/fp-1/data', asThing)).toBe(true);
    expect(check(doc, 'iot:Publish', 'things/fp-2/data', asThing)).toBe(false);
    expect(check(doc, 'iot:Connect', 'fp-1', { ...ctx, clientId: 'fp-1' })).toBe(false);
    expect(substituteVariables('client/${iot:Connection.Thing.ThingName}', ctx)).toBeUndefined();
    expect(substituteVariables('client/${iot:ClientId}', ctx)).toBe('client/fleetprov-1');
  });

  it('Deny beats Allow; nothing allowed means denied; actions match case-insensitively with wildcards', () => {
    const doc = JSON.stringify({
      Statement: [
        { Effect: 'Allow', Action: 'IOT:*', Resource: '*' },
        { Effect: 'Deny', Action: 'iot:Publish', Resource: 'arn:aws:iot:*:*:topic/secret/*' },
      ],
    });
    expect(check(doc, 'iot:Publish', 'open/x')).toBe(true);
    expect(check(doc, 'iot:Publish', 'secret/x')).toBe(false);
    expect(check(JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: '*' }] }), 'iot:Subscribe', 'a')).toBe(false);
    expect(isAllowed([], 'iot:Connect', 'arn:aws:iot:us-east-1:0:client/x', ctx)).toBe(false);
  });

  it('rejects malformed documents with the reason', () => {
    expect(() => parsePolicyDocument('nope')).toThrow(PolicyDocumentError);
    expect(() => parsePolicyDocument('{"Statement":[{"Effect":"Maybe","Action":"iot:*","Resource":"*"}]}')).toThrow(/Effect/);
    expect(() => parsePolicyDocument('{"Statement":[]}')).toThrow(/Statement/);
  });
});
