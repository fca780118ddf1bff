// The agent's own MQTT client: packets byte for byte against the OASIS specs, framing at every
// split, and the connection against a scripted MQTT server over real TLS on 127.0.0.1 (refusals,
// closes, DISCONNECT, QoS 1 delivery). Interoperation with a real broker (aedes, MQTT 3.1.1 and 5)
// is what every end-to-end agent test does through the emulator.
import { once } from 'node:events';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { classify } from '../../src/agent/errors.ts';
import { ConnackError, ConnectionClosedError, MqttConnection } from '../../src/agent/mqtt/connection.ts';
import {
  connectPacket,
  PACKET,
  PacketReader,
  parsePublish,
  publishPacket,
  subscribePacket,
  varint,
  type RawPacket,
} from '../../src/agent/mqtt/packets.ts';
import { CertificateAuthority, createCa } from '../../src/emulator/ca.ts';

const hex = (b: Buffer) => b.toString('hex');

describe('MQTT packets', () => {
  it('encodes lengths as variable byte integers at every size boundary (MQTT 5.0 §1.5.5)', () => {
    expect(hex(varint(0))).toBe('00');
    expect(hex(varint(127))).toBe('7f');
    expect(hex(varint(128))).toBe('8001');
    expect(hex(varint(16_383))).toBe('ff7f');
    expect(hex(varint(16_384))).toBe('808001');
    expect(hex(varint(2_097_151))).toBe('ffff7f');
    expect(hex(varint(2_097_152))).toBe('80808001');
    expect(hex(varint(268_435_455))).toBe('ffffff7f');
    expect(() => varint(268_435_456)).toThrow(RangeError);
  });

  it('writes CONNECT for MQTT 3.1.1 and 5: clean session, keepalive, client id, no properties', () => {
    // 10 | len | 00 04 "MQTT" | level | 02 | keepalive 60 | [props 00] | 00 02 "fp"
    expect(hex(connectPacket('fp', 4, 60))).toBe('100e00044d5154540402003c00026670');
    expect(hex(connectPacket('fp', 5, 60))).toBe('100f00044d5154540502003c0000026670');
  });

  it('writes SUBSCRIBE with flags 0010 and QoS 1 per topic, and PUBLISH at QoS 1 with a packet id', () => {
    // 82 | len | packet id 0007 | [props 00] | 00 03 "a/b" | QoS 01
    expect(hex(subscribePacket(7, ['a/b'], 4))).toBe('820800070003612f6201');
    expect(hex(subscribePacket(7, ['a/b'], 5))).toBe('82090007000003612f6201');
    expect(hex(publishPacket('t', Buffer.from('{}'), 1, 0x0102, 4))).toBe('3207000174' + '0102' + '7b7d');
    expect(hex(publishPacket('t', Buffer.from('{}'), 1, 0x0102, 5))).toBe('3208000174' + '0102' + '00' + '7b7d');
  });

  it('reads an MQTT 5 PUBLISH past its properties', () => {
    // topic "t", packet id 9, properties: payload format indicator (0x01) = 1, payload "x"
    const body = Buffer.from('000174000902010178', 'hex');
    expect(parsePublish(0b0010, body, 5)).toEqual({ topic: 't', qos: 1, packetId: 9, payload: Buffer.from('x') });
  });

  it('frames packets however the stream splits them, and refuses one larger than the limit', () => {
    const stream = Buffer.concat([publishPacket('a/b', Buffer.alloc(300, 1), 1, 1, 5), Buffer.from('d000', 'hex'), connectPacket('x', 4, 0)]);
    const summary = (packets: RawPacket[]) => packets.map((p) => `${p.type}/${p.flags}/${hex(p.body)}`).join(' ');
    const whole = new PacketReader(1024).push(stream);
    expect(whole.map((p) => p.type)).toEqual([PACKET.publish, PACKET.pingresp, PACKET.connect]);
    for (let split = 1; split < stream.length; split++) {
      const reader = new PacketReader(1024);
      const parts = [...reader.push(stream.subarray(0, split)), ...reader.push(stream.subarray(split))];
      if (summary(parts) !== summary(whole)) expect.fail(`split at ${split} gives ${summary(parts)}`);
    }
    expect(() => new PacketReader(100).push(publishPacket('a', Buffer.alloc(200), 0, 0, 4))).toThrow(/exceeds 100/);
  });
});

