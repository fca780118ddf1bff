// The pre-provisioning hook exactly as the Lambda runs it: the shared source in a fresh context.
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DEVICE_ID_PARAMETER, HOOK_ENV, PRE_PROVISIONING_HOOK_SOURCE } from '../../src/shared/pre-provisioning-hook.ts';

type Handler = (event: unknown) => Promise<{ allowProvisioning: boolean; parameterOverrides?: Record<string, string> }>;

function loadHook(env: Record<string, string> = {}): Handler {
  const module = { exports: {} as { handler?: Handler } };
  const logs: string[] = [];
  vm.runInNewContext(PRE_PROVISIONING_HOOK_SOURCE, {
    module,
    exports: module.exports,
    process: { env: { [HOOK_ENV.parameter]: DEVICE_ID_PARAMETER, ...env } },
    console: { log: (line: string) => logs.push(line) },
  });
  return module.exports.handler!;
}

const event = (deviceId: unknown) => ({
  claimCertificateId: 'claim',
  certificateId: 'cert',
  certificatePem: '-----BEGIN CERTIFICATE-----',
  templateArn: 'arn:aws:iot:eu-west-1:123456789012:provisioningtemplate/fp-yocto-provisioning',
  clientId: 'fleetprov-x',
  parameters: { [DEVICE_ID_PARAMETER]: deviceId },
});

describe('pre-provisioning hook', () => {
  const hook = loadHook();

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
    ['any other name', { Location: 'Seattle' }],
  ])('refuses a request that also sends %s: device input sets only DeviceId (issue 12, defect 4)', async (_label, extra) => {
    const e = event('aabbccddee0f');
    expect(await hook({ ...e, parameters: { ...e.parameters, ...extra } })).toEqual({ allowProvisioning: false });
  });

  it('rejects an event without parameters', async () => {
    expect(await hook({})).toEqual({ allowProvisioning: false });
  });

  it('with an allow-list, accepts only listed devices, whatever form either side uses', async () => {
    const listed = loadHook({ [HOOK_ENV.allowList]: 'AA:BB:CC:DD:EE:0F, 001122334455' });
    expect((await listed(event('aa-bb-cc-dd-ee-0f'))).allowProvisioning).toBe(true);
    expect((await listed(event('00:11:22:33:44:55'))).allowProvisioning).toBe(true);
    expect(await listed(event('00:11:22:33:44:56'))).toEqual({ allowProvisioning: false });
  });

  it('treats an empty allow-list as no allow-list', async () => {
    expect((await loadHook({ [HOOK_ENV.allowList]: '' })(event('001122334455'))).allowProvisioning).toBe(true);
  });
});
