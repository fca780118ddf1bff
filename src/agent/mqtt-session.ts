// One MQTT connection to AWS IoT Core and the fleet-provisioning request/reply pattern on it.
// Transport: our small MQTT client (mqtt/connection.ts) over mutual TLS. Handler: replies are
// routed by topic to the one outstanding request (AWS replies only to the requesting connection,
// and a session runs one request at a time). Every wait is bounded by the step's timeout and by
// the run's deadline, whichever comes first.
import { isIP } from 'node:net';
import type { ConnectionOptions, SecureContext, SecureContextOptions } from 'node:tls';
import { accepted, MQTT_ALPN, rejected, type RejectedResponse } from '../shared/protocol.ts';
import { proxyAddress } from '../shared/proxy-url.ts';
import { Fault, NoTimeLeftError, RejectedError } from './errors.ts';
import { bounded } from './local-files.ts';
import { ConnectionClosedError, MqttConnection } from './mqtt/connection.ts';
import type { IncomingPublish } from './mqtt/packets.ts';
import type { ProxyRoute } from './proxy/route.ts';
import { openTunnel } from './proxy/tunnel.ts';
import { openTpmTls } from './tpm/openssl-tls.ts';

export interface SessionOptions {
  host: string;
  port: number;
  clientId: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  /**
   * Made from certPem, keyPem and caPem with secureContextOptions, reused across connections (a
   * fleet sharing one claim: fp-yocto simulate); without it each connection builds its own.
   */
  secureContext?: SecureContext;
  /** The key is in the TPM at this handle (key.store tpm); keyPem is not used. */
  tpmKey?: { handle: number; tcti: string; propquery: string };
  /** Bounds the connect, and each request/reply exchange. */
  timeoutMs: number;
  /** Epoch ms: no wait of this session goes past it (the run's deadline). */
  deadline: number;
  protocolVersion: 4 | 5;
  /** Tunnel through this HTTP proxy (proxy/route.ts); TLS and ALPN run end to end inside it. */
  proxy?: ProxyRoute;
}

/**
 * How long a step may wait: its own limit, cut to what is left before the deadline. A step that
 * then runs out of time is cut off by the deadline (NoTimeLeftError: the retry loop reports the
 * fault before it), not slow (a timeout fault).
 */
function budget(timeoutMs: number, deadline: number, what: string): { ms: number; onTimeout: () => Error } {
  const left = deadline - Date.now();
  if (left <= 0) throw new NoTimeLeftError(what);
  if (left < timeoutMs) return { ms: left, onTimeout: () => new NoTimeLeftError(what) };
  return { ms: timeoutMs, onTimeout: () => new Fault('timeout', `${what}: no answer within ${timeoutMs} ms`) };
}

/** AWS IoT allows one CONNECT per second per client id: when we last connected with each. */
const lastConnectAt = new Map<string, number>();
const CONNECT_INTERVAL_MS = 1_000;
const KEEPALIVE_SEC = 60;