/** An MQTT server over TLS that answers each client packet with `script`. */
async function scriptedServer(script: (packet: RawPacket, socket: TLSSocket) => void) {
  const ca = new CertificateAuthority(createCa());
  const { certPem, keyPem } = ca.issueServer(['localhost']);
  const server = createServer({ cert: certPem, key: keyPem }, (socket) => {
    const reader = new PacketReader(1 << 20);
    socket.on('data', (chunk: Buffer) => reader.push(chunk).forEach((p) => script(p, socket)));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const client = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const clientPem = client.export({ type: 'pkcs8', format: 'pem' }) as string;
  const clientCert = ca.issueClient(createPublicKey(client).export({ type: 'spki', format: 'der' }));
  return (version: 4 | 5, signal = new AbortController().signal) =>
    MqttConnection.open(
      {
        tls: { host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: ca.material.certPem, cert: clientCert, key: clientPem, servername: 'localhost' },
        clientId: 'fp-test',
        protocolVersion: version,
        keepaliveSec: 60,
      },
      signal,
    );
}

const reply = (socket: TLSSocket, hexBytes: string) => socket.write(Buffer.from(hexBytes, 'hex'));

describe('MqttConnection', () => {
  it.each([
    [4, '20020005', 5],
    [5, '2003008700', 0x87],
  ] as const)('MQTT %i: a refusing CONNACK is a ConnackError, classified as a configuration fault', async (version, connack, code) => {
    const open = await scriptedServer((p, socket) => p.type === PACKET.connect && reply(socket, connack));
    const error = await open(version).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnackError);
    expect((error as ConnackError).code).toBe(code);
    expect(classify(error)).toMatchObject({ kind: 'permanent', exitCode: 78 });
  });

  it('a close before CONNACK rejects, as a server refusing the client certificate under TLS 1.3 does', async () => {
    const open = await scriptedServer((p, socket) => p.type === PACKET.connect && socket.end());
    await expect(open(4)).rejects.toThrow(ConnectionClosedError);
  });

  it('an abort gives up the connect with its reason', async () => {
    const open = await scriptedServer(() => undefined);
    const controller = new AbortController();
    const opening = open(4, controller.signal);
    controller.abort(new Error('too slow'));
    await expect(opening).rejects.toThrow('too slow');
  });

  it('acknowledges an incoming QoS 1 PUBLISH with its packet id and hands the message over', async () => {
    const pubacks: string[] = [];
    const open = await scriptedServer((p, socket) => {
      if (p.type === PACKET.connect) reply(socket, '20020000');
      if (p.type === PACKET.subscribe) {
        reply(socket, `9003${hex(p.body.subarray(0, 2))}01`);
        socket.write(publishPacket('a/b', Buffer.from('hi'), 1, 0x4242, 4));
      }
      if (p.type === PACKET.puback) pubacks.push(hex(p.body));
    });
    const connection = await open(4);
    const message = new Promise((resolve) => connection.onMessage(resolve));
    expect(await connection.subscribe(['a/b'])).toEqual([1]);
    expect(await message).toMatchObject({ topic: 'a/b', qos: 1, payload: Buffer.from('hi') });
    await connection.end();
    expect(pubacks).toEqual(['4242']);
  });

  it('a server DISCONNECT (MQTT 5) fails what waits, naming the reason code', async () => {
    const open = await scriptedServer((p, socket) => {
      if (p.type === PACKET.connect) reply(socket, '2003000000');
      if (p.type === PACKET.subscribe) reply(socket, 'e0028700');
    });
    const connection = await open(5);
    await expect(connection.subscribe(['a/b'])).rejects.toThrow('the server disconnected (reason code 135)');
    expect(connection.closed).toBe(true);
  });
});
