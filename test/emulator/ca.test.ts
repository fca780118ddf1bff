import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority, certificateIdOf, checkCsr, createCa, CsrError } from '../../src/emulator/ca.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { makeCsr } from './csr.ts';

const ca = new CertificateAuthority(createCa());

describe('emulator CA', () => {
  it('issues a server certificate for localhost, 127.0.0.1, QEMU\'s host address and extra names', () => {
    const server = new X509Certificate(ca.issueServer(['emu.example', '10.0.0.7']).certPem);
    expect(server.subjectAltName).toContain('DNS:localhost');
    expect(server.subjectAltName).toContain('IP Address:127.0.0.1');
    // Devices under QEMU slirp reach the build host's emulator at 10.0.2.2.
    expect(server.checkIP('10.0.2.2')).toBe('10.0.2.2');
    expect(server.subjectAltName).toContain('DNS:emu.example');
    expect(server.subjectAltName).toContain('IP Address:10.0.0.7');
    expect(server.checkHost('emu.example')).toBe('emu.example');
    expect(server.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  });

  it('signs CSRs into client certificates that openssl verifies against the CA', async () => {
    const dir = await tmpDir();
    const cert = ca.issueFromCsr(makeCsr('ec-p256').csrPem);
    await writeFile(path.join(dir, 'ca.pem'), ca.certPem);
    await writeFile(path.join(dir, 'cert.pem'), cert);
    const out = execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', path.join(dir, 'ca.pem'), path.join(dir, 'cert.pem')]).toString();
    expect(out.trim()).toMatch(/cert\.pem: OK$/);
    expect(certificateIdOf(cert)).toBe(createHash('sha256').update(new X509Certificate(cert).raw).digest('hex'));
  });

  it('encodes every serial number as valid DER (positive, minimal)', () => {
    const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    for (let i = 0; i < 200; i++) {
      const serial = new X509Certificate(ca.issueClient(spki)).serialNumber;
      expect(serial).toMatch(/^(0[1-9A-F]|[1-7][0-9A-F])[0-9A-F]{30}$/);
    }
  });

  it('rejects text that is not a CSR', () => {
    expect(() => checkCsr('hello')).toThrow(CsrError);
    expect(() => checkCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----')).toThrow(/cannot be parsed/);
  });
});
