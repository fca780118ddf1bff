// The MQTT control packets a fleet-provisioning client needs, in MQTT 3.1.1 (protocol level 4)
// and MQTT 5 (level 5): CONNECT, SUBSCRIBE, PUBLISH at QoS 0/1, PUBACK, PINGREQ, DISCONNECT out;
// CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP, DISCONNECT in. Pure encoders and a stream framer.
// References: OASIS MQTT Version 3.1.1 (2014) and MQTT Version 5.0 (2019), sections 2 and 3.
// We send no MQTT 5 properties, and no Topic Alias Maximum, so a server never sends topic aliases.

export const PACKET = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  subscribe: 8,
  suback: 9,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
} as const;

export type ProtocolVersion = 4 | 5;

/** Remaining Length / Variable Byte Integer (3.1.1 §2.2.3, 5.0 §1.5.5). */
export function varint(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 268_435_455) throw new RangeError(`MQTT length out of range: ${n}`);
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** A UTF-8 string with its two-byte length (§1.5.3 / §1.5.4). */
function utf8(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > 0xffff) throw new RangeError('MQTT string longer than 65535 bytes');
  return Buffer.concat([u16(bytes.length), bytes]);
}

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);

function packet(type: number, flags: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([(type << 4) | flags]), varint(body.length), body]);
}

/** Empty MQTT 5 properties; nothing in MQTT 3.1.1. */
const noProperties = (version: ProtocolVersion): Buffer => (version === 5 ? Buffer.from([0]) : Buffer.alloc(0));

export function connectPacket(clientId: string, version: ProtocolVersion, keepaliveSec: number): Buffer {
  const CLEAN_SESSION = 0x02; // Clean Session (3.1.1) / Clean Start (5)
  return packet(PACKET.connect, 0, utf8('MQTT'), Buffer.from([version, CLEAN_SESSION]), u16(keepaliveSec), noProperties(version), utf8(clientId));
}

/** SUBSCRIBE has the fixed-header flags 0b0010 (§3.8.1); each topic asks for QoS 1. */
export function subscribePacket(packetId: number, topics: string[], version: ProtocolVersion): Buffer {
  const entries = topics.map((t) => Buffer.concat([utf8(t), Buffer.from([1])]));
  return packet(PACKET.subscribe, 0b0010, u16(packetId), noProperties(version), ...entries);
}

export function publishPacket(topic: string, payload: Buffer, qos: 0 | 1, packetId: number, version: ProtocolVersion): Buffer {
  return packet(PACKET.publish, qos << 1, utf8(topic), qos > 0 ? u16(packetId) : Buffer.alloc(0), noProperties(version), payload);
}

/** PUBACK with success (MQTT 5 allows leaving out reason code 0 and the properties, §3.4.2.1). */
export const pubackPacket = (packetId: number): Buffer => packet(PACKET.puback, 0, u16(packetId));
export const pingreqPacket = (): Buffer => packet(PACKET.pingreq, 0);
export const disconnectPacket = (): Buffer => packet(PACKET.disconnect, 0);

export interface RawPacket {
  type: number;
  flags: number;
  body: Buffer;
}

/** Splits a byte stream into packets. Refuses a packet larger than `maxBytes` (AWS caps messages at 128 KB). */
export class PacketReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): RawPacket[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const packets: RawPacket[] = [];
    for (;;) {
      const header = readVarint(this.pending, 1);
      if (!header) break;
      if (header.value > this.maxBytes) throw new Error(`MQTT packet of ${header.value} bytes exceeds ${this.maxBytes}`);
      const end = header.next + header.value;
      if (this.pending.length < end) break;
      packets.push({ type: this.pending[0]! >> 4, flags: this.pending[0]! & 0x0f, body: this.pending.subarray(header.next, end) });
      this.pending = this.pending.subarray(end);
    }
    return packets;
  }
}

/** A Variable Byte Integer at `at`, or undefined when the buffer ends inside it. */
export function readVarint(buffer: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= buffer.length) return undefined;
    const byte = buffer[at + i]!;
    value += (byte & 0x7f) * 128 ** i;
    if ((byte & 0x80) === 0) return { value, next: at + i + 1 };
  }
  throw new Error('MQTT: malformed variable byte integer');
}

/** Skips MQTT 5 properties at `at` (we use none of them); returns the offset after them. */
function skipProperties(body: Buffer, at: number, version: ProtocolVersion): number {
  if (version !== 5) return at;
  const length = readVarint(body, at);
  if (!length) throw new Error('MQTT: truncated properties');
  return length.next + length.value;
}

/** CONNACK: 0 is accepted; anything else is the return code (3.1.1) or reason code (5) of a refusal. */
export function parseConnack(body: Buffer): { returnCode: number } {
  if (body.length < 2) throw new Error('MQTT: truncated CONNACK');
  return { returnCode: body[1]! };
}

/** SUBACK: the packet id and one granted QoS (or failure code >= 0x80) per topic. */
export function parseSuback(body: Buffer, version: ProtocolVersion): { packetId: number; codes: number[] } {
  if (body.length < 3) throw new Error('MQTT: truncated SUBACK');
  const start = skipProperties(body, 2, version);
  return { packetId: body.readUInt16BE(0), codes: [...body.subarray(start)] };
}

/** PUBACK: packet id and reason code (MQTT 5; 0 when left out, and always in 3.1.1). */
export function parsePuback(body: Buffer): { packetId: number; reasonCode: number } {
  if (body.length < 2) throw new Error('MQTT: truncated PUBACK');
  return { packetId: body.readUInt16BE(0), reasonCode: body.length > 2 ? body[2]! : 0 };
}

export interface IncomingPublish {
  topic: string;
  qos: number;
  packetId?: number;
  payload: Buffer;
}

export function parsePublish(flags: number, body: Buffer, version: ProtocolVersion): IncomingPublish {
  const qos = (flags >> 1) & 0x03;
  if (body.length < 2) throw new Error('MQTT: truncated PUBLISH');
  const topicEnd = 2 + body.readUInt16BE(0);
  if (topicEnd > body.length) throw new Error('MQTT: truncated PUBLISH topic');
  const topic = body.toString('utf8', 2, topicEnd);
  let at = topicEnd;
  let packetId: number | undefined;
  if (qos > 0) {
    if (at + 2 > body.length) throw new Error('MQTT: truncated PUBLISH packet id');
    packetId = body.readUInt16BE(at);
    at += 2;
  }
  at = skipProperties(body, at, version);
  return { topic, qos, packetId, payload: body.subarray(at) };
}

/** A server's DISCONNECT (MQTT 5 only): its reason code, 0 when left out. */
export const parseDisconnect = (body: Buffer): number => (body.length > 0 ? body[0]! : 0);
