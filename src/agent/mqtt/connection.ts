// One MQTT connection over a TLS socket: CONNECT/CONNACK, QoS 1 SUBSCRIBE and PUBLISH with their
// acknowledgements, incoming PUBLISH (acknowledged when QoS 1), keepalive pings, DISCONNECT.
// It never reconnects: the agent retries whole attempts itself, with backoff. Transport only;
// the fleet-provisioning request/reply pattern is mqtt-session.ts.
//
// Why not MQTT.js here (it stays in the emulator and the tests): measured in the agent bundle it
// was ~235 KB of 393 KB (with readable-stream, lru-cache, worker-timers...) and, loaded, ~20 MB
// of the agent's 70 MB peak RSS; a device client needs the dozen packets below. See
// docs/architecture.md ("The agent's MQTT client").
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import {
  connectPacket,
  disconnectPacket,
  PACKET,
  PacketReader,
  parseConnack,
  parseDisconnect,
  parsePuback,
  parsePublish,
  parseSuback,
  pingreqPacket,
  publishPacket,
  pubackPacket,
  subscribePacket,
  type IncomingPublish,
  type ProtocolVersion,
  type RawPacket,
} from './packets.ts';
import { checkServerIdentityOnLeaf } from './leaf-identity-check.ts';

/** AWS IoT Core caps a message at 128 KB; anything much larger is not a fleet-provisioning reply. */
const MAX_PACKET_BYTES = 256 * 1024;

/** The server refused the connection in its CONNACK; `code` is the return or reason code. */
export class ConnackError extends Error {
  constructor(readonly code: number) {
    super(`the server refused the connection (CONNACK ${code}: ${CONNACK_REASONS[code] ?? 'refused'})`);
    this.name = 'ConnackError';
  }
}

const CONNACK_REASONS: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
  0x86: 'bad user name or password',
  0x87: 'not authorized',
  0x88: 'server unavailable',
  0x89: 'server busy',
  0x97: 'quota exceeded',
};

/** The connection ended; `reason` says how, for the log. */
export class ConnectionClosedError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'ConnectionClosedError';
  }
}

export interface ConnectOptions {
  tls: ConnectionOptions;
  /**
   * Instead of a connection made from `tls`: a stream that is a TLS connection already (bytes
   * written to it wait for its handshake), such as openssl s_client with a TPM key (tpm/openssl-tls.ts).
   */
  stream?: Duplex;
  clientId: string;
  protocolVersion: ProtocolVersion;
  keepaliveSec: number;
}

interface Waiter {
  resolve: (body: Buffer) => void;
  reject: (error: Error) => void;
}

export class MqttConnection {
  private readonly reader = new PacketReader(MAX_PACKET_BYTES);
  /** Outstanding SUBSCRIBE and PUBLISH packets, by packet id. */
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;
  private closedBy: ConnectionClosedError | undefined;
  private ping: NodeJS.Timeout | undefined;
  private messageHandler: (message: IncomingPublish) => void = () => undefined;
  private closeHandlers: Array<(error: ConnectionClosedError) => void> = [];

  private constructor(
    private readonly socket: Duplex,
    private readonly version: ProtocolVersion,
  ) {}

