// The canonical device id, per kind of id: what the pre-provisioning hook puts into the thing
// name, the key of the device table (the allow-list), and what `fp-yocto devices import` stores.
// It is ONE JavaScript source: the hook embeds the text (its Lambda code is a single inline
// file), and the build host evaluates the same text once, so the two cannot disagree.
//
// The agent's own formatting (src/agent/device-id.ts, format "plain") produces these forms; a
// test checks that it does for every source.
import type { DeviceIdSource } from './config.ts';

/** How the hook reads a device id; the agent's id sources map onto these. */
export const DEVICE_ID_KINDS = ['mac', 'machine-id', 'serial'] as const;
export type DeviceIdKind = (typeof DEVICE_ID_KINDS)[number];

export const DEVICE_ID_KIND_OF_SOURCE: Record<DeviceIdSource, DeviceIdKind> = {
  mac: 'mac',
  'machine-id': 'machine-id',
  'device-tree-serial': 'serial',
  'dmi-serial': 'serial',
  file: 'serial',
};

/** What each kind looks like, for error messages ("expected ..."). */
export const DEVICE_ID_EXPECTED: Record<DeviceIdKind, string> = {
  mac: 'a MAC address such as aa:bb:cc:dd:ee:ff or aabbccddeeff',
  'machine-id': 'a machine id (32 hex digits, as in /etc/machine-id)',
  serial: 'a serial number (letters, digits, : _ -; other characters become -; at most 128)',
};

/**
 * The table as JavaScript (ES2019, no dependencies). `canonicalDeviceId(kind, value)` returns the
 * canonical id or null:
 * - mac: 12 hex digits, or six pairs with one separator (: - _) used throughout, either case;
 *   canonical is lower-case plain hex (aabbccddeeff).
 * - machine-id: 32 hex digits (systemd's machine-id(5)); canonical is lower case.
 * - serial (device-tree, DMI, a file): NULs and outer space dropped, lower case, every run of
 *   other characters than a-z 0-9 : _ - becomes one -, no - at either end, at most 128
 *   characters (a thing name has 128); firmware placeholders ("To be filled by O.E.M.", "0",
 *   "none" ...) are not an identity and are refused.
 */
export const DEVICE_ID_SOURCE_JS = `
const MAC_PLAIN = /^[0-9a-f]{12}$/i;
const MAC_SEPARATED = /^[0-9a-f]{2}([:_-])[0-9a-f]{2}(?:\\1[0-9a-f]{2}){4}$/i;
const MACHINE_ID = /^[0-9a-f]{32}$/i;
const SERIAL_PLACEHOLDERS = /^(0+|none|n-a|unknown|default-string|not-specified|not-applicable|system-serial-number|to-be-filled-by-o-e-m|0123456789|123456789)$/;

function canonicalDeviceId(kind, value) {
  if (typeof value !== 'string') return null;
  if (kind === 'mac') {
    if (MAC_PLAIN.test(value)) return value.toLowerCase();
    if (MAC_SEPARATED.test(value)) return value.replace(/[:_-]/g, '').toLowerCase();
    return null;
  }
  if (kind === 'machine-id') return MACHINE_ID.test(value) ? value.toLowerCase() : null;
  if (kind === 'serial') {
    const id = value.split('\\0').join('').trim().toLowerCase().replace(/[^a-z0-9:_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 128);
    return id && !SERIAL_PLACEHOLDERS.test(id) ? id : null;
  }
  return null;
}
`;

type Canonical = (kind: DeviceIdKind, value: unknown) => string | null;

// Evaluated once: the constant above is our own source, the same text the hook runs.
const canonical = new Function(`${DEVICE_ID_SOURCE_JS}\nreturn canonicalDeviceId;`)() as Canonical;

/** The canonical form of a device id of this kind, or undefined when it is not one. */
export function canonicalDeviceId(kind: DeviceIdKind, value: unknown): string | undefined {
  return canonical(kind, value) ?? undefined;
}
