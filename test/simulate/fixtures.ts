// What the runFleet tests share: a fleet's base config for a test emulator, and the things a run made.
import type { BaseConfig } from '../../src/simulate/fleet.ts';
import { CONFIG_DEFAULTS } from '../../src/shared/config.ts';
import { DEVICE_ID_PARAMETER } from '../../src/shared/pre-provisioning-hook.ts';
import { CLIENT_ID_PREFIX, THING_NAME_PREFIX, type TestEmulator } from '../helpers/emulator.ts';

export function baseConfig(t: TestEmulator): BaseConfig {
  return {
    ...CONFIG_DEFAULTS,
    iotDataEndpoint: t.emulator.endpoint,
    port: t.emulator.port,
    templateName: t.templateName,
    templateParams: { [DEVICE_ID_PARAMETER]: '${deviceId}' },
    clientIdPrefix: CLIENT_ID_PREFIX,
    claimCertPath: t.claim.certPath,
    claimKeyPath: t.claim.keyPath,
    rootCaPath: t.claim.rootCaPath,
    key: { ...CONFIG_DEFAULTS.key },
    greengrass: { ...CONFIG_DEFAULTS.greengrass, enabled: false },
    // Short waits keep the test quick; the deadline is far enough for the throttled devices.
    retry: { initialDelayMs: 50, maxDelayMs: 400, deadlineMs: 60_000, attemptTimeoutMs: 10_000 },
  };
}

export const thingsOfRun = async (t: TestEmulator, prefix: string): Promise<string[]> =>
  (await t.emulator.control.listThings()).map((thing) => thing.thingName).filter((name) => name.startsWith(`${THING_NAME_PREFIX}${prefix}`));
