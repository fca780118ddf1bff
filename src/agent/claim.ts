// The claim credentials, checked completely before the cloud is contacted (issue 13): a bad claim
// key is a configuration fault naming claimKeyPath (exit 78), never a network fault retried to the
// deadline. Certificate and root CA must parse, the key must parse, be the certificate's and be
// readable by root alone.
import { X509Certificate } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import type { AgentConfig } from '../shared/config.ts';
import { Fault } from './errors.ts';
import { assertPrivateKeyFile, parsePrivateKey } from './keys.ts';
import { readConfiguredFile } from './local-files.ts';

export interface Claim {
  certPem: string;
  keyPem: string;
  caPem: string;
  /** The claim certificate, parsed once (its notBefore is checked before every connection). */
  cert: X509Certificate;
  /**
   * A TLS context made from the three PEMs, reused by every claim connection. A device loads its
   * claim once per run and builds no context ahead; a caller running many devices with one claim
   * (fp-yocto simulate) passes one in (ProvisionOptions.claim) so N devices do not parse it N times.
   */
  secureContext?: SecureContext;
}

/** How many times loadClaim read and checked claim files in this thread (a test hook: simulate loads once per worker). */
let loads = 0;
export const claimLoadCount = (): number => loads;

export function parseCertificate(field: string, file: string, pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new Fault('claimFiles', `${field} ${file}: is not a PEM certificate`);
  }
}

export async function loadClaim(config: Pick<AgentConfig, 'claimCertPath' | 'claimKeyPath' | 'rootCaPath'>): Promise<Claim> {
  loads++;
  const certPem = await readConfiguredFile('claimFiles', 'claimCertPath', config.claimCertPath);
  const cert = parseCertificate('claimCertPath', config.claimCertPath, certPem);
  await assertPrivateKeyFile('claimFiles', 'claimKeyPath', config.claimKeyPath);
  const keyPem = await readConfiguredFile('claimFiles', 'claimKeyPath', config.claimKeyPath);
  const key = parsePrivateKey('claimFiles', 'claimKeyPath', config.claimKeyPath, keyPem);
  let pair: boolean;
  try {
    pair = cert.checkPrivateKey(key);
  } catch {
    pair = false;
  }
  if (!pair) {
    throw new Fault('claimFiles', `claimKeyPath ${config.claimKeyPath}: is not the key of the claim certificate (claimCertPath ${config.claimCertPath})`);
  }
  const caPem = await readConfiguredFile('claimFiles', 'rootCaPath', config.rootCaPath);
  parseCertificate('rootCaPath', config.rootCaPath, caPem);
  return { certPem, keyPem, caPem, cert };
}
