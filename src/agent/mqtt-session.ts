// One MQTT connection to AWS IoT Core and the fleet-provisioning request/reply pattern on it.
// Transport: MQTT.js over mutual TLS, connect bounded by our own deadline. Handler: replies are
// routed by topic to the one outstanding request that subscribed to them (AWS replies only to
// the requesting connection, and a session runs one request at a time).
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { IClientOptions, MqttClient } from 'mqtt';
// The client alone: mqtt's connect() module statically pulls in WebSocket and SOCKS transports
// (ws, socks, ip-address: ~116 KB of the bundle) that a device talking mqtts never uses.
import clientModule from 'mqtt/lib/client';
import { accepted, MQTT_ALPN, rejected, type RejectedResponse } from '../shared/protocol.ts';
import { PermanentError, RejectedError, TransientError } from './errors.ts';

export interface SessionOptions {
  host: string;
  port: number;
  clientId: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  /** Bounds the connect, and each request/reply exchange. */
  timeoutMs: number;
  protocolVersion: 4 | 5;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TransientError(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Node's ESM loader and esbuild hand us module.exports (class in `.default`); vite's interop
// (vitest, in-process agents of fp-yocto simulate's tests) hands us the class itself.
const MqttClientClass: typeof clientModule.default =
  (clientModule as { default?: typeof clientModule.default }).default ?? (clientModule as unknown as typeof clientModule.default);

/** AWS IoT allows one CONNECT per second per client id: when we last connected with each. */
const lastConnectAt = new Map<string, number>();
const CONNECT_INTERVAL_MS = 1_000;

export async function openSession(options: SessionOptions): Promise<MqttSession> {
  const { host, port, timeoutMs } = options;
  const wait = (lastConnectAt.get(options.clientId) ?? -Infinity) + CONNECT_INTERVAL_MS - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  lastConnectAt.set(options.clientId, Date.now());
  const clientOptions: IClientOptions = {
    clientId: options.clientId,
    protocolVersion: options.protocolVersion,
    clean: true,
    keepalive: 60,
    // We retry whole attempts ourselves, with backoff; MQTT.js must never reconnect on its own.
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
  };
  const tlsOptions = tlsOptionsFor(options);
  const client = await connectOnce(clientOptions, tlsOptions, timeoutMs, `connect to ${host}:${port}`).finally(
    // The server counts from the CONNECT it received, which is after the TLS handshake.
    () => lastConnectAt.set(options.clientId, Date.now()),
  );
  return new MqttSession(client, timeoutMs);
}

/** Mutual TLS 1.2+, SNI = endpoint, server verified against our root CA; ALPN when on port 443. */
export function tlsOptionsFor(options: Pick<SessionOptions, 'host' | 'port' | 'certPem' | 'keyPem' | 'caPem'>): ConnectionOptions {
  return {
    host: options.host,
    port: options.port,
    cert: options.certPem,
    key: options.keyPem,
    ca: options.caPem,
    // SNI carries host names only (RFC 6066); Node warns when given an IP address.
    ...(isIP(options.host) ? {} : { servername: options.host }),
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    ...(options.port === 443 ? { ALPNProtocols: [MQTT_ALPN] } : {}),
  };
}

/**
 * One connection attempt that always settles, as mqtt.connectAsync(url, opts, allowRetries=false)
 * does: CONNACK resolves; an error, or a close before CONNACK (how a server that refuses the client
 * certificate under TLS 1.3 answers, DESIGN.md "Known pitfalls") or the deadline rejects and
 * ends the client. Never reconnects.
 */
function connectOnce(clientOptions: IClientOptions, tlsOptions: ConnectionOptions, timeoutMs: number, what: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = new MqttClientClass(() => tlsConnect(tlsOptions), clientOptions);
    const timer = setTimeout(() => settle(new TransientError(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
    const settle = (error?: Error) => {
      clearTimeout(timer);
      client.off('connect', onConnect).off('error', onError).off('close', onClose);
      if (!error) return resolve(client);
      client.end(true);
      reject(error);
    };
    const onConnect = () => settle();
    const onError = (error: Error) => settle(error);
    const onClose = () => settle(new TransientError("the server closed the connection before accepting it"));
    client.on('connect', onConnect).on('error', onError).on('close', onClose);
  });
}

interface Pending {
  operation: string;
  /** Set while subscribing to these topics. */
  subscribing?: string[];
  acceptedTopic: string;
  rejectedTopic: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class MqttSession {
  private pending: Pending | undefined;
  private readonly subscribed = new Set<string>();
  private closed = false;

  constructor(
    private readonly client: MqttClient,
    private readonly timeoutMs: number,
  ) {
    client.on('message', (topic, payload) => this.route(topic, payload));
    client.on('close', () => {
      this.closed = true;
      const p = this.pending;
      if (!p) return;
      // AWS answers a subscription its policy denies by closing the connection.
      p.reject(p.subscribing ? new SubscriptionLostError(p.operation, p.subscribing) : new TransientError('the connection closed while waiting for a reply'));
    });
    client.on('error', (error) => this.pending?.reject(error));
  }

  /** Publishes `payload` to `topic` and waits for `topic/accepted` (resolves) or `/rejected` (throws). */
  async request<T>(operation: string, topic: string, payload: unknown): Promise<T> {
    if (this.closed) throw new TransientError(`${operation}: the connection is closed`);
    if (this.pending) throw new Error('one request at a time per session');
    const acceptedTopic = accepted(topic);
    const rejectedTopic = rejected(topic);
    const reply = new Promise<unknown>((resolve, reject) => {
      this.pending = { operation, acceptedTopic, rejectedTopic, resolve, reject };
    });
    reply.catch(() => undefined); // handled below; avoids an unhandled rejection while subscribing
    try {
      const exchange = (async () => {
        // Subscribe to both replies before publishing, or a fast reply is lost.
        await this.subscribe(operation, [acceptedTopic, rejectedTopic]);
        await this.client.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
        return reply;
      })();
      exchange.catch(() => undefined); // when `reply` settles first, a late failure here is moot
      // Racing `reply` too: a lost connection rejects it at once, while MQTT.js keeps an
      // unacknowledged QoS 1 publish waiting for a reconnect that will never come.
      return (await withTimeout(Promise.race([exchange, reply]), this.timeoutMs, operation)) as T;
    } finally {
      this.pending = undefined;
    }
  }

  private async subscribe(operation: string, topics: string[]): Promise<void> {
    const missing = topics.filter((t) => !this.subscribed.has(t));
    if (missing.length === 0) return;
    let granted;
    if (this.pending) this.pending.subscribing = missing;
    try {
      granted = await this.client.subscribeAsync(missing, { qos: 1 });
    } catch {
      throw new SubscriptionLostError(operation, missing);
    } finally {
      if (this.pending) this.pending.subscribing = undefined;
    }
    // SUBACK failure codes: 0x80 (MQTT 3.1.1), 0x80-0xA2 reason codes (MQTT 5).
    const refused = granted.filter((g) => g.qos >= 0x80);
    if (refused.length > 0) {
      throw new PermanentError(`${operation}: the claim policy does not allow subscribing to ${refused.map((g) => g.topic).join(', ')}`);
    }
    for (const t of missing) this.subscribed.add(t);
  }

  private route(topic: string, payload: Buffer): void {
    const pending = this.pending;
    if (!pending || (topic !== pending.acceptedTopic && topic !== pending.rejectedTopic)) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      pending.reject(new TransientError(`malformed reply on ${topic}`));
      return;
    }
    if (topic === pending.acceptedTopic) pending.resolve(body);
    else pending.reject(new RejectedError(pending.operation, normaliseRejection(body)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await withTimeout(this.client.endAsync(), 2_000, 'disconnect').catch(() => this.client.end(true));
  }
}

/** The connection closed while subscribing: a network fault, or a policy that denies the topic. */
export class SubscriptionLostError extends TransientError {
  constructor(operation: string, readonly topics: string[]) {
    super(`${operation}: the server closed the connection when subscribing to ${topics.join(', ')}`);
  }
}

function normaliseRejection(body: unknown): RejectedResponse {
  const b = (body ?? {}) as Partial<RejectedResponse>;
  return {
    statusCode: typeof b.statusCode === 'number' ? b.statusCode : 500,
    errorCode: typeof b.errorCode === 'string' ? b.errorCode : 'Unknown',
    errorMessage: typeof b.errorMessage === 'string' ? b.errorMessage : '',
  };
}
