// AWS IoT Core's device gateway does not resume TLS sessions: every connection is a full
// handshake with the client certificate. So the emulator must not resume either, or a device
// that depends on resumption would pass here and fail in the field.
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { MQTT_ALPN } from '../../src/shared/protocol.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';

/**
 * One TLS connection with the claim (no MQTT): whether it resumed and, without `session`, the
 * sessions it was offered; with `session`, it offers that one and closes once the handshake is done.
 */
function connect(t: TestEmulator, session?: Buffer): Promise<{ reused: boolean; sessions: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const sessions: Buffer[] = [];
    const socket = tls.connect({
      host: '127.0.0.1',
      port: t.emulator.port,
      servername: t.emulator.endpoint,
      ca: t.emulator.caPem,
      cert: t.claim.certPem,
      key: t.claim.keyPem,
      ALPNProtocols: [MQTT_ALPN],
      ...(session ? { session } : {}),
    });
    socket.on('error', reject);
    let reused = false;
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
      if (session) socket.end();
    });
    // TLS 1.3 tickets come after the handshake: close once the first is in, as a client that
    // wants to resume would.
    if (!session) {
      socket.on('session', (s: Buffer) => {
        if (sessions.push(s) === 1) socket.end();
      });
    }
    socket.on('close', () => resolve({ reused, sessions }));
    socket.resume();
  });
}

describe('TLS sessions', () => {
  it('are never resumed: a session or ticket from one connection gives the next a full handshake', async () => {
    const t = await startTestEmulator();
    const first = await connect(t);
    expect(first.reused).toBe(false);
    expect(first.sessions.length).toBeGreaterThan(0);
    for (const session of first.sessions) expect((await connect(t, session)).reused).toBe(false);
  });
});
