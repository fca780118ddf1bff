// The CSR (our own small DER writer) is checked by independent parsers: @peculiar/asn1-csr, its
// signature verified with node:crypto, and the openssl CLI when one is installed.
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { describe, expect, it } from 'vitest';
import { createCsr, csrPublicKey } from '../../src/agent/csr.ts';
import { children, objectIdentifier, sequence } from '../../src/shared/der.ts';
import { generatePrivateKey } from '../../src/agent/keys.ts';
import { commandWorks } from '../helpers/commands.ts';

const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

const hasOpenssl = commandWorks('openssl', ['version']);

describe.each(['ec-p256', 'rsa-2048'] as const)('createCsr with %s', (algorithm) => {
  it('is a PKCS#10 request signed by the key, for its public key, CN = device id', async () => {
    const key = await generatePrivateKey(algorithm);
    const pem = createCsr(key, 'aabbccddeeff');
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n$/);

    const csr = AsnConvert.parse(der(pem), CertificationRequest);
    const info = csr.certificationRequestInfo;
    expect(info.version).toBe(0);
    const cn = info.subject[0]![0]!;
    expect(cn.type).toBe('2.5.4.3');
    expect(cn.value.toString()).toBe('aabbccddeeff');
    const expectedOid = algorithm === 'ec-p256' ? '1.2.840.10045.4.3.2' : '1.2.840.113549.1.1.11';
    expect(csr.signatureAlgorithm.algorithm).toBe(expectedOid);

    const publicKey = createPublicKey(key);
    expect(csrPublicKey(pem).export({ type: 'spki', format: 'der' })).toEqual(publicKey.export({ type: 'spki', format: 'der' }));
    const signed = Buffer.from(AsnConvert.serialize(info));
    expect(verify('sha256', signed, publicKey, Buffer.from(csr.signature))).toBe(true);
    // A flipped bit in what was signed must fail: the check above is not vacuous.
    signed[signed.length - 1]! ^= 1;
    expect(verify('sha256', signed, publicKey, Buffer.from(csr.signature))).toBe(false);
  });

  it.skipIf(!hasOpenssl)('passes openssl req -verify', async () => {
    const pem = createCsr(await generatePrivateKey(algorithm), 'dev-1');
    const out = execFileSync('openssl', ['req', '-noout', '-verify', '-subject'], { input: pem, encoding: 'utf8', stdio: 'pipe' });
    expect(out).toMatch(/subject=CN\s*=\s*dev-1/);
  });
});

describe('createCsr: the public key', () => {
  it.each([
    ['P-256', { namedCurve: 'prime256v1' }],
    ['P-384', { namedCurve: 'secp384r1' }],
    ['P-521', { namedCurve: 'secp521r1' }],
  ] as const)('of an EC %s key is byte for byte the SubjectPublicKeyInfo node:crypto exports', (_name, options) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', options);
    const csr = AsnConvert.parse(der(createCsr(privateKey, 'dev')), CertificationRequest);
    const written = Buffer.from(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
    expect(written).toEqual(publicKey.export({ type: 'spki', format: 'der' }));
  });
});

describe('DER encoding', () => {
  it('encodes object identifiers with multi-byte arcs', () => {
    expect(Buffer.from(objectIdentifier('1.2.840.113549.1.1.11')).toString('hex')).toBe('06092a864886f70d01010b');
    expect(Buffer.from(objectIdentifier('2.5.4.3')).toString('hex')).toBe('0603550403');
  });

  it('uses the long length form past 127 and 255 bytes, and reads it back', () => {
    for (const size of [127, 128, 255, 256, 70_000]) {
      const encoded = sequence(new Uint8Array(size));
      const [element] = children(encoded);
      expect(element!.tag).toBe(0x30);
      expect(element!.content.length).toBe(size);
      expect(element!.raw.length).toBe(encoded.length);
    }
    expect(Buffer.from(sequence(new Uint8Array(128))).subarray(0, 3).toString('hex')).toBe('308180');
    expect(Buffer.from(sequence(new Uint8Array(256))).subarray(0, 4).toString('hex')).toBe('30820100');
  });

  it('refuses truncated input', () => {
    expect(() => children(Uint8Array.of(0x30, 0x05, 0x00))).toThrow(/past the end/);
  });
});
