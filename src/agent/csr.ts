// PKCS#10 certificate signing requests (RFC 2986), signed with node:crypto. The subject is
// CN=<device id>; AWS IoT takes only the public key from it.
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import {
  bitString,
  children,
  contextConstructed,
  nullValue,
  objectIdentifier,
  sequence,
  set,
  smallInteger,
  utf8String,
} from '../shared/der.ts';

const OID = {
  commonName: '2.5.4.3',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
};

function signatureAlgorithm(key: KeyObject): Uint8Array {
  // RSA AlgorithmIdentifiers carry an explicit NULL parameter (RFC 4055); ECDSA ones none (RFC 5758).
  if (key.asymmetricKeyType === 'ec') return sequence(objectIdentifier(OID.ecdsaWithSha256));
  if (key.asymmetricKeyType === 'rsa') return sequence(objectIdentifier(OID.sha256WithRsa), nullValue());
  throw new Error(`unsupported key type for a CSR: ${key.asymmetricKeyType}`);
}

/** Named curves of a JWK (RFC 7518) and their OIDs (RFC 5480). */
const CURVES: Record<string, string> = { 'P-256': '1.2.840.10045.3.1.7', 'P-384': '1.3.132.0.34', 'P-521': '1.3.132.0.35' };

/**
 * The SubjectPublicKeyInfo of `key`, DER. An EC key's is written here from its JWK coordinates
 * (RFC 5480: id-ecPublicKey, the named curve, the uncompressed point): node:crypto's SPKI export
 * goes through OpenSSL 3.0's encoders, 0.22 ms of CPU on a 2-core x86 VM against 0.01 ms for the
 * JWK. Other keys are exported as before.
 */
function spkiOf(key: KeyObject): Uint8Array {
  if (key.asymmetricKeyType === 'ec') {
    const { crv, x, y } = key.export({ format: 'jwk' });
    const curve = CURVES[crv ?? ''];
    if (curve && x && y) {
      const point = Buffer.concat([Uint8Array.of(0x04), Buffer.from(x, 'base64url'), Buffer.from(y, 'base64url')]);
      return sequence(sequence(objectIdentifier(OID.ecPublicKey), objectIdentifier(curve)), bitString(point));
    }
  }
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}

const toPem = (label: string, der: Uint8Array): string =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;

const fromPem = (pem: string): Buffer => Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');

/** A PEM CSR for `privateKey`, subject CN=commonName, no attributes. */
export function createCsr(privateKey: KeyObject, commonName: string): string {
  const subject = sequence(set(sequence(objectIdentifier(OID.commonName), utf8String(commonName))));
  const spki = spkiOf(privateKey);
  const info = sequence(smallInteger(0), subject, spki, contextConstructed(0));
  // node:crypto signs ECDSA as DER (r, s), which is what X.509 wants.
  const signature = sign('sha256', info, privateKey);
  return toPem('CERTIFICATE REQUEST', sequence(info, signatureAlgorithm(privateKey), bitString(signature)));
}

/** The public key a PEM CSR asks a certificate for (to check it against a configured key). */
export function csrPublicKey(pem: string): KeyObject {
  const [request] = children(fromPem(pem));
  const [info] = children(request?.tag === 0x30 ? request.content : new Uint8Array());
  const spki = children(info?.tag === 0x30 ? info.content : new Uint8Array())[2];
  if (!spki || spki.tag !== 0x30) throw new Error('not a PKCS#10 request');
  return createPublicKey({ key: Buffer.from(spki.raw), format: 'der', type: 'spki' });
}
