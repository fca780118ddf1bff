// The emulator's TLS server certificate, kept in the state directory like a real endpoint's: the
// same certificate across restarts, reissued only when the names it must carry change, when it
// nears its end, or when the root changed. Its validity starts with the root's, so a device whose
// clock is hours slow still accepts it.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { serverNamesFor, type CertificateAuthority } from './ca.ts';

export const SERVER_CERT_FILE = 'server.cert.pem';
export const SERVER_KEY_FILE = 'server.key.pem';
/** Reissue a certificate that has less than this left. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
  /** False when the certificate on disk was still good. */
  issued: boolean;
}

/** Whether the certificate names exactly these DNS names and IPs. */
function namesExactly(x509: X509Certificate, names: string[]): boolean {
  const entries = (x509.subjectAltName ?? '').split(', ').filter(Boolean);
  return entries.length === names.length && names.every((n) => (isIP(n) ? x509.checkIP(n) : x509.checkHost(n, { wildcards: false })) !== undefined);
}

function stillGood(certPem: string, keyPem: string, ca: CertificateAuthority, names: string[], now: Date): boolean {
  try {
    const x509 = new X509Certificate(certPem);
    return (
      ca.signed(certPem) &&
      x509.checkPrivateKey(createPrivateKey(keyPem)) &&
      namesExactly(x509, names) &&
      Date.parse(x509.validTo) - now.getTime() > RENEW_BEFORE_MS &&
      Date.parse(x509.validFrom) <= ca.notBefore.getTime()
    );
  } catch {
    return false;
  }
}

/** The server certificate for `names` (plus localhost and friends) from `dir`, issued if needed. */
export async function loadOrIssueServerCertificate(dir: string, ca: CertificateAuthority, names: string[], now = new Date()): Promise<ServerCertificate> {
  const certPath = path.join(dir, SERVER_CERT_FILE);
  const keyPath = path.join(dir, SERVER_KEY_FILE);
  const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]).catch(() => [undefined, undefined]);
  if (certPem && keyPem && stillGood(certPem, keyPem, ca, serverNamesFor(names), now)) return { certPem, keyPem, issued: false };
  const fresh = ca.issueServer(names, now);
  // Key first: a crash in between leaves a certificate that fails the key check and is reissued.
  await writeFileAtomic(keyPath, fresh.keyPem, 0o600);
  await writeFileAtomic(certPath, fresh.certPem, 0o644);
  return { ...fresh, issued: true };
}
