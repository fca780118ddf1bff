// The MQTT side: aedes, fed connections whose mutual TLS is done (tls-front.ts in this thread, or a
// TLS worker process, tls-workers.ts). Clients are identified by their certificate,
// every CONNECT, PUBLISH, SUBSCRIBE and delivery is checked against the certificate's IoT
// policies, and fleet-provisioning requests are answered to the requesting connection only.
import { Aedes, type Client } from 'aedes';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { EMULATOR_ACCOUNT_ID, EMULATOR_REGION } from './arn.ts';
import { connectRefusal, effectiveKeepAlive, MAX_CLIENT_ID_BYTES, MAX_PACKET_BYTES, publishRefusal, subscribeRefusal, type PublishLike } from './aws-limits.ts';
import type { FaultState } from './faults.ts';
import { encodePayload, requestKindOf, type FleetProvisioning } from './fleet-provisioning.ts';
import { compilePolicy, parsePolicyDocument, resourceArnFor, type IotAction, type PolicyCheck, type PolicyContext, type PolicyStatement } from './policy.ts';
import type { PolicyRecord, Registry } from './registry.ts';
import type { Peer } from './tls-front.ts';

export interface BrokerOptions {
  registry: Registry;
  provisioning: FleetProvisioning;
  faults: FaultState;
  now: () => number;
  /** AWS allows one CONNECT per second per client id; tests may turn it off. */
  connectRateLimit: boolean;
  log: (line: string) => void;
}

interface ConnectPacket {
  protocolVersion: number;
  keepalive: number;
  will?: { topic: string; payload: Buffer; qos: number; retain: boolean } | null;
}

/**
 * aedes (2.0.0-beta.1) offers no hook before it handles a PUBLISH or SUBSCRIBE (its authorize
 * hooks run after it has started: SUBACK and PUBACK follow). This wraps its parser's packet
 * listener so that a refused packet is never handed to it; after a refusal nothing more is.
 */
function gatePackets(client: Client, refusal: (packet: { cmd: string }) => string | undefined, drop: (why: string) => void): void {
  const parser = (client as unknown as { _parser: EventEmitter })._parser;
  const [handle] = parser.listeners('packet') as Array<(this: unknown, packet: { cmd: string }) => void>;
  if (!handle) throw new Error('aedes internals changed: no packet listener to gate');
  parser.removeListener('packet', handle);
  let refused = false;
  parser.on('packet', function (this: unknown, packet: { cmd: string }) {
    if (refused) return;
    const why = refusal(packet);
    if (why === undefined) return handle.call(this, packet);
    refused = true;
    drop(why);
  });
}

/**
 * aedes announces every connect, SUBSCRIBE, UNSUBSCRIBE and disconnect by publishing to
 * `$SYS/<broker id>/...` through itself, to any subscriber (its cluster bookkeeping). AWS IoT Core
 * has no `$SYS` topics: there a client allowed `$SYS/#` receives nothing, here it would learn every
 * other device's client id. They are dropped before aedes routes them: eight a provisioned device
 * (claim and verification connections), each a full pass through aedes's publish pipeline.
 */
function dropSysAnnouncements(aedes: Aedes): void {
  // Its types show publish(packet, done); it is publish(packet, client?, done?) (aedes.js).
  type Done = (error?: Error) => void;
  const publish = aedes.publish.bind(aedes) as unknown as (packet: unknown, client: unknown, done?: Done) => void;
  aedes.publish = ((packet: { topic: string }, client: Client | Done | null, done?: Done) => {
    if (!packet.topic.startsWith('$SYS/')) return publish(packet, client, done);
    (typeof client === 'function' ? client : done)?.();
  }) as unknown as Aedes['publish'];
}

interface Session {
  certificateId: string;
  ctx: PolicyContext;
  /** The certificate's policies compiled for this connection, and the documents they came from. */
  policy?: { documents: readonly PolicyRecord[]; check: PolicyCheck };
}

