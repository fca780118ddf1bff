import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority, certificateFacts, certificateIdOf, checkCsr, createCa, CsrError } from '../../src/emulator/ca.ts';
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

  it.each(['ec-p256', 'ec-p384'] as const)('certifies the key of a %s CSR, and refuses the CSR when its point is off the curve', (spec) => {
    const { csrPem, keyPem } = makeCsr(spec);
    const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    expect(Buffer.compare(checkCsr(csrPem), spki)).toBe(0);
    // The last byte of the key's y coordinate changed: no longer a point of the curve.
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
    der[der.indexOf(spki) + spki.length - 1]! ^= 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(() => checkCsr(tampered)).toThrow(/public key is not supported/);
  });

  it('writes the extensions openssl expects of a root, a server and a client certificate', async () => {
    const dir = await tmpDir();
    const text = async (pem: string) => {
      const file = path.join(dir, `${createHash('sha256').update(pem).digest('hex')}.pem`);
      await writeFile(file, pem);
      return execFileSync('openssl', ['x509', '-noout', '-text', '-in', file]).toString();
    };
    const root = await text(ca.certPem);
    expect(root).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(root).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    const server = await text(ca.issueServer(['::1', 'fe80::1:2']).certPem);
    expect(server).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(server).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication/);
    expect(server).toContain('IP Address:FE80:0:0:0:0:0:1:2');
    const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    const client = await text(ca.issueClient(spki));
    expect(client).toMatch(/Basic Constraints:\s+CA:FALSE/);
    expect(client).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(client).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication/);
    expect(client).toContain('Subject: CN = AWS IoT Certificate');
    // Past 2049 the validity is a GeneralizedTime (RFC 5280), which openssl reads back.
    expect(new Date(new X509Certificate(ca.issueClient(spki)).validTo).getUTCFullYear()).toBeGreaterThan(2049);
  });

  it('starts a new root two days back, and the server certificate with the root: a slow device clock still verifies', () => {
    const now = new Date('2030-06-01T12:00:00Z');
    const root = new CertificateAuthority(createCa(now));
    expect(root.notBefore.toISOString()).toBe('2030-05-30T12:00:00.000Z');
    const server = new X509Certificate(root.issueServer([], new Date('2031-01-01T00:00:00Z')).certPem);
    expect(new Date(server.validFrom).getTime()).toBe(root.notBefore.getTime());
    expect(new Date(server.validTo).toISOString()).toBe('2033-04-05T00:00:00.000Z');
  });

  it('reads id and end of validity from the DER as X509Certificate does (UTCTime and GeneralizedTime)', () => {
    const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
    for (const pem of [ca.issueClient(spki), ca.issueServer([]).certPem, ca.certPem]) {
      const x509 = new X509Certificate(pem);
      expect(certificateFacts(pem)).toEqual({ certificateId: createHash('sha256').update(x509.raw).digest('hex'), notAfter: new Date(x509.validTo) });
    }
  });
});
