// Pure device-id normalisation (architecture.md "Device id format"). MAC addresses become
// lower-case hex in the configured layout; other sources are made safe for a thing name
// ([A-Za-z0-9:_-], at most 128 characters) unless the format is `raw`.
import type { DeviceIdFormat } from '../shared/config.ts';

const MAC = /^[0-9a-f]{2}([:_-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;

/** The 12 hex digits of a MAC address written in any common form, or undefined. */
export function macDigits(value: string): string | undefined {
  const s = value.trim();
  return MAC.test(s) ? s.replace(/[:_-]/g, '').toLowerCase() : undefined;
}

/**
 * A universally administered unicast address: bit 1 of the first octet clear (not locally
 * administered, as random and virtual MACs are) and bit 0 clear (not multicast); not all zero.
 */
export function isUniversalMac(value: string): boolean {
  const digits = macDigits(value);
  if (!digits || /^0+$/.test(digits)) return false;
  return (Number.parseInt(digits.slice(0, 2), 16) & 0b11) === 0;
}

const SEPARATOR: Record<Exclude<DeviceIdFormat, 'plain' | 'raw'>, string> = { colon: ':', dash: '-', underscore: '_' };

export function formatMac(value: string, format: DeviceIdFormat): string {
  if (format === 'raw') return value.trim();
  const digits = macDigits(value);
  if (!digits) throw new Error(`not a MAC address: ${JSON.stringify(value)}`);
  if (format === 'plain') return digits;
  return digits.match(/../g)!.join(SEPARATOR[format]);
}

/** Serials, machine ids and file contents: NULs and outer space dropped; then made thing-name safe. */
export function formatSerial(value: string, format: DeviceIdFormat): string {
  const trimmed = value.replaceAll('\0', '').trim();
  if (format === 'raw') return trimmed;
  return trimmed
    .toLowerCase()
    .replace(/[^a-z0-9:_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 128);
}

/** Values firmware writes when nobody set a serial: not an identity. */
const PLACEHOLDER_SERIALS = /^(0+|none|n\/a|unknown|default string|not specified|not applicable|system serial number|to be filled by o\.e\.m\.|0123456789|123456789)$/i;

export function isPlaceholderSerial(value: string): boolean {
  const s = value.replaceAll('\0', '').trim();
  return s === '' || PLACEHOLDER_SERIALS.test(s);
}
