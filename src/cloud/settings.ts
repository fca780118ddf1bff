// The checks on init's flags: each bad value is one line naming the flag and what was expected.
import { CONFIG_DEFAULTS, DEVICE_ID_SOURCES, type DeviceIdSource } from '../shared/config.ts';
import { DEVICE_ID_PARAMETER } from '../shared/pre-provisioning-hook.ts';
import { ATTRIBUTE_NAME } from './devices/device-file.ts';
import { EXIT, UserError } from '../shared/errors.ts';

export const DEFAULT_STACK_NAME = 'fp-yocto';
/** The emulator's default MQTT port, like AWS IoT's. */
export const DEFAULT_LOCAL_PORT = 8883;

const bad = (flag: string, value: string, expected: string): never => {
  throw new UserError(`--${flag} ${JSON.stringify(value)}: expected ${expected}`, EXIT.usage);
};

// 23 characters keep "<stack>-provisioning" within the 36 a template name may have, and the
// IAM role names ("<stack>-<region>-token-exchange") within 64.
export function checkStackName(value: string): string {
  return /^[A-Za-z][A-Za-z0-9-]{0,22}$/.test(value)
    ? value
    : bad('stack-name', value, 'a letter then up to 22 letters, digits or dashes');
}

// Every partition's region names, as the AWS SDK's endpoint partitions spell them: eu-west-1,
// cn-north-1, us-gov-west-1, us-isob-east-1, eusc-de-east-1 (a 2-4 letter prefix, words, a number).
const REGION = /^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$/;

export function checkRegion(value: string): string {
  return REGION.test(value) ? value : bad('region', value, 'an AWS region such as eu-west-1');
}

// "Bucket naming rules" (Amazon S3): 3-63 lower-case letters, digits, dots and hyphens.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** --artifact-bucket: comma-separated S3 bucket names, sorted and without duplicates. */
export function parseArtifactBuckets(value: string): string[] {
  const buckets = value.split(',').map((b) => b.trim()).filter(Boolean);
  for (const b of buckets) if (!BUCKET.test(b)) bad('artifact-bucket', b, 'S3 bucket names (3-63 of a-z 0-9 . -), comma-separated');
  return [...new Set(buckets)].sort();
}

export const checkTemplateName = (value: string): string =>
  /^[0-9A-Za-z_-]{1,36}$/.test(value) ? value : bad('template-name', value, '1-36 of A-Z a-z 0-9 _ -');

export const checkThingGroup = (value: string): string =>
  /^[a-zA-Z0-9:_-]{1,128}$/.test(value) ? value : bad('thing-group', value, '1-128 of A-Z a-z 0-9 : _ -');

// The thing name is the prefix plus 12 hex digits and may have 128 characters.
export const checkThingPrefix = (value: string): string =>
  /^[a-zA-Z0-9:_-]{0,100}$/.test(value) ? value : bad('thing-prefix', value, 'at most 100 of A-Z a-z 0-9 : _ -');

export function checkPort(value: string): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 && n <= 65_535 && /^\d+$/.test(value) ? n : bad('port', value, 'a port number from 0 to 65535');
}

/** --device-id-source: one of the agent's id sources (it decides the hook's id kind). */
export function parseDeviceIdSource(value: string): DeviceIdSource {
  return (DEVICE_ID_SOURCES as readonly string[]).includes(value)
    ? (value as DeviceIdSource)
    : bad('device-id-source', value, DEVICE_ID_SOURCES.join(', '));
}

/** --thing-attributes: at most two attribute names (a thing without a type has three; deviceId is one). */
export function parseThingAttributes(value: string): string[] {
  const names = [...new Set(value.split(',').map((n) => n.trim()).filter(Boolean))];
  for (const n of names) if (!ATTRIBUTE_NAME.test(n) || n === DEVICE_ID_PARAMETER || n === 'deviceId') bad('thing-attributes', n, 'names of letters, digits and _ starting with a letter, other than deviceId');
  if (names.length > 2) bad('thing-attributes', value, 'at most two names (a thing has three attributes, and deviceId is one)');
  return names;
}

/** --grace: 0, or a number with s, m, h or d. */
export function parseDuration(value: string, flag = 'grace'): number {
  const match = /^(\d+)(s|m|h|d)?$/.exec(value.trim());
  if (!match) return bad(flag, value, 'a duration such as 0, 30m, 24h or 7d');
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  if (match[2] === undefined && match[1] !== '0') bad(flag, value, 'a unit: 30m, 24h or 7d (only 0 may go without)');
  return Number(match[1]) * unit;
}

export const DEFAULT_CLIENT_ID_PREFIX = CONFIG_DEFAULTS.clientIdPrefix;