export async function openSession(options: SessionOptions): Promise<MqttSession> {
  const { host, port } = options;
  const what = `connect to ${host}:${port}`;
  // The wait for the 1 CONNECT/s limit counts within the run's deadline, never past it.
  const wait = (lastConnectAt.get(options.clientId) ?? -Infinity) + CONNECT_INTERVAL_MS - Date.now();
  if (wait > 0) {
    if (Date.now() + wait >= options.deadline) throw new NoTimeLeftError(`${what} (1 CONNECT/s per client id)`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  const limit = budget(options.timeoutMs, options.deadline, what);
  lastConnectAt.set(options.clientId, Date.now());
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(limit.onTimeout()), limit.ms);
  try {
    // One tunnel code for both key stores: the TPM key's s_client gets the same tunnel (tpm/tunnel-relay.ts).
    const socket = options.proxy ? await openTunnel(options.proxy, host, port, controller.signal) : undefined;
    const tunnel = socket && options.proxy ? { socket, via: `proxy ${proxyAddress(options.proxy.proxy)}` } : undefined;
    const stream = options.tpmKey ? await openTpmTls({ ...options, ...options.tpmKey, ...(tunnel ? { tunnel } : {}) }) : undefined;
    const connection = await MqttConnection.open(
      {
        tls: { ...tlsOptionsFor(options), ...(socket && !stream ? { socket } : {}) },
        stream,
        clientId: options.clientId,
        protocolVersion: options.protocolVersion,
        keepaliveSec: KEEPALIVE_SEC,
      },
      controller.signal,
    );
    return new MqttSession(connection, options.timeoutMs, options.deadline);
  } catch (error) {
    if (error instanceof ConnectionClosedError) throw new Fault('network', error.reason);
    throw error;
  } finally {
    clearTimeout(timer);
    // The server counts from the CONNECT it received, which is after the TLS handshake.
    lastConnectAt.set(options.clientId, Date.now());
  }
}

/** What a connection's TLS context holds: our certificate and key, the root CA we trust, TLS 1.2 at least. */
export function secureContextOptions(options: Pick<SessionOptions, 'certPem' | 'keyPem' | 'caPem'>): SecureContextOptions {
  return { cert: options.certPem, key: options.keyPem, ca: options.caPem, minVersion: 'TLSv1.2' };
}

/** Mutual TLS 1.2+, SNI = endpoint, server verified against our root CA; ALPN when on port 443. */
export function tlsOptionsFor(options: Pick<SessionOptions, 'host' | 'port' | 'certPem' | 'keyPem' | 'caPem' | 'secureContext'>): ConnectionOptions {
  return {
    host: options.host,
    port: options.port,
    // A given context already holds certificate, key, CA and minimum version (tls.connect then ignores those options).
    ...(options.secureContext ? { secureContext: options.secureContext } : secureContextOptions(options)),
    // SNI carries host names only (RFC 6066); Node warns when given an IP address.
    ...(isIP(options.host) ? {} : { servername: options.host }),
    rejectUnauthorized: true,
    ...(options.port === 443 ? { ALPNProtocols: [MQTT_ALPN] } : {}),
  };
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

  constructor(
    private readonly connection: MqttConnection,
    private readonly timeoutMs: number,
    private readonly deadline: number,
  ) {
    connection.onMessage((message) => this.route(message));
    connection.onClose((closed) => {
      const p = this.pending;
      if (!p) return;
      // AWS answers a subscription its policy denies by closing the connection.
      p.reject(p.subscribing ? new SubscriptionLostError(p.operation, p.subscribing) : new Fault('network', `the connection closed while waiting for a reply (${closed.reason})`));
    });
  }

  /** Publishes `payload` to `topic` and waits for `topic/accepted` (resolves) or `/rejected` (throws). */
  async request<T>(operation: string, topic: string, payload: unknown): Promise<T> {
    if (this.connection.closed) throw new Fault('network', `${operation}: the connection is closed`);
    if (this.pending) throw new Error('one request at a time per session');
    const limit = budget(this.timeoutMs, this.deadline, operation);
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
        await this.connection.publish(topic, Buffer.from(JSON.stringify(payload)));
        return reply;
      })();
      exchange.catch(() => undefined); // when `reply` settles first, a late failure here is moot
      // Racing `reply` too: a reply may come before the PUBACK, and a lost connection rejects it at once.
      return (await bounded(Promise.race([exchange, reply]), limit.ms, limit.onTimeout)) as T;
    } catch (error) {
      if (error instanceof ConnectionClosedError) throw new Fault('network', `${operation}: ${error.reason}`);
      throw error;
    } finally {
      this.pending = undefined;
    }
  }

  private async subscribe(operation: string, topics: string[]): Promise<void> {
    const missing = topics.filter((t) => !this.subscribed.has(t));
    if (missing.length === 0) return;
    let codes: number[];
    if (this.pending) this.pending.subscribing = missing;
    try {
      codes = await this.connection.subscribe(missing);
    } catch {
      throw new SubscriptionLostError(operation, missing);
    } finally {
      if (this.pending) this.pending.subscribing = undefined;
    }
    // SUBACK failure codes: 0x80 (MQTT 3.1.1), 0x80-0xA2 reason codes (MQTT 5).
    const refused = missing.filter((_, i) => (codes[i] ?? 0x80) >= 0x80);
    if (refused.length > 0) {
      throw new Fault('claimPolicy', `${operation}: the claim policy does not allow subscribing to ${refused.join(', ')}`);
    }
    for (const t of missing) this.subscribed.add(t);
  }

  private route({ topic, payload }: IncomingPublish): void {
    const pending = this.pending;
    if (!pending || (topic !== pending.acceptedTopic && topic !== pending.rejectedTopic)) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      pending.reject(new Fault('unexpected', `${pending.operation}: the reply on ${topic} is not JSON`));
      return;
    }
    if (topic === pending.acceptedTopic) pending.resolve(body);
    else pending.reject(new RejectedError(pending.operation, normaliseRejection(body)));
  }

  async close(): Promise<void> {
    await bounded(this.connection.end(), 2_000, () => new Error('disconnect: no answer')).catch(() => this.connection.destroy());
  }
}

/** The connection closed while subscribing: a network fault, or a policy that denies the topic. */
export class SubscriptionLostError extends Fault {
  constructor(operation: string, readonly topics: string[]) {
    super('network', `${operation}: the server closed the connection when subscribing to ${topics.join(', ')}`);
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
