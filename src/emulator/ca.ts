// The emulator's certificate authority: one local root that signs the server certificate and
// every client certificate (claim and device), plus CSR checking as AWS IoT does it. Certificates
// and CSRs are written and read with the small DER toolkit of src/shared/der.ts: the general
// ASN.1 libraries cost ~25 ms per device certificate, most of a provisioning's CPU time.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import {
  bitString,
  boolean,
  children,
  contextConstructed,
  contextPrimitive,
  integer,
  objectIdentifier,
  octetString,
  oidToString,
  sequence,
  set,
  time,
  tlv,
  utf8String,
  type Der,
} from '../shared/der.ts';
import { QEMU_HOST_ADDRESS } from '../shared/protocol.ts';

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

/** Signature algorithms a CSR may use, mapped to their digest. */
const CSR_SIGNATURE_DIGESTS: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

/** Key types AWS IoT accepts for device certificates. */
const ACCEPTED_CURVES = new Set(['prime256v1', 'secp384r1']);
const MIN_RSA_BITS = 2048;

export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

export class CsrError extends Error {
  override name = 'CsrError';
}

/** The DER of a PEM certificate (the first one in the text). */
function pemToDer(pem: string): Buffer {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem)?.[1];
  if (body === undefined) throw new Error('not a PEM certificate');
  return Buffer.from(body.replace(/\s+/g, ''), 'base64');
}

/** AWS's certificate id: the SHA-256 of the certificate's DER, as 64 lowercase hex digits. */
export function certificateIdOf(certPemOrDer: string | Buffer): string {
  const der = typeof certPemOrDer === 'string' ? pemToDer(certPemOrDer) : certPemOrDer;
  return createHash('sha256').update(der).digest('hex');
}

/** Reads an RFC 5280 validity time (UTCTime or GeneralizedTime, seconds, Zulu). */
function parseTime(element: { tag: number; content: Der }): Date {
  const text = Buffer.from(element.content).toString('ascii');
  const full = element.tag === 0x17 ? `${Number(text.slice(0, 2)) >= 50 ? '19' : '20'}${text}` : text;
  const m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(full);
  if (!m) throw new Error(`unsupported certificate time ${text}`);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}

/**
 * The id and end of validity of a certificate this CA issued, read straight from its DER: the
 * registry needs both for every certificate, and a full X.509 parse costs more than issuing one.
 */
export function certificateFacts(certPem: string): { certificateId: string; notAfter: Date } {
  const der = pemToDer(certPem);
  const tbs = children(children(der)[0]!.content)[0]!.content;
  const validity = children(children(tbs)[4]!.content);
  return { certificateId: certificateIdOf(der), notAfter: parseTime(validity[1]!) };
}

function name(commonName: string, organization?: string): Der {
  const rdn = (type: string, value: string) => set(sequence(objectIdentifier(type), utf8String(value)));
  return sequence(...(organization ? [rdn(OID.organization, organization)] : []), rdn(OID.commonName, commonName));
}

function extension(extnID: string, value: Der, critical = false): Der {
  return sequence(objectIdentifier(extnID), ...(critical ? [boolean(true)] : []), octetString(value));
}

/** KeyUsage bits (RFC 5280 4.2.1.3), as a DER named BIT STRING. */
const KEY_USAGE = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

function keyUsage(...bits: Array<keyof typeof KEY_USAGE>): Der {
  const byte = bits.reduce((b, name) => b | (0x80 >> KEY_USAGE[name]), 0);
  // DER drops trailing zero bits: the unused bits are those after the last one set.
  const unused = 7 - Math.max(...bits.map((name) => KEY_USAGE[name]));
  return tlv(0x03, Uint8Array.of(unused, byte));
}

/** The SubjectPublicKeyInfo's key bits: what a key identifier hashes (RFC 5280 4.2.1.2). */
function keyId(spki: Der): Buffer {
  const bits = children(children(spki)[0]!.content)[1]!.content;
  return createHash('sha1').update(bits.subarray(1)).digest();
}

