// Distinct, valid device ids for simulated devices. The pre-provisioning hook accepts only MAC
// addresses, so every id is one: a random 3-octet prefix per run (first octet locally
// administered, so it can never be a real NIC's burned-in address) then a 3-octet index.
// Reruns draw a new prefix and so register new things instead of colliding with old ones.
import { randomBytes } from 'node:crypto';

/** 2^24 devices fit behind one prefix. */
export const MAX_DEVICES = 0x1000000;

/** Six hex digits; the first octet has the locally administered bit set and the multicast bit clear. */
export function randomRunPrefix(random: (n: number) => Uint8Array = randomBytes): string {
  const [a = 0, b = 0, c = 0] = random(3);
  return [(a & 0xfc) | 0x02, b, c].map((o) => o.toString(16).padStart(2, '0')).join('');
}

/** The id (12 lower-case hex digits, the hook's canonical form) of device `index` of a run. */
export function deviceId(prefix: string, index: number): string {
  if (!/^[0-9a-f]{6}$/.test(prefix)) throw new RangeError(`device id prefix must be 6 hex digits, got ${JSON.stringify(prefix)}`);
  if (!Number.isInteger(index) || index < 0 || index >= MAX_DEVICES) throw new RangeError(`device index ${index} out of range`);
  return prefix + index.toString(16).padStart(6, '0');
}
