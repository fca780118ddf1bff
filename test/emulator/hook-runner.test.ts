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
  it('runs the shared hook source: canonical MAC override, denial, allow-list from its own env', async () => {
    const logs: string[] = [];
    const allowed = await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'AA-BB-CC-DD-EE-FF' }), { log: (line) => logs.push(line) });
    expect(allowed).toMatchObject({ ok: true, result: { allowProvisioning: true, parameterOverrides: { DeviceId: 'aabbccddeeff' } } });
    expect(logs.join('\n')).toContain('"allow":true');
    expect(await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'not-a-mac' }))).toMatchObject({ ok: true, result: { allowProvisioning: false } });
    const env = { ALLOWED_DEVICE_IDS: '11:22:33:44:55:66' };
    expect(await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: 'aabbccddeeff' }), { env })).toMatchObject({ result: { allowProvisioning: false } });
    expect(await runHook(PRE_PROVISIONING_HOOK_SOURCE, event({ DeviceId: '112233445566' }), { env })).toMatchObject({ result: { allowProvisioning: true } });
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