  /**
   * Opens the TLS connection and sends CONNECT. Resolves on an accepting CONNACK; rejects on a
   * refusal (ConnackError), a socket error (TLS verification codes included), a close before
   * CONNACK (how a server that refuses our certificate under TLS 1.3 answers), or when `signal`
   * aborts (with its reason; the socket is destroyed).
   */
  static open(options: ConnectOptions, signal: AbortSignal): Promise<MqttConnection> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        options.stream?.destroy();
        return reject(signal.reason);
      }
      // Nagle off: a PUBLISH written just after a PUBACK would otherwise wait for the server's
      // delayed ACK of the PUBACK (40 ms on Linux) before it leaves (eclipse-mosquitto/mosquitto#1526
      // measured the same for QoS 1 publishers). tls.connect passes no noDelay option on to its
      // TCP socket, so it is set here. The server's name is checked on the leaf alone
      // (leaf-identity-check.ts: Node would build the whole chain for it).
      const socket = options.stream ?? checkServerIdentityOnLeaf(tlsConnect(options.tls).setNoDelay(true));
      const connection = new MqttConnection(socket, options.protocolVersion);
      const onAbort = () => {
        reject(signal.reason);
        connection.destroy();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      connection.onClose(() => signal.removeEventListener('abort', onAbort));
      let accepted = false;
      const sendConnect = () => socket.write(connectPacket(options.clientId, options.protocolVersion, options.keepaliveSec));
      if (options.stream) sendConnect();
      else socket.once('secureConnect', sendConnect);
      socket.on('data', (chunk: Buffer) => {
        let packets: RawPacket[];
        try {
          packets = connection.reader.push(chunk);
        } catch (error) {
          connection.fail(`protocol error: ${(error as Error).message}`);
          return;
        }
        for (const p of packets) {
          if (!accepted) {
            if (p.type !== PACKET.connack) return connection.fail('the server sent something else before CONNACK');
            const { returnCode } = parseConnack(p.body);
            if (returnCode !== 0) {
              reject(new ConnackError(returnCode));
              connection.destroy();
              return;
            }
            accepted = true;
            signal.removeEventListener('abort', onAbort);
            connection.startPing(options.keepaliveSec);
            resolve(connection);
            continue;
          }
          connection.handle(p);
        }
      });
      socket.on('error', (error) => {
        if (!accepted) reject(error);
        connection.fail(`${(error as NodeJS.ErrnoException).code ?? 'error'}: ${error.message}`);
      });
      socket.on('close', () => {
        if (!accepted) reject(new ConnectionClosedError('the server closed the connection before accepting it'));
        connection.fail('the connection closed');
      });
    });
  }

  onMessage(handler: (message: IncomingPublish) => void): void {
    this.messageHandler = handler;
  }

  onClose(handler: (error: ConnectionClosedError) => void): void {
    this.closeHandlers.push(handler);
  }

  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  /** SUBSCRIBE at QoS 1; resolves to one code per topic (granted QoS, or >= 0x80 for a failure). */
  async subscribe(topics: string[]): Promise<number[]> {
    const id = this.packetId();
    const body = await this.send(id, subscribePacket(id, topics, this.version));
    return parseSuback(body, this.version).codes;
  }

  /** PUBLISH at QoS 1; resolves on PUBACK. An MQTT 5 PUBACK with a failure reason rejects. */
  async publish(topic: string, payload: Buffer): Promise<void> {
    const id = this.packetId();
    const { reasonCode } = parsePuback(await this.send(id, publishPacket(topic, payload, 1, id, this.version)));
    if (reasonCode >= 0x80) throw new Error(`PUBLISH to ${topic} refused (reason code ${reasonCode})`);
  }

  /** DISCONNECT, then the socket ends; resolves when it is closed (or at once if it was). */
  end(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.onClose(() => resolve());
      this.socket.end(disconnectPacket());
    });
  }

  destroy(): void {
    this.socket.destroy();
    this.fail('the connection was closed by the client');
  }

  private packetId(): number {
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffff) + 1;
    return id;
  }

  private send(id: number, bytes: Buffer): Promise<Buffer> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.socket.write(bytes);
    });
  }

  private handle(p: RawPacket): void {
    switch (p.type) {
      case PACKET.suback:
      case PACKET.puback: {
        const id = p.body.length >= 2 ? p.body.readUInt16BE(0) : -1;
        const waiter = this.waiting.get(id);
        this.waiting.delete(id);
        waiter?.resolve(p.body);
        return;
      }
      case PACKET.publish: {
        let message: IncomingPublish;
        try {
          message = parsePublish(p.flags, p.body, this.version);
        } catch (error) {
          this.fail(`protocol error: ${(error as Error).message}`);
          return;
        }
        if (message.qos === 1 && message.packetId !== undefined) this.socket.write(pubackPacket(message.packetId));
        this.messageHandler(message);
        return;
      }
      case PACKET.disconnect:
        this.fail(`the server disconnected (reason code ${parseDisconnect(p.body)})`);
        this.socket.destroy();
        return;
      default:
        // PINGRESP, and anything a server may add: nothing to do.
        return;
    }
  }

  private startPing(keepaliveSec: number): void {
    if (keepaliveSec <= 0) return;
    this.ping = setInterval(() => this.socket.write(pingreqPacket()), keepaliveSec * 1000);
    this.ping.unref();
  }

  /** Ends the connection's life once: every waiter and close handler learns why. */
  private fail(reason: string): void {
    if (this.closedBy) return;
    this.closedBy = new ConnectionClosedError(reason);
    clearInterval(this.ping);
    for (const waiter of this.waiting.values()) waiter.reject(this.closedBy);
    this.waiting.clear();
    for (const handler of this.closeHandlers) handler(this.closedBy);
    if (!this.socket.destroyed) this.socket.destroy();
  }
}
