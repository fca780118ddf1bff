// The few DER (X.690) encodings a PKCS#10 request needs, and a reader for walking one. A CSR is
// a handful of fixed fields; this replaces ~170 KB of general ASN.1 libraries in the bundle
// (see the bench). test/agent/csr.test.ts checks the output with @peculiar/asn1-csr and openssl.

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
