import { describe, expect, it } from 'vitest';
import { createHookRunner, runHook } from '../../src/emulator/hook-runner.ts';
import { HOOK_TIMEOUT_MS, type HookEvent } from '../../src/shared/protocol.ts';
import { PRE_PROVISIONING_HOOK_SOURCE } from '../../src/shared/pre-provisioning-hook.ts';
import crypto from 'node:crypto';

/** What the hook requires when it has no table to reach: node's crypto. */
const hookModules = (name: string) => {
  if (name === 'crypto') return crypto;
  throw new Error(`Cannot find module '${name}'`);
};

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
    const allowed = await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'AA-BB-CC-DD-EE-FF' }), { log: (line) => logs.push(line), require: hookModules });
    expect(allowed).toMatchObject({ ok: true, result: { allowProvisioning: true, parameterOverrides: { DeviceId: 'aabbccddeeff' } } });
    expect(logs.join('\n')).toContain('"allow":true');
    expect(await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'not-a-mac' }), { require: hookModules })).toMatchObject({ ok: true, result: { allowProvisioning: false } });
    const env = { DEVICE_ID_KIND: 'serial' };
    expect(await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'SN 1' }), { env, require: hookModules })).toMatchObject({ result: { parameterOverrides: { DeviceId: 'sn-1' } } });
  });

  it('gives the hook only the modules it is handed, as a Lambda runtime has only its own', async () => {
    const source = `exports.handler = async () => { require('fs'); return { allowProvisioning: true } }`;
    expect(await runHook(source, event({}))).toMatchObject({ ok: false, reason: 'threw', message: "Cannot find module 'fs'" });
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
