// The few DER (X.690) encodings a PKCS#10 request (the agent) and an X.509 certificate (the
// emulator's CA) need, and a reader for walking one. Both are a handful of fixed fields; this
// replaces ~170 KB of general ASN.1 libraries in the agent bundle and is many times faster for
// the emulator (see the benches). test/agent/csr.test.ts and test/emulator/ca.test.ts check the
// output with @peculiar/asn1-* and openssl.

export type Der = Uint8Array;

function lengthOctets(length: number): number[] {
  if (length < 0x80) return [length];
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

export function tlv(tag: number, ...contents: Der[]): Der {
  const body = Buffer.concat(contents);
  return Buffer.concat([Uint8Array.of(tag, ...lengthOctets(body.length)), body]);
}

export const sequence = (...items: Der[]): Der => tlv(0x30, ...items);
export const set = (...items: Der[]): Der => tlv(0x31, ...items);
export const contextConstructed = (n: number, ...items: Der[]): Der => tlv(0xa0 | n, ...items);
export const utf8String = (text: string): Der => tlv(0x0c, Buffer.from(text, 'utf8'));
export const bitString = (bytes: Der): Der => tlv(0x03, Uint8Array.of(0), bytes);
export const nullValue = (): Der => Uint8Array.of(0x05, 0x00);

/** A small non-negative INTEGER (a version number). */
export function smallInteger(n: number): Der {
  if (!Number.isInteger(n) || n < 0 || n > 127) throw new RangeError(`smallInteger: ${n}`);
  return tlv(0x02, Uint8Array.of(n));
}

export function objectIdentifier(dotted: string): Der {
  const [first, second, ...rest] = dotted.split('.').map(Number);
  const octets: number[] = [40 * first! + second!];
  for (const arc of rest) {
    const group: number[] = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) group.unshift(0x80 | (n & 0x7f));
    octets.push(...group);
  }
  return tlv(0x06, Uint8Array.from(octets));
}

/** An INTEGER from its big-endian content octets (the caller keeps them positive and minimal). */
export const integer = (octets: Der): Der => tlv(0x02, octets);
export const boolean = (value: boolean): Der => Uint8Array.of(0x01, 0x01, value ? 0xff : 0x00);
export const octetString = (bytes: Der): Der => tlv(0x04, bytes);
/** [n] IMPLICIT, primitive: the tag replaces the type's own (GeneralName, KeyIdentifier). */
export const contextPrimitive = (n: number, bytes: Der): Der => tlv(0x80 | n, bytes);

/** A certificate validity time (RFC 5280 4.1.2.5): UTCTime through 2049, GeneralizedTime after. */
export function time(date: Date): Der {
  const iso = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:T]/g, '');
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

/** The dotted form of an OBJECT IDENTIFIER's content octets. */
export function oidToString(content: Der): string {
  const arcs: number[] = [];
  let value = 0;
  for (const byte of content) {
    value = value * 128 + (byte & 0x7f);
    if (byte & 0x80) continue;
    if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
    else arcs.push(value);
    value = 0;
  }
  return arcs.join('.');
}

export interface Element {
  tag: number;
  /** The whole element, header included. */
  raw: Der;
  content: Der;
}

/** The elements directly inside `der` (a SEQUENCE's content, or a whole document). */
export function children(der: Der): Element[] {
  const out: Element[] = [];
  let at = 0;
  while (at < der.length) {
    const tag = der[at]!;
    let length = der[at + 1]!;
    let header = 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0 || count > 4) throw new Error('DER: unsupported length');
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + der[at + 2 + i]!;
      header += count;
    }
    const end = at + header + length;
    if (end > der.length) throw new Error('DER: element runs past the end');
    out.push({ tag, raw: der.subarray(at, end), content: der.subarray(at + header, end) });
    at = end;
  }
  return out;
}
