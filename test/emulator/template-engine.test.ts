import { describe, expect, it } from 'vitest';
import { evaluateTemplate, parseTemplate, TemplateError } from '../../src/emulator/template-engine.ts';
import { mergeThing } from '../../src/emulator/fleet-provisioning.ts';
import { templateBody } from '../helpers/emulator.ts';

const CERT_ID = 'a'.repeat(64);
const system = { 'AWS::IoT::Certificate::Id': CERT_ID, 'AWS::Region': 'us-east-1', 'AWS::AccountId': '000000000000' };

function evaluate(template: object, parameters: Record<string, string> = {}) {
  return evaluateTemplate(parseTemplate(JSON.stringify(template)), parameters, system);
}

function rejection(fn: () => unknown): TemplateError {
  try {
    fn();
  } catch (error) {
    if (error instanceof TemplateError) return error;
    throw error;
  }
  throw new Error('expected a TemplateError');
}

const withThingName = (ThingName: unknown, extra: object = {}) => ({
  Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName } } },
  ...extra,
});

describe('template engine', () => {
  it('evaluates the stack-style template: thing name, certificate, policy, device configuration', () => {
    const plan = evaluateTemplate(parseTemplate(templateBody('device-policy')), { DeviceId: 'aabbccddeeff' }, system);
    expect(plan.thing).toMatchObject({ thingName: 'fp-aabbccddeeff', attributes: { deviceId: 'aabbccddeeff' } });
    expect(plan.thing!.overrideSettings).toEqual({ AttributePayload: 'MERGE', ThingTypeName: 'REPLACE', ThingGroups: 'DO_NOTHING' });
    expect(plan.certificate).toEqual({ certificateId: CERT_ID, status: 'ACTIVE' });
    expect(plan.policies).toEqual([{ policyName: 'device-policy' }]);
    expect(plan.deviceConfiguration).toEqual({ thingNamePrefix: 'fp-' });
  });

  it('lets a request parameter win over the Default', () => {
    const plan = evaluateTemplate(parseTemplate(templateBody()), { DeviceId: 'x1', ThingNamePrefix: 'lab-' }, system);
    expect(plan.thing!.thingName).toBe('lab-x1');
  });

  it('supports Fn::Select over Fn::Split, Fn::FindInMap and both forms of Fn::Sub', () => {
    const plan = evaluate(
      {
        Parameters: { Serial: { Type: 'String' }, Site: { Type: 'String', Default: 'ber' } },
        Mappings: { Sites: { ber: { Group: 'europe' } } },
        Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { 'Fn::Select': [1, { 'Fn::Split': ['-', { Ref: 'Serial' }] }] } } } },
        DeviceConfiguration: {
          group: { 'Fn::FindInMap': ['Sites', { Ref: 'Site' }, 'Group'] },
          topic: { 'Fn::Sub': 'things/${Serial}/${AWS::Region}' },
          literal: { 'Fn::Sub': '${!Serial}' },
          withVars: { 'Fn::Sub': ['${a}-${Site}', { a: { Ref: 'Serial' } }] },
        },
      },
      { Serial: 'sn-42-x' },
    );
    expect(plan.thing!.thingName).toBe('42');
    expect(plan.deviceConfiguration).toEqual({ group: 'europe', topic: 'things/sn-42-x/us-east-1', literal: '${Serial}', withVars: 'sn-42-x-ber' });
  });

  it('takes a policy document inline, as text or as an object', () => {
    const doc = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }] };
    const plan = evaluate({ Resources: { a: { Type: 'AWS::IoT::Policy', Properties: { PolicyDocument: doc } }, b: { Type: 'AWS::IoT::Policy', Properties: { PolicyDocument: JSON.stringify(doc) } } } });
    expect(plan.policies).toEqual([{ policyDocument: JSON.stringify(doc) }, { policyDocument: JSON.stringify(doc) }]);
  });

  it('rejects a missing parameter by name', () => {
    const error = rejection(() => evaluateTemplate(parseTemplate(templateBody()), {}, system));
    expect(error).toMatchObject({ statusCode: 400, errorCode: 'InvalidParameters' });
    expect(error.message).toContain('DeviceId');
  });

  it('rejects an unknown intrinsic function by name', () => {
    const error = rejection(() => evaluate(withThingName({ 'Fn::Base64': 'x' })));
    expect(error.statusCode).toBe(400);
    expect(error.message).toContain('Fn::Base64');
  });

  it('rejects a Ref to an undeclared parameter, a bad Select index and a missing mapping', () => {
    expect(rejection(() => evaluate(withThingName({ Ref: 'Nope' }))).message).toContain('Nope');
    expect(rejection(() => evaluate(withThingName({ 'Fn::Select': [3, ['a']] }))).message).toContain('out of range');
    expect(rejection(() => evaluate(withThingName({ 'Fn::FindInMap': ['M', 'a', 'b'] }))).message).toContain('M.a.b');
  });

  it('rejects bad template shapes: not JSON, unknown resource type, bad override, bad thing name', () => {
    expect(() => parseTemplate('{')).toThrow(TemplateError);
    expect(rejection(() => evaluate({ Resources: { x: { Type: 'AWS::S3::Bucket' } } })).message).toContain('AWS::S3::Bucket');
    const badOverride = { Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 't' }, OverrideSettings: { ThingGroups: 'SOMETIMES' } } } };
    expect(rejection(() => evaluate(badOverride)).message).toContain('OverrideSettings.ThingGroups');
    expect(rejection(() => evaluate(withThingName('has space'))).message).toContain('has space');
  });
});

describe('OverrideSettings', () => {
  const existing = { thingName: 't', attributes: { a: '1', b: '2' }, thingGroups: ['g1'], thingTypeName: 'old', principals: ['p'] };
  const plan = (o: object) => ({ thingName: 't', attributes: { b: '3', c: '4' }, thingGroups: ['g2'], thingTypeName: 'new', overrideSettings: o });

  it('DO_NOTHING keeps, REPLACE replaces, MERGE merges', () => {
    expect(mergeThing(existing, plan({}))).toMatchObject({ attributes: existing.attributes, thingGroups: ['g1'], thingTypeName: 'old', principals: ['p'] });
    expect(mergeThing(existing, plan({ AttributePayload: 'REPLACE', ThingGroups: 'REPLACE', ThingTypeName: 'REPLACE' }))).toMatchObject({
      attributes: { b: '3', c: '4' },
      thingGroups: ['g2'],
      thingTypeName: 'new',
    });
    expect(mergeThing(existing, plan({ AttributePayload: 'MERGE', ThingGroups: 'MERGE' }))).toMatchObject({
      attributes: { a: '1', b: '3', c: '4' },
      thingGroups: ['g1', 'g2'],
    });
  });

  it('FAIL rejects a thing whose values differ, and accepts identical ones', () => {
    expect(() => mergeThing(existing, plan({ AttributePayload: 'FAIL' }))).toThrow(/AttributePayload/);
    const same = { thingName: 't', attributes: { a: '1', b: '2' }, overrideSettings: { AttributePayload: 'FAIL' as const } };
    expect(mergeThing(existing, same).attributes).toEqual(existing.attributes);
  });

  it('a new thing takes the template values', () => {
    expect(mergeThing(undefined, plan({}))).toEqual({ thingName: 't', attributes: { b: '3', c: '4' }, thingGroups: ['g2'], thingTypeName: 'new', principals: [] });
  });
});
