// CSRs for tests, made by openssl (an independent implementation) so the emulator's parser is
// checked against real-world encodings.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type KeySpec = 'ec-p256' | 'ec-p384' | 'ec-p521' | 'rsa-1024' | 'rsa-2048' | 'ed25519';

const NEWKEY: Record<KeySpec, string[]> = {
  'ec-p256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'ec-p521': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'],
  'rsa-1024': ['-newkey', 'rsa:1024'],
  'rsa-2048': ['-newkey', 'rsa:2048'],
  ed25519: ['-newkey', 'ed25519'],
};

export function makeCsr(spec: KeySpec, commonName = 'device'): { csrPem: string; keyPem: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-csr-'));
  try {
    const keyPath = path.join(dir, 'key.pem');
    const csrPath = path.join(dir, 'csr.pem');
    execFileSync('openssl', ['req', '-new', ...NEWKEY[spec], '-nodes', '-keyout', keyPath, '-subj', `/CN=${commonName}`, '-out', csrPath], { stdio: 'pipe' });
    return { csrPem: readFileSync(csrPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
