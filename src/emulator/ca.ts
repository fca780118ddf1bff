// The emulator's certificate authority: one local root that signs the server certificate and
// every client certificate (claim and device), plus CSR checking as AWS IoT does it.
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { QEMU_HOST_ADDRESS } from '../shared/protocol.ts';

const OID_COMMON_NAME = '2.5.4.3';
const OID_ORGANIZATION = '2.5.4.10';
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

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

/** AWS's certificate id: the SHA-256 of the certificate's DER, as 64 lowercase hex digits. */
export function certificateIdOf(certPemOrDer: string | Buffer): string {
  const der = typeof certPemOrDer === 'string' ? new X509Certificate(certPemOrDer).raw : certPemOrDer;
  return createHash('sha256').update(der).digest('hex');
}

function name(commonName: string, organization?: string): Name {
  const rdn = (type: string, value: string) =>
    new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) })]);
  return new Name([...(organization ? [rdn(OID_ORGANIZATION, organization)] : []), rdn(OID_COMMON_NAME, commonName)]);
}

function extension(extnID: string, value: unknown, critical = false): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

function keyId(spki: SubjectPublicKeyInfo): ArrayBuffer {
  const digest = createHash('sha1').update(Buffer.from(spki.subjectPublicKey)).digest();
  return digest.buffer.slice(digest.byteOffset, digest.byteOffset + digest.byteLength);
}

function spkiOf(key: KeyObject): SubjectPublicKeyInfo {
  return AsnConvert.parse(key.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
}

function toPem(der: ArrayBuffer | Buffer, label: string): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

interface IssueInput {
  subject: Name;
  spki: SubjectPublicKeyInfo;
  issuer: Name;
  issuerSpki: SubjectPublicKeyInfo;
  signingKey: KeyObject;
  days: number;
  extensions: Extension[];
  now: Date;
}

function issue(input: IssueInput): string {
  // Positive 128-bit serial in minimal DER: first byte 0x01-0x7f (not negative, no zero padding).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const notBefore = new Date(input.now.getTime() - 60_000);
  const notAfter = new Date(input.now.getTime() + input.days * 86_400_000);
  const algorithm = new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 });
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: serial.buffer.slice(serial.byteOffset, serial.byteOffset + serial.byteLength),
    signature: algorithm,
    issuer: input.issuer,
    validity: new Validity({ notBefore, notAfter }),
    subject: input.subject,
    subjectPublicKeyInfo: input.spki,
    extensions: new Extensions([
      ...input.extensions,
      extension(id_ce_subjectKeyIdentifier, new SubjectKeyIdentifier(keyId(input.spki))),
      extension(id_ce_authorityKeyIdentifier, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(keyId(input.issuerSpki)) })),
    ]),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign('sha256', tbsDer, input.signingKey);
  const cert = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: algorithm,
    signatureValue: signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength),
  });
  return toPem(AsnConvert.serialize(cert), 'CERTIFICATE');
}

/** A new self-signed root (EC P-256, 10 years). */
export function createCa(now = new Date()): CaMaterial {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const subject = name('fp-yocto emulator root CA', 'fp-yocto');
  const spki = spkiOf(publicKey);
  const certPem = issue({
    subject,
    spki,
    issuer: subject,
    issuerSpki: spki,
    signingKey: privateKey,
    days: 3650,
    now,
    extensions: [
      extension(id_ce_basicConstraints, new BasicConstraints({ cA: true }), true),
      extension(id_ce_keyUsage, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign), true),
    ],
  });
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

export class CertificateAuthority {
  readonly #subject: Name;
  readonly #spki: SubjectPublicKeyInfo;
  readonly #key: KeyObject;

  constructor(readonly material: CaMaterial) {
    const cert = AsnConvert.parse(new X509Certificate(material.certPem).raw, Certificate);
    this.#subject = cert.tbsCertificate.subject;
    this.#spki = cert.tbsCertificate.subjectPublicKeyInfo;
    this.#key = createPrivateKey(material.keyPem);
  }

  get certPem(): string {
    return this.material.certPem;
  }

  /** A TLS server certificate for localhost, 127.0.0.1 and any extra DNS names or IPs. */
  issueServer(names: string[], now = new Date()): { certPem: string; keyPem: string } {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const all = [...new Set(['localhost', '127.0.0.1', '::1', QEMU_HOST_ADDRESS, ...names])];
    const san = new SubjectAlternativeName(all.map((n) => (isIP(n) ? new GeneralName({ iPAddress: n }) : new GeneralName({ dNSName: n }))));
    const certPem = issue({
      subject: name(names[0] ?? 'localhost', 'fp-yocto emulator'),
      spki: spkiOf(publicKey),
      issuer: this.#subject,
      issuerSpki: this.#spki,
      signingKey: this.#key,
      days: 825,
      now,
      extensions: [
        extension(id_ce_basicConstraints, new BasicConstraints({ cA: false })),
        extension(id_ce_keyUsage, new KeyUsage(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment), true),
        extension(id_ce_extKeyUsage, new ExtendedKeyUsage([id_kp_serverAuth])),
        extension(id_ce_subjectAltName, san),
      ],
    });
    return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  }

  /** A client certificate for a public key (SPKI DER), the way AWS IoT signs device certificates. */
  issueClient(spkiDer: Buffer, now = new Date()): string {
    return issue({
      subject: name('AWS IoT Certificate'),
      spki: AsnConvert.parse(spkiDer, SubjectPublicKeyInfo),
      issuer: this.#subject,
      issuerSpki: this.#spki,
      signingKey: this.#key,
      // AWS IoT certificates are valid until 2049-12-31; 25 years is close enough.
      days: 9125,
      now,
      extensions: [
        extension(id_ce_basicConstraints, new BasicConstraints({ cA: false })),
        extension(id_ce_keyUsage, new KeyUsage(KeyUsageFlags.digitalSignature), true),
        extension(id_ce_extKeyUsage, new ExtendedKeyUsage([id_kp_clientAuth])),
      ],
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

/** Parses and checks a PEM CSR; returns the DER SubjectPublicKeyInfo to certify. Throws CsrError. */
export function checkCsr(csrPem: string): Buffer {
  if (typeof csrPem !== 'string') throw new CsrError('certificateSigningRequest must be a PEM string');
  const match = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(csrPem);
  if (!match) throw new CsrError('certificateSigningRequest is not a PEM certificate request');
  let csr: CertificationRequest;
  try {
    csr = AsnConvert.parse(Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64'), CertificationRequest);
  } catch {
    throw new CsrError('certificateSigningRequest cannot be parsed');
  }
  const spkiDer = Buffer.from(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  } catch {
    throw new CsrError('the CSR public key is not supported');
  }
  checkKey(key);
  const digest = CSR_SIGNATURE_DIGESTS[csr.signatureAlgorithm.algorithm];
  if (!digest) throw new CsrError(`the CSR signature algorithm ${csr.signatureAlgorithm.algorithm} is not supported`);
  const info = csr.certificationRequestInfoRaw
    ? Buffer.from(csr.certificationRequestInfoRaw)
    : Buffer.from(AsnConvert.serialize(csr.certificationRequestInfo));
  if (!verify(digest, info, key, Buffer.from(csr.signature))) throw new CsrError('the CSR signature is not valid');
  return spkiDer;
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
