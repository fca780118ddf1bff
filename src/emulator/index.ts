// Public entry of the emulator: start one in-process, or reach (or start) one in another process.
export { startEmulator, type Emulator, type EmulatorOptions, type IssuedClaim } from './emulator.ts';
export { connectEmulator, ensureEmulator, stopEmulator, type EnsuredEmulator, type EmulatorInfo } from './discovery.ts';
export { RemoteControlError } from './control-client.ts';
export { EMULATOR_ACCOUNT_ID, EMULATOR_REGION } from './arn.ts';
export { AwsError } from './aws-error.ts';
export type * from './control-plane.ts';