/** MQTT topic-filter matching (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i > 0 || !topic.startsWith('$');
    if (i >= t.length) return false;
    if (f[i] === '+') {
      if (i === 0 && t[0]!.startsWith('$')) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * The QoS of a fleet-provisioning reply: a subscribed client gets it at the highest QoS its
 * matching subscriptions granted; an unsubscribed one at the QoS of its request (AWS does not
 * document this case). Never above 1: AWS IoT has no QoS 2.
 */
export function replyQos(subscriptions: Record<string, { qos?: number }>, topic: string, requestQos: number): 0 | 1 {
  let granted: number | undefined;
  for (const [filter, sub] of Object.entries(subscriptions))
    if (topicMatches(filter, topic)) granted = Math.max(granted ?? 0, sub.qos ?? 0);
  return Math.min(granted ?? requestQos, 1) as 0 | 1;
}

/** aedes keeps a client's granted subscriptions (filter -> { qos }) on the client; its types omit them. */
const subscriptionsOf = (client: Client): Record<string, { qos?: number }> =>
  (client as unknown as { subscriptions?: Record<string, { qos?: number }> }).subscriptions ?? {};

export class Broker {
  readonly #sessions = new WeakMap<Client, Session>();
  readonly #peers = new WeakMap<Duplex, Peer>();
  readonly #lastConnect = new Map<string, number>();
  readonly #connections = new Set<Duplex>();
  #aedes!: Aedes;

  private constructor(private readonly opts: BrokerOptions) {}

