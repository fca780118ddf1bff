import { describe, expect, it } from 'vitest';
import { createHookRunner, runHook } from '../../src/emulator/hook-runner.ts';
import { HOOK_TIMEOUT_MS, type HookEvent } from '../../src/shared/protocol.ts';
import { PRE_PROVISIONING_HOOK_SOURCE } from '../../src/shared/pre-provisioning-hook.ts';

const event = (parameters: Record<string, string>): HookEvent => ({
  claimCertificateId: 'a'.repeat(64),
  certificateId: 'b'.repeat(64),
  certificatePem: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
  templateArn: 'arn:aws:iot:us-east-1:000000000000:provisioningtemplate/t',
  clientId: 'fleetprov-1',
  parameters,
});

describe('pre-provisioning hook runner', () => {
  it('runs the shared hook source: canonical MAC override, denial, its own env', async () => {
    const logs: string[] = [];
    const allowed = await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'AA-BB-CC-DD-EE-FF' }), { log: (line) => logs.push(line) });
    expect(allowed).toMatchObject({ ok: true, result: { allowProvisioning: true, parameterOverrides: { DeviceId: 'aabbccddeeff' } } });
    expect(logs.join('\n')).toContain('"allow":true');
    expect(await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'not-a-mac' }))).toMatchObject({ ok: true, result: { allowProvisioning: false } });
    const env = { DEVICE_ID_KIND: 'serial' };
    expect(await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'SN 1' }), { env })).toMatchObject({ result: { parameterOverrides: { DeviceId: 'sn-1' } } });
  });

  it('gives the hook crypto, and the AWS SDK clients only with a bridge that answers their calls', async () => {
    const source = `exports.handler = async () => { require('fs'); return { allowProvisioning: true } }`;
    expect(await runHook(source, event({}))).toMatchObject({ ok: false, reason: 'threw', message: "Cannot find module 'fs'" });
    const sdkHook = `
      const { DynamoDBClient, UpdateItemCommand } = require('@aws-sdk/client-dynamodb');
      const client = new DynamoDBClient({});
      exports.handler = async (event) => {
        const out = await client.send(new UpdateItemCommand({ TableName: 't', Key: { id: { S: event.parameters.id } } }));
        try { await client.send(new UpdateItemCommand({ TableName: 'fail' })); } catch (e) { return { allowProvisioning: true, parameterOverrides: { got: out.x, name: e.name, old: e.Item.id.S } }; }
        return { allowProvisioning: false };
      };`;
    expect(await runHook(sdkHook, event({ id: '1' }))).toMatchObject({ ok: false, message: "Cannot find module '@aws-sdk/client-dynamodb'" });
    const calls: unknown[] = [];
    const sdk = async (service: string, operation: string, input: Record<string, unknown>) => {
      calls.push([service, operation, input]);
      if (input.TableName === 'fail') throw Object.assign(new Error('no'), { name: 'ConditionalCheckFailedException', Item: { id: { S: 'old' } } });
      return { x: 'answer' };
    };
    expect(await runHook(sdkHook, event({ id: '1' }), { sdk })).toMatchObject({ ok: true, result: { parameterOverrides: { got: 'answer', name: 'ConditionalCheckFailedException', old: 'old' } } });
    expect(calls).toEqual([
      ['dynamodb', 'UpdateItem', { TableName: 't', Key: { id: { S: '1' } } }],
      ['dynamodb', 'UpdateItem', { TableName: 'fail' }],
    ]);
  });

  it('does not share process.env with the emulator', async () => {
    const source = `exports.handler = async () => ({ allowProvisioning: true, parameterOverrides: { home: String(process.env.HOME), x: process.env.X } })`;
    expect(await runHook(source, event({}), { env: { X: 'y' } })).toMatchObject({ result: { parameterOverrides: { home: 'undefined', x: 'y' } } });
  });

  it('reports a hook that throws, answers nonsense or exports nothing', async () => {
    expect(await runHook(`exports.handler = async () => { throw new Error('boom') }`, event({}))).toMatchObject({ ok: false, reason: 'threw', message: 'boom' });
    expect(await runHook(`exports.handler = () => 42`, event({}))).toMatchObject({ ok: false, reason: 'bad-result' });
    expect(await runHook(`module.exports = {}`, event({}))).toMatchObject({ ok: false, reason: 'threw' });
  });

  it('keeps one warm context per runner, like a Lambda container', async () => {
    const run = createHookRunner(`let n = 0; exports.handler = async () => ({ allowProvisioning: true, parameterOverrides: { n: String(++n) } })`);
    expect(await run(event({}))).toMatchObject({ result: { parameterOverrides: { n: '1' } } });
    expect(await run(event({}))).toMatchObject({ result: { parameterOverrides: { n: '2' } } });
  });

  it('times out a hook that never answers, and a busy loop', async () => {
    expect(HOOK_TIMEOUT_MS).toBe(5000);
    const never = `exports.handler = () => new Promise(() => {})`;
    expect(await runHook(never, event({}), { timeoutMs: 200 })).toMatchObject({ ok: false, reason: 'timeout' });
    const busy = `exports.handler = () => { for (;;) {} }`;
    expect(await runHook(busy, event({}), { timeoutMs: 200 })).toMatchObject({ ok: false, reason: 'timeout' });
  });
});
