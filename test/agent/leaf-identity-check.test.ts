// The agent checks the server's name on the leaf certificate alone (src/agent/mqtt/leaf-identity-check.ts):
// Node's own check would first build the whole peer chain as JS objects, ~0.6 ms of CPU a
// connection. These watch the real method on the real sockets (a pass-through spy) and show the
// check still refuses a server that is not the one asked for.
import { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MqttConnection } from '../../src/agent/mqtt/connection.ts';
import { tlsOptionsFor } from '../../src/agent/mqtt-session.ts';
import { CLIENT_ID_PREFIX, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';

/** Every getPeerCertificate call on a TLS socket in this process: the socket and its `detailed` argument. */
function watchPeerCertificateCalls(): Array<{ socket: TLSSocket; detailed: boolean }> {
  const calls: Array<{ socket: TLSSocket; detailed: boolean }> = [];
  const original = TLSSocket.prototype.getPeerCertificate;
  vi.spyOn(TLSSocket.prototype, 'getPeerCertificate').mockImplementation(function (this: TLSSocket, detailed?: boolean) {
    calls.push({ socket: this, detailed: detailed === true });
    return original.call(this, detailed as true);
  } as typeof original);
  return calls;
}

function open(t: TestEmulator, servername: string): Promise<MqttConnection> {
  const tls = tlsOptionsFor({ host: '127.0.0.1', port: t.emulator.port, certPem: t.claim.certPem, keyPem: t.claim.keyPem, caPem: t.emulator.caPem });
  return MqttConnection.open({ tls: { ...tls, servername }, clientId: `${CLIENT_ID_PREFIX}leaf-check`, protocolVersion: 5, keepaliveSec: 60 }, AbortSignal.timeout(10_000));
}

const socketOf = (c: MqttConnection) => (c as unknown as { socket: TLSSocket }).socket;

describe("the agent's server-name check", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('reads the leaf alone during the handshake, and leaves Node its method afterwards', async () => {
    const t = await startTestEmulator();
    const calls = watchPeerCertificateCalls();
    const connection = await open(t, t.emulator.endpoint);
    const socket = socketOf(connection);
    const own = calls.filter((c) => c.socket === socket);
    // Node's check ran (one call), on the leaf: no chain was built for it.
    expect(own).toEqual([{ socket, detailed: false }]);
    // Afterwards the socket's method is Node's again: the chain is there for whoever asks.
    expect(Object.hasOwn(socket, 'getPeerCertificate')).toBe(false);
    const chain = socket.getPeerCertificate(true);
    expect(chain.issuerCertificate?.subject.CN).toBe(chain.issuer.CN);
    await connection.end();
  });

  it('still refuses a server whose certificate does not name the host asked for', async () => {
    const t = await startTestEmulator();
    await expect(open(t, 'not-the-endpoint.example')).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
});
