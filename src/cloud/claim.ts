// The claim credentials: the key pair is made here and only the CSR goes to AWS IoT
// (CreateCertificateFromCsr), so the claim private key never crosses the network.
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  Name,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';
import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';

const OID_COMMON_NAME = '2.5.4.3';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

const pem = (label: string, der: ArrayBuffer | Buffer): string => {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
};

export interface ClaimKey {
  /** PKCS#8 PEM; written with mode 0600 and never logged. */
  keyPem: string;
  csrPem: string;
}

/** A fresh EC P-256 key and a CSR for it, signed with it (proof of possession). */
export function makeClaimKey(commonName: string): ClaimKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const info = new CertificationRequestInfo({
    version: 0,
    subject: new Name([
      new RelativeDistinguishedName([
        new AttributeTypeAndValue({ type: OID_COMMON_NAME, value: new AttributeValue({ utf8String: commonName }) }),
      ]),
    ]),
    subjectPKInfo: AsnConvert.parse(publicKey.export({ format: 'der', type: 'spki' }), SubjectPublicKeyInfo),
  });
  const infoDer = AsnConvert.serialize(info);
  // node signs ECDSA in DER (r, s) form, which is what X.509 wants.
  const signature = sign('sha256', Buffer.from(infoDer), privateKey);
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: OID_ECDSA_WITH_SHA256 }),
    signature: new Uint8Array(signature).buffer,
  });
  return {
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    csrPem: pem('CERTIFICATE REQUEST', AsnConvert.serialize(csr)),
  };
}

/** True when the certificate was issued for this private key. */
export function certificateMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

export function certificateExpiry(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}