  static async start(opts: BrokerOptions): Promise<Broker> {
    const broker = new Broker(opts);
    broker.#aedes = await Aedes.createBroker({
      // Larger packets are refused from their fixed header on, before their body is buffered.
      maximumPacketSize: MAX_PACKET_BYTES,
      preConnect: (client, packet, done) => broker.#preConnect(client, packet as unknown as ConnectPacket, done),
      authenticate: (client, _u, _p, done) => broker.#authenticate(client, done),
      authorizePublish: (client, packet, done) => broker.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => broker.#authorizeSubscribe(client, sub, done),
      authorizeForward: (client, packet) => broker.#authorizeForward(client, packet),
    });
    // Client ids index aedes's table of connected clients: "constructor" must not find a method.
    Object.assign(broker.#aedes, { clients: Object.create(null) });
    dropSysAnnouncements(broker.#aedes);
    return broker;
  }

  /**
   * Serves one device connection whose TLS layer is done: a TLS socket of the emulator's own
   * front, or the plaintext stream a TLS worker passes on (tls-workers.ts), with its peer.
   */
  handle(connection: Duplex, peer: Peer): void {
    this.#peers.set(connection, peer);
    this.#connections.add(connection);
    connection.once('close', () => this.#connections.delete(connection));
    const client = this.#aedes.handle(connection) as unknown as Client;
    // aedes keys these by client input (topic filters, broker ids) in plain objects, where
    // "__proto__" or "constructor" would find Object.prototype's members.
    Object.assign(client, { subscriptions: Object.create(null), duplicates: Object.create(null) });
    gatePackets(client, (packet) => this.#refusal(client, packet), (why) => this.#drop(client, why));
  }

  async close(): Promise<void> {
    for (const connection of this.#connections) connection.destroy();
    await new Promise<void>((resolve) => this.#aedes.close(() => resolve()));
  }

  /** Parsed policy documents, by their text: a document changes by being replaced. */
  readonly #parsedPolicies = new Map<string, PolicyStatement[]>();

  #parsed(document: string): PolicyStatement[] {
    let statements = this.#parsedPolicies.get(document);
    if (!statements) {
      try {
        statements = parsePolicyDocument(document);
      } catch {
        statements = [];
      }
      if (this.#parsedPolicies.size >= 1000) this.#parsedPolicies.clear();
      this.#parsedPolicies.set(document, statements);
    }
    return statements;
  }

  #allowed(session: Session, action: IotAction, name: string): boolean {
    // The registry hands out the same documents array until the certificate's policies change
    // (attach, detach, a policy replaced): a new array is what makes the connection recompile.
    const documents = this.opts.registry.policyDocumentsOf(session.certificateId);
    if (session.policy?.documents !== documents)
      session.policy = { documents, check: compilePolicy(documents.flatMap((p) => this.#parsed(p.policyDocument)), session.ctx) };
    return session.policy.check(action, resourceArnFor(action, name, EMULATOR_REGION, EMULATOR_ACCOUNT_ID));
  }

  #preConnect(client: Client, packet: ConnectPacket, done: (error: Error | null, ok: boolean) => void): void {
    if (this.opts.faults.takeDrop('connect')) {
      this.opts.log('fault: dropping a connection at CONNECT');
      client.conn.destroy();
      return done(null, false);
    }
    // A will at QoS 2 is refused like any QoS 2 publish: the connection is closed.
    const refused = packet.will ? connectRefusal({ clientId: '', will: packet.will }) : undefined;
    if (refused) {
      this.#drop(client, refused);
      return done(null, false);
    }
    // AWS's keep-alive bounds; an MQTT 5 client is told the value it got (Server Keep Alive).
    const keepalive = effectiveKeepAlive(packet.keepalive);
    if (keepalive !== packet.keepalive) {
      if (packet.protocolVersion === 5) Object.assign(client, { _serverKeepAlive: keepalive });
      else packet.keepalive = keepalive;
    }
    done(null, true);
  }

  /** What AWS would refuse in a packet from this client, if anything. */
  #refusal(client: Client, packet: { cmd: string }): string | undefined {
    if (packet.cmd === 'publish') {
      const p = packet as unknown as PublishLike & { properties?: { topicAlias?: number } };
      // An aliased publish carries no topic; aedes resolves (or refuses) the alias.
      if (p.topic === '' && p.properties?.topicAlias) return undefined;
      return publishRefusal(p);
    }
    if (packet.cmd === 'subscribe')
      return subscribeRefusal((packet as unknown as { subscriptions: Array<{ topic: string; qos: number }> }).subscriptions, Object.keys(subscriptionsOf(client)).length);
    return undefined;
  }

  /** Closes a connection without answering the packet, as AWS does for what it refuses. */
  #drop(client: Client, why: string): void {
    this.opts.log(`mqtt: closing the connection of client ${client.id ?? '(connecting)'}: ${why}`);
    client.conn.destroy();
  }

  #authenticate(client: Client, done: (error: (Error & { returnCode: number }) | null, ok: boolean | null) => void): void {
    const refuse = (why: string, returnCode = 5) => {
      this.opts.log(`connect: refused client ${client.id}: ${why}`);
      done(Object.assign(new Error(why), { returnCode }), false);
    };
    if (Buffer.byteLength(client.id, 'utf8') > MAX_CLIENT_ID_BYTES) return refuse(`client id is longer than ${MAX_CLIENT_ID_BYTES} bytes`, 2);
    const certificateId = this.#peers.get(client.conn as unknown as Duplex)?.certificateId;
    if (!certificateId) return refuse('no client certificate');
    const cert = this.opts.registry.getCertificate(certificateId);
    if (!cert) return refuse(`unknown certificate ${certificateId}`);
    if (cert.status !== 'ACTIVE') return refuse(`certificate ${certificateId} is ${cert.status}`);
    if (this.opts.connectRateLimit) {
      // Wall time, not the injectable clock: this limit is about real connection storms.
      const now = Date.now();
      const last = this.#lastConnect.get(client.id);
      if (last !== undefined && now - last < 1000) return refuse(`client id ${client.id} connects more than once a second`, 3);
      this.#lastConnect.set(client.id, now);
      if (this.#lastConnect.size > 10_000) for (const [id, at] of this.#lastConnect) if (now - at >= 1000) this.#lastConnect.delete(id);
    }
    // ${iot:Connection.Thing.ThingName} resolves only when the client id names a thing
    // attached to this certificate.
    const thingAttached = this.opts.registry.thingsOf(certificateId).includes(client.id);
    const session: Session = { certificateId, ctx: { clientId: client.id, certificateId, ...(thingAttached ? { thingName: client.id } : {}) } };
    if (!this.#allowed(session, 'iot:Connect', client.id)) return refuse(`policy does not allow iot:Connect for client id ${client.id}`);
    this.#sessions.set(client, session);
    this.opts.log(`connect: accepted client ${client.id} certificate ${certificateId}`);
    done(null, true);
  }

  /** AWS disconnects a client that publishes or subscribes where its policy does not allow. */
  #disconnect(client: Client, why: string): void {
    this.opts.log(`policy: disconnecting client ${client.id}: ${why}`);
    setImmediate(() => client.close());
  }

  #authorizePublish(client: Client | null, packet: { topic: string; payload: Buffer | string; qos: number }, done: (error?: Error | null) => void): void {
    if (!client) return done(null);
    const session = this.#sessions.get(client);
    if (!session || !this.#allowed(session, 'iot:Publish', packet.topic)) {
      this.#disconnect(client, `iot:Publish on ${packet.topic} is not allowed`);
      return done(new Error('not authorized'));
    }
    this.opts.log(`publish: allowed client ${client.id} topic ${packet.topic}`);
    const request = requestKindOf(packet.topic);
    if (request)
      this.#provision(client, session, { topic: packet.topic, payload: Buffer.from(packet.payload), qos: packet.qos }, request).catch((error: Error) =>
        this.opts.log(`fleet provisioning: ${error.stack ?? error.message}`),
      );
    done(null);
  }

  #authorizeSubscribe<S extends { topic: string }>(client: Client, sub: S, done: (error: Error | null, sub?: S | null) => void): void {
    const session = this.#sessions.get(client);
    if (!session || !this.#allowed(session, 'iot:Subscribe', sub.topic)) {
      this.#disconnect(client, `iot:Subscribe on ${sub.topic} is not allowed`);
      return done(new Error('not authorized'));
    }
    this.opts.log(`subscribe: allowed client ${client.id} topic filter ${sub.topic}`);
    done(null, sub);
  }

  #authorizeForward<P extends { topic: string }>(client: Client, packet: P): P | null {
    // Requests on reserved topics are for the emulator, never for other subscribers.
    if (requestKindOf(packet.topic)) return null;
    const session = this.#sessions.get(client);
    if (!session || !this.#allowed(session, 'iot:Receive', packet.topic)) return null;
    return packet;
  }

  /**
   * Answers one request on the connection that published it, subscribed or not, and on no other:
   * "IoT Core Fleet Provisioning returns the device provisioning MQTT API results through the same
   * MQTT connection used to publish the API request" (AWS IoT Developer Guide, "Device provisioning
   * MQTT API", https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html).
   * Greengrass nucleus lite >= 2.3 relies on it: it never sends SUBSCRIBE for the replies. The
   * reply is written to this client only, never routed through the broker, so a subscribed client
   * gets it once and other connections never.
   */
  async #provision(client: Client, session: Session, request: { topic: string; payload: Buffer; qos: number }, kind: NonNullable<ReturnType<typeof requestKindOf>>) {
    const reply = await this.opts.provisioning.handle({
      ...kind,
      topic: request.topic,
      payload: request.payload,
      clientId: client.id,
      certificateId: session.certificateId,
    });
    if ('drop' in reply) {
      this.opts.log(`fault: dropping client ${client.id} at ${kind.kind}`);
      client.conn.destroy();
      return;
    }
    if (client.closed) return;
    client.publish(
      { cmd: 'publish', topic: reply.topic, payload: encodePayload(kind.format, reply.payload), qos: replyQos(subscriptionsOf(client), reply.topic, request.qos), retain: false, dup: false } as Parameters<Client['publish']>[0],
      (error) => {
        if (error) this.opts.log(`fleet provisioning: reply to ${client.id} failed: ${error.message}`);
      },
    );
  }
}
