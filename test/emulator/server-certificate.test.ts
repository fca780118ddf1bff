// The server certificate a device sees: the same across restarts, new only when the names change,
// and valid for a device whose clock runs hours behind.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls, { type PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../src/emulator/index.ts';
import { SERVER_CERT_FILE } from '../../src/emulator/server-certificate.ts';
import { tmpDir } from '../helpers/tmp.ts';

/** The certificate the emulator presents in a real TLS handshake (no client certificate needed to see it). */
function presented(emulator: Emulator): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: emulator.port, servername: 'localhost', ca: emulator.caPem, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate());
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

async function withEmulator<T>(dir: string, serverNames: string[], fn: (emulator: Emulator) => Promise<T>): Promise<T> {
  const emulator = await startEmulator({ port: 0, dir, serverNames });
  try {
    return await fn(emulator);
  } finally {
    await emulator.close();
  }
}

describe('server certificate', () => {
  it('is kept across restarts and reissued only when the requested names change', async () => {
    const dir = path.join(await tmpDir(), 'state');
    const first = await withEmulator(dir, ['emu.test'], presented);
    const again = await withEmulator(dir, ['emu.test'], presented);
    expect(again.fingerprint256).toBe(first.fingerprint256);
    const renamed = await withEmulator(dir, ['emu.test', 'other.test'], presented);
    expect(renamed.fingerprint256).not.toBe(first.fingerprint256);
    expect(renamed.subjectaltname).toContain('DNS:other.test');
    // A certificate file that no longer matches its key is replaced, not served.
    await writeFile(path.join(dir, SERVER_CERT_FILE), await readFile(path.join(dir, 'root-ca.pem')));
    const repaired = await withEmulator(dir, ['emu.test', 'other.test'], presented);
    expect(repaired.fingerprint256).not.toBe(renamed.fingerprint256);
    expect(repaired.subjectaltname).toContain('DNS:other.test');
  });

  it('verifies for a device whose clock is a day slow (openssl verify -attime)', async () => {
    const dir = path.join(await tmpDir(), 'state');
    await withEmulator(dir, [], async () => undefined);
    const certPath = path.join(dir, SERVER_CERT_FILE);
    const dayAgo = Math.floor(Date.now() / 1000) - 86_400;
    const out = execFileSync('openssl', ['verify', '-attime', String(dayAgo), '-purpose', 'sslserver', '-CAfile', path.join(dir, 'root-ca.pem'), certPath]).toString();
    expect(out.trim()).toBe(`${certPath}: OK`);
    expect(new X509Certificate(await readFile(certPath)).checkHost('localhost')).toBe('localhost');
  });
});
