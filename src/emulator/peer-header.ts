// The header a TLS worker writes at the start of each plaintext connection to the emulator's
// primary process: a 4-byte big-endian length, then the peer as JSON. The MQTT stream follows.
import type { Socket } from 'node:net';
import type { Peer } from './tls-front.ts';

/** A header is a few hundred bytes; anything longer is not from our worker. */
export const MAX_PEER_HEADER_BYTES = 4096;

export function encodePeerHeader(peer: Peer): Buffer {
  const body = Buffer.from(JSON.stringify(peer));
  const header = Buffer.allocUnsafe(4 + body.length);
  header.writeUInt32BE(body.length, 0);
  body.copy(header, 4);
  return header;
}

/** Checks the decoded JSON is a peer; throws naming what is wrong. */
export function parsePeer(body: Buffer): Peer {
  const value = JSON.parse(body.toString('utf8')) as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('peer header: expected a JSON object');
  const p = value as Record<string, unknown>;
  const optionalString = (key: string) => {
    if (p[key] !== undefined && typeof p[key] !== 'string') throw new Error(`peer header: ${key} must be a string`);
  };
  optionalString('certificateId');
  optionalString('servername');
  optionalString('remoteAddress');
  if (p.alpnProtocol !== false && typeof p.alpnProtocol !== 'string') throw new Error('peer header: alpnProtocol must be a string or false');
  if (p.remotePort !== undefined && typeof p.remotePort !== 'number') throw new Error('peer header: remotePort must be a number');
  return p as unknown as Peer;
}

/**
 * Reads the header off a fresh connection, leaving whatever follows it (the client's first MQTT
 * bytes) in the socket's buffer for the broker. The socket is left paused, in 'readable' mode.
 */
export function readPeerHeader(socket: Socket): Promise<Peer> {
  return new Promise((resolve, reject) => {
    let length: number | undefined;
    const done = (error?: Error, peer?: Peer) => {
      socket.off('readable', onReadable);
      socket.off('error', onEnd);
      socket.off('end', onEnd);
      if (error) reject(error);
      else resolve(peer!);
    };
    const onEnd = (error?: Error) => done(error ?? new Error('peer header: the connection ended before its header'));
    const onReadable = () => {
      if (length === undefined) {
        const prefix = socket.read(4) as Buffer | null;
        if (!prefix) return;
        length = prefix.readUInt32BE(0);
        if (length === 0 || length > MAX_PEER_HEADER_BYTES) return done(new Error(`peer header: ${length} bytes, expected 1 to ${MAX_PEER_HEADER_BYTES}`));
      }
      const body = socket.read(length) as Buffer | null;
      if (!body) return;
      try {
        done(undefined, parsePeer(body));
      } catch (error) {
        done(error as Error);
      }
    };
    socket.on('readable', onReadable);
    socket.on('error', onEnd);
    socket.on('end', onEnd);
  });
}
