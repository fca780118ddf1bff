// Small MQTT packets must leave at once, on both ends. With Nagle's algorithm on, a packet written
// right after another small one waits until the peer ACKs the first, and a peer with nothing to
// send delays its ACK (40 ms on Linux): the emulator's reply after its PUBACK, the agent's
// RegisterThing after its PUBACK of the certificate reply. Measured: a simulated device took
// 242 ms with Nagle on both ends, 38 ms with it off (docs/emulator.md, Throughput).
// Node cannot read TCP_NODELAY back, so these watch the real setNoDelay call on the real
// sockets (the call goes through: nothing is faked).
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MqttConnection } from '../../src/agent/mqtt/connection.ts';
import { tlsOptionsFor } from '../../src/agent/mqtt-session.ts';
import { CLIENT_ID_PREFIX, startTestEmulator, TEST_TLS_WORKERS, type TestEmulator } from '../helpers/emulator.ts';

/** Records every socket that setNoDelay(true) is called on, in this process. */
function watchNoDelay(): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  const original = net.Socket.prototype.setNoDelay;
  vi.spyOn(net.Socket.prototype, 'setNoDelay').mockImplementation(function (this: net.Socket, noDelay?: boolean) {
    if (noDelay !== false) sockets.add(this);
    return original.call(this, noDelay);
  });
  return sockets;
}

/** The agent's own MQTT connection with the claim, open (CONNACK received). */
async function agentConnection(t: TestEmulator, n: number): Promise<MqttConnection> {
  const tls = tlsOptionsFor({ host: '127.0.0.1', port: t.emulator.port, certPem: t.claim.certPem, keyPem: t.claim.keyPem, caPem: t.emulator.caPem });
  return MqttConnection.open({ tls: { ...tls, servername: t.emulator.endpoint }, clientId: `${CLIENT_ID_PREFIX}nagle-${n}`, protocolVersion: 5, keepaliveSec: 60 }, AbortSignal.timeout(10_000));
}

describe('Nagle off', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  // With TLS workers the emulator's sockets live in other processes, out of this spy's sight.
  it.skipIf(TEST_TLS_WORKERS !== undefined && TEST_TLS_WORKERS !== '0')('the emulator sets TCP_NODELAY on every device connection it accepts', async () => {
    const t = await startTestEmulator();
    const sockets = watchNoDelay();
    const connections = [await agentConnection(t, 1), await agentConnection(t, 2)];
    // The server's end of each connection: local port = the emulator's, remote port = the client's.
    const accepted = [...sockets].filter((s) => s.localPort === t.emulator.port);
    expect(accepted.map((s) => s.remotePort).sort()).toEqual(
      connections.map((c) => (c as unknown as { socket: net.Socket }).socket.localPort).sort(),
    );
    for (const c of connections) await c.end();
  });

  it("the agent's MQTT connection sets TCP_NODELAY on its socket", async () => {
    const t = await startTestEmulator();
    const sockets = watchNoDelay();
    const connection = await agentConnection(t, 1);
    const own = (connection as unknown as { socket: net.Socket }).socket;
    expect(sockets.has(own)).toBe(true);
    expect(own.remotePort).toBe(t.emulator.port);
    await connection.end();
  });
});