function ipOctets(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Uint8Array.from(ip.split('.').map(Number));
  const [head, tail = ''] = ip.split('::') as [string, string?];
  const left = head ? head.split(':') : [];
  const right = ip.includes('::') && tail ? tail.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return Uint8Array.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

const toPem = (der: Der, label: string): string =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;

interface IssueInput {
  subject: Der;
  spki: Der;
  issuer: Der;
  /** The issuer's key identifier (keyId of its SubjectPublicKeyInfo). */
  issuerKeyId: Buffer;
  signingKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: Der[];
}

const SIGNATURE_ALGORITHM = sequence(objectIdentifier(OID.ecdsaWithSha256));

function issue(input: IssueInput): string {
  // Positive 128-bit serial in minimal DER: first byte 0x01-0x7f (not negative, no zero padding).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const algorithm = SIGNATURE_ALGORITHM;
  const tbs = sequence(
    contextConstructed(0, integer(Uint8Array.of(2))), // v3
    integer(serial),
    algorithm,
    input.issuer,
    sequence(time(input.notBefore), time(input.notAfter)),
    input.subject,
    input.spki,
    contextConstructed(
      3,
      sequence(
        ...input.extensions,
        extension(OID.subjectKeyIdentifier, octetString(keyId(input.spki))),
        extension(OID.authorityKeyIdentifier, sequence(contextPrimitive(0, input.issuerKeyId))),
      ),
    ),
  );
  return toPem(sequence(tbs, algorithm, bitString(sign('sha256', tbs, input.signingKey))), 'CERTIFICATE');
}

const DAY_MS = 86_400_000;
/**
 * How far back a new root's validity starts. A device checks the whole chain against its own
 * clock, and a device clock is often wrong by hours (an RTC kept in local time) before NTP: real
 * AWS endpoints present certificates far older than any such error.
 */
const CA_BACKDATE_MS = 2 * DAY_MS;

function spkiDerOf(key: KeyObject): Der {
  return key.export({ type: 'spki', format: 'der' });
}

/** A new self-signed root (EC P-256, 10 years), valid from two days before `now`. */
export function createCa(now = new Date()): CaMaterial {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const subject = name('fp-yocto emulator root CA', 'fp-yocto');
  const spki = spkiDerOf(publicKey);
  const certPem = issue({
    subject,
    spki,
    issuer: subject,
    issuerKeyId: keyId(spki),
    signingKey: privateKey,
    notBefore: new Date(now.getTime() - CA_BACKDATE_MS),
    notAfter: new Date(now.getTime() + 3650 * DAY_MS),
    extensions: [extension(OID.basicConstraints, sequence(boolean(true)), true), extension(OID.keyUsage, keyUsage('keyCertSign', 'cRLSign'), true)],
  });
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** The DNS names and IP addresses a server certificate is issued for (always localhost and friends). */
export function serverNamesFor(names: string[]): string[] {
  return [...new Set(['localhost', '127.0.0.1', '::1', QEMU_HOST_ADDRESS, ...names])];
}

export class CertificateAuthority {
  readonly #subject: Der;
  /** Hashed once: every certificate this CA issues names it (authority key identifier). */
  readonly #keyId: Buffer;
  readonly #key: KeyObject;
  /** When the root's validity starts: no certificate it issues may look younger to a device. */
  readonly notBefore: Date;

  constructor(readonly material: CaMaterial) {
    const x509 = new X509Certificate(material.certPem);
    const tbs = children(children(x509.raw)[0]!.content)[0]!.content;
    const fields = children(tbs);
    // version [0], serial, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    this.#subject = fields[5]!.raw;
    this.#keyId = keyId(fields[6]!.raw);
    this.#key = createPrivateKey(material.keyPem);
    this.notBefore = new Date(x509.validFrom);
  }

  get certPem(): string {
    return this.material.certPem;
  }

  /**
   * A TLS server certificate for localhost, 127.0.0.1, QEMU's host address and any extra DNS
   * names or IPs. It is valid from the root's own start, so a device whose clock the root
   * satisfies never finds the server certificate "not yet valid".
   */
  issueServer(names: string[], now = new Date(), days = 825): { certPem: string; keyPem: string } {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const all = serverNamesFor(names);
    const san = sequence(...all.map((n) => (isIP(n) ? contextPrimitive(7, ipOctets(n)) : contextPrimitive(2, Buffer.from(n, 'ascii')))));
    const certPem = issue({
      subject: name(names[0] ?? 'localhost', 'fp-yocto emulator'),
      spki: spkiDerOf(publicKey),
      issuer: this.#subject,
      issuerKeyId: this.#keyId,
      signingKey: this.#key,
      notBefore: this.notBefore,
      notAfter: new Date(now.getTime() + days * DAY_MS),
      extensions: [
        extension(OID.basicConstraints, sequence()),
        extension(OID.keyUsage, keyUsage('digitalSignature', 'keyEncipherment'), true),
        extension(OID.extKeyUsage, sequence(objectIdentifier(OID.serverAuth))),
        extension(OID.subjectAltName, san),
      ],
    });
    return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  }

  /** A client certificate for a public key (SPKI DER), the way AWS IoT signs device certificates. */
  issueClient(spkiDer: Buffer | Der, now = new Date()): string {
    return issue({
      subject: CLIENT_SUBJECT,
      spki: spkiDer,
      issuer: this.#subject,
      issuerKeyId: this.#keyId,
      signingKey: this.#key,
      notBefore: new Date(now.getTime() - 60_000),
      // AWS IoT certificates are valid until 2049-12-31; 25 years is close enough.
      notAfter: new Date(now.getTime() + 9125 * DAY_MS),
      extensions: CLIENT_EXTENSIONS,
    });
  }

  /** Signs a CSR after checking its signature and key (EC P-256/P-384 or RSA >= 2048). */
  issueFromCsr(csrPem: string, now = new Date()): string {
    return this.issueClient(checkCsr(csrPem), now);
  }

  /** Whether a certificate was signed by this CA (client certificates of another CA are refused). */
  signed(certPem: string): boolean {
    try {
      return new X509Certificate(certPem).verify(createPublicKey(this.material.certPem));
    } catch {
      return false;
    }
  }
}

const CLIENT_SUBJECT = name('AWS IoT Certificate');
// Encoded once: every device certificate carries the same ones.
const CLIENT_EXTENSIONS = [
  extension(OID.basicConstraints, sequence()),
  extension(OID.keyUsage, keyUsage('digitalSignature'), true),
  extension(OID.extKeyUsage, sequence(objectIdentifier(OID.clientAuth))),
];

/** Parses and checks a PEM CSR; returns the DER SubjectPublicKeyInfo to certify. Throws CsrError. */
export function checkCsr(csrPem: string): Buffer {
  if (typeof csrPem !== 'string') throw new CsrError('certificateSigningRequest must be a PEM string');
  const match = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(csrPem);
  if (!match) throw new CsrError('certificateSigningRequest is not a PEM certificate request');
  let csr: { info: Der; spki: Buffer; algorithm: string; signature: Der };
  try {
    // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
    const [top, ...trailing] = children(Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64'));
    const [info, algorithm, signature] = children(top!.content);
    if (top!.tag !== 0x30 || trailing.length > 0 || info?.tag !== 0x30 || algorithm?.tag !== 0x30 || signature?.tag !== 0x03) throw new Error('shape');
    // CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo, [0] attributes }
    const spki = children(info.content)[2];
    const oid = children(algorithm.content)[0];
    if (spki?.tag !== 0x30 || oid?.tag !== 0x06) throw new Error('shape');
    csr = { info: info.raw, spki: Buffer.from(spki.raw), algorithm: oidToString(oid.content), signature: signature.content.subarray(1) };
  } catch {
    throw new CsrError('certificateSigningRequest cannot be parsed');
  }
  let key = ecPublicKey(csr.spki);
  if (!key) {
    try {
      key = createPublicKey({ key: csr.spki, format: 'der', type: 'spki' });
    } catch {
      throw new CsrError('the CSR public key is not supported');
    }
    checkKey(key);
  }
  const digest = CSR_SIGNATURE_DIGESTS[csr.algorithm];
  if (!digest) throw new CsrError(`the CSR signature algorithm ${csr.algorithm} is not supported`);
  let valid = false;
  try {
    valid = verify(digest, csr.info, key, csr.signature);
  } catch {
    // A signature that is not even well-formed is just not valid.
  }
  if (!valid) throw new CsrError('the CSR signature is not valid');
  return csr.spki;
}

/** The named curves AWS IoT accepts, by their OID in an EC SubjectPublicKeyInfo, with the JWK name and coordinate size. */
const EC_CURVE_OIDS: Record<string, { crv: string; bytes: number }> = {
  '1.2.840.10045.3.1.7': { crv: 'P-256', bytes: 32 }, // prime256v1
  '1.3.132.0.34': { crv: 'P-384', bytes: 48 }, // secp384r1
};
const EC_PUBLIC_KEY_OID = '1.2.840.10045.2.1';

/**
 * An accepted EC key (P-256 or P-384, uncompressed point), imported as a JWK; undefined for
 * anything else, which takes the general path. Why: OpenSSL 3.0 decodes a DER key through its
 * decoder framework, about twice the cost of setting the coordinates, and a CSR's key is read
 * once per provisioning. OpenSSL still checks that the point is on the curve.
 */
function ecPublicKey(spki: Buffer): KeyObject | undefined {
  try {
    // SubjectPublicKeyInfo ::= SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve }, BIT STRING }
    const [algorithm, bits] = children(children(spki)[0]!.content);
    const [type, curveOid] = children(algorithm!.content);
    if (type?.tag !== 0x06 || curveOid?.tag !== 0x06 || bits?.tag !== 0x03 || oidToString(type.content) !== EC_PUBLIC_KEY_OID) return undefined;
    const curve = EC_CURVE_OIDS[oidToString(curveOid.content)];
    const point = bits.content.subarray(1);
    if (!curve || bits.content[0] !== 0 || point[0] !== 0x04 || point.length !== 1 + 2 * curve.bytes) return undefined;
    const coordinate = (from: number) => Buffer.from(point.subarray(from, from + curve.bytes)).toString('base64url');
    return createPublicKey({ key: { kty: 'EC', crv: curve.crv, x: coordinate(1), y: coordinate(1 + curve.bytes) }, format: 'jwk' });
  } catch {
    return undefined;
  }
}

function checkKey(key: KeyObject): void {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (!ACCEPTED_CURVES.has(details.namedCurve ?? '')) throw new CsrError(`EC curve ${details.namedCurve} is not accepted (use P-256 or P-384)`);
    return;
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < MIN_RSA_BITS) throw new CsrError(`RSA key of ${details.modulusLength} bits is too short (use at least ${MIN_RSA_BITS})`);
    return;
  }
  throw new CsrError(`key type ${key.asymmetricKeyType} is not accepted (use EC P-256, P-384 or RSA >= 2048)`);
}
