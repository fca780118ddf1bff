// startEmulator: the CA, the registry, the MQTT broker and the in-process control plane, wired.
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { removeStaleTemps, writeFileAtomic } from '../shared/atomic-file.ts';
import { Broker } from './broker.ts';
import { startControlServer } from './control-server.ts';
import { findRunning, readOrCreateToken, removeInfo, writeInfo } from './discovery.ts';
import { CertificateAuthority, createCa } from './ca.ts';
import type { ControlPlane } from './control-plane.ts';
import { FaultState } from './faults.ts';
import { DynamoDbService } from './dynamodb/service.ts';
import { hookSdk } from './hook-sdk.ts';
import { FleetProvisioning } from './fleet-provisioning.ts';
import { certificateRecord, LocalControlPlane } from './local-control-plane.ts';
import { Registry } from './registry.ts';
import { createTlsFront, listen, type Peer, type TlsFrontOptions } from './tls-front.ts';
import { TlsWorkerPool } from './tls-workers.ts';
import { importLegacyRegistry } from './registry-import.ts';
import { loadOrIssueServerCertificate, SERVER_CERT_FILE } from './server-certificate.ts';

export interface EmulatorOptions {
  /** 0 picks a free port. Default 8883. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The state directory: CA, registry. Created if missing; reused on restart. */
  dir: string;
  /** Extra DNS names or IP addresses for the server certificate (localhost and 127.0.0.1 are always in). */
  serverNames?: string[];
  log?: (line: string) => void;
  /** The clock, for tests of token expiry. */
  now?: () => number;
  /** The pre-provisioning hook's time limit; AWS's is 5 s. */
  hookTimeoutMs?: number;
  /** AWS's 1 CONNECT per second per client id. Default true. */
  connectRateLimit?: boolean;
  /**
   * Play AWS's port 443: MQTT clients must offer ALPN x-amzn-mqtt-ca (on 8883 it is optional).
   * Default: true when `port` is 443.
   */
  alpnRequired?: boolean;
  /**
   * Child processes doing the TLS (handshake and record crypto) for the broker in this process
   * (tls-workers.ts). 0 (the default): TLS in this thread. The CLI's default is every core but one, from 3 cores up (defaultTlsWorkers).
   */
  tlsWorkers?: number;
}

export interface IssuedClaim {
  certificateId: string;
  certificatePem: string;
  /** Only when no CSR was given: the emulator made the key pair. */
  privateKeyPem?: string;
}

export interface Emulator {
  host: string;
  port: number;
  /** The host name devices connect to (the server certificate names it). */
  endpoint: string;
  caPath: string;
  caPem: string;
  dir: string;
  control: ControlPlane;
  /** The TLS worker processes' ids (none with `tlsWorkers` 0). */
  tlsWorkerPids(): number[];
  /** Where other processes reach `control` (bearer token in `<dir>/control-token`). */
  controlUrl: string;
  /** For tests: an ACTIVE claim certificate (and key, without a CSR) with the policy attached. */
  issueClaim(opts?: { policyName?: string; csrPem?: string }): Promise<IssuedClaim>;
  /** Deletes certificates whose ownership token expired; also runs every minute. */
  sweepExpired(): Promise<number>;
  close(): Promise<void>;
}

export const CA_FILE = 'root-ca.pem';
const CA_KEY_FILE = 'root-ca.key.pem';

