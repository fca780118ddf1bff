// The claim credentials, checked completely before the cloud is contacted (issue 13): a bad claim
// key is a configuration fault naming claimKeyPath (exit 78), never a network fault retried to the
// deadline. Certificate and root CA must parse, the key must parse, be the certificate's and be
// readable by root alone.
import { X509Certificate } from 'node:crypto';
import type { AgentConfig } from '../shared/config.ts';
import { Fault } from './errors.ts';
import { assertPrivateKeyFile, parsePrivateKey } from './keys.ts';
import { readConfiguredFile } from './local-files.ts';

export interface Claim {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export function parseCertificate(field: string, file: string, pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new Fault('claimFiles', `${field} ${file}: is not a PEM certificate`);
  }
}

export async function loadClaim(config: AgentConfig): Promise<Claim> {
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
  return { certPem, keyPem, caPem };
}