async function loadOrCreateCa(dir: string): Promise<CertificateAuthority> {
  const certPath = path.join(dir, CA_FILE);
  const keyPath = path.join(dir, CA_KEY_FILE);
  try {
    return new CertificateAuthority({ certPem: await readFile(certPath, 'utf8'), keyPem: await readFile(keyPath, 'utf8') });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const material = createCa();
  await writeFileAtomic(keyPath, material.keyPem, 0o600);
  await writeFileAtomic(certPath, material.certPem, 0o644);
  return new CertificateAuthority(material);
}

interface MqttListener {
  port: number;
  pids: number[];
  close(): Promise<void>;
}

/** TLS in this thread (`tlsWorkers` 0). */
async function listenInProcess(front: TlsFrontOptions, host: string, port: number, log: (line: string) => void, onConnection: (socket: TLSSocket, peer: Peer) => void): Promise<MqttListener> {
  const server = createTlsFront(front, log, onConnection);
  const bound = await listen(server, port, host);
  return {
    port: bound,
    pids: [],
    // Stops listening now; the broker ends the connections (server.close's callback waits for them).
    close: async () => void server.close(),
  };
}

export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const dir = path.resolve(options.dir);
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => undefined);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const running = await findRunning(dir);
  if (running) throw new Error(`an emulator is already running for ${dir} (pid ${running.info.pid}, port ${running.info.port})`);
  // Ours alone now: what a killed emulator left half-written goes.
  await removeStaleTemps(dir);
  const ca = await loadOrCreateCa(dir);
  const caPath = path.join(dir, CA_FILE);
  const registry = Registry.open(dir);
  // Whatever fails from here on closes what was opened before it.
  const undo: Array<() => unknown> = [() => registry.close()];
  const unwind = async (error: unknown): Promise<never> => {
    for (const step of undo.reverse()) await step();
    throw error;
  };
  const imported = await importLegacyRegistry(registry, dir).catch(unwind);
  if (imported) log(`emulator: moved ${imported.things} thing(s) and ${imported.certificates} certificate(s) from registry.json into ${registry.file}`);
  const faults = new FaultState();
  // The stack's device table lives in the emulator's DynamoDB, which the hook reaches as in Lambda.
  const dynamodb = new DynamoDbService(registry);
  const provisioning = new FleetProvisioning({ registry, ca, faults, now, log, hookTimeoutMs: options.hookTimeoutMs, hookSdk: hookSdk({ dynamodb, registry }) });
  const serverNames = [...(options.serverNames ?? []), ...(host === '0.0.0.0' || host === '::' ? [] : [host])];
  const server = await loadOrIssueServerCertificate(dir, ca, serverNames, new Date(now())).catch(unwind);
  if (server.issued) log(`emulator: issued a new server certificate (${SERVER_CERT_FILE})`);
  const broker = await Broker.start({ registry, provisioning, faults, now, connectRateLimit: options.connectRateLimit ?? true, log }).catch(unwind);
  undo.push(() => broker.close());
  const front = { caPem: ca.certPem, server, alpnRequired: options.alpnRequired ?? options.port === 443 };
  const tlsWorkers = options.tlsWorkers ?? 0;
  if (!Number.isInteger(tlsWorkers) || tlsWorkers < 0) await unwind(new Error(`tlsWorkers: expected a whole number >= 0, got ${tlsWorkers}`));
  const listener = await (tlsWorkers > 0
    ? TlsWorkerPool.start({ count: tlsWorkers, host, port: options.port ?? 8883, front, dir, log, onConnection: (socket, peer) => broker.handle(socket, peer) })
    : listenInProcess(front, host, options.port ?? 8883, log, (socket, peer) => broker.handle(socket, peer))
  ).catch(unwind);
  // Stops accepting before the broker goes, so no connection arrives at a closed broker.
  undo.push(() => listener.close());
  const port = listener.port;
  const endpoint = 'localhost';
  const control = new LocalControlPlane({ registry, ca, caPath, faults, now, dynamodb, endpoint: () => ({ endpointAddress: endpoint, port }) });
  const controlServer = await startControlServer(control, await readOrCreateToken(dir)).catch(unwind);
  const controlUrl = controlServer.url;
  await writeInfo(dir, { pid: process.pid, host, port, endpoint, controlUrl, caPath });
  await provisioning.sweepExpired();
  const sweeper = setInterval(() => void provisioning.sweepExpired().catch((e: Error) => log(`sweep failed: ${e.message}`)), 60_000);
  sweeper.unref();
  log(`emulator: MQTT over mutual TLS on ${host}:${port}${tlsWorkers > 0 ? ` (TLS in ${tlsWorkers} worker process${tlsWorkers > 1 ? 'es' : ''})` : ''}`);

  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    endpoint,
    caPath,
    caPem: ca.certPem,
    dir,
    control,
    controlUrl,
    tlsWorkerPids: () => listener.pids,
    async issueClaim({ policyName, csrPem } = {}) {
      let privateKeyPem: string | undefined;
      let certificatePem: string;
      if (csrPem) certificatePem = ca.issueFromCsr(csrPem, new Date(now()));
      else {
        const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        privateKeyPem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
        certificatePem = ca.issueClient(pair.publicKey.export({ type: 'spki', format: 'der' }), new Date(now()));
      }
      const record = certificateRecord(certificatePem, 'ACTIVE', now());
      await registry.write((tx) => tx.putCertificate(record));
      if (policyName) await control.attachPolicy(policyName, record.certificateId);
      return { certificateId: record.certificateId, certificatePem, ...(privateKeyPem ? { privateKeyPem } : {}) };
    },
    sweepExpired: () => provisioning.sweepExpired(),
    close() {
      closing ??= (async () => {
        clearInterval(sweeper);
        await removeInfo(dir, controlUrl);
        await controlServer.close();
        await listener.close();
        await broker.close();
        await provisioning.close();
        await registry.close();
        log('emulator: stopped');
      })();
      return closing;
    },
  };
}
