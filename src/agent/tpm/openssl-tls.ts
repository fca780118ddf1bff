// Mutual TLS with a key that stays in the TPM. Node's TLS takes only key bytes, so the connection
// is made by `openssl s_client` with the tpm2 provider (tpm2-openssl's docs/tls.md: `-provider
// tpm2 -provider default -propquery ?provider=tpm2 -key handle:...`; from tpm2-openssl 1.2.0
// `?provider=default`, see tools.ts tlsPropquery) as a child process, and MQTT
// runs over its stdin and stdout: with -quiet s_client writes nothing else there, and with
// -nocommands no byte we send is taken for a command letter.
//
// Through an HTTP proxy the tunnel is opened by proxy/tunnel.ts, as for a file key, and handed to
// s_client through a Unix-domain socket (tunnel-relay.ts says why not s_client's own -proxy).
//
// TLS 1.2 or 1.3 (1.3 when the server offers it), like the Node path. TLS 1.2 needs the tpm2
// provider to declare the NIST curves as TLS groups (its TLS-GROUP capability, tpm2-openssl >= 1.2.0,
// commit c0afc49 "Support using provider with TLS"; meta-tpm ships 1.3.0): with the provider
// preferred, OpenSSL 3.0 keeps a TLS group only when the provider that declares it also serves
// the group's key type (ssl/t1_lib.c add_provider_groups), so with tpm2-openssl 1.1.1 (Debian 12)
// the ClientHello lists only X25519 and X448. Measured here (OpenSSL 3.0.19, swtpm, s_server and
// a Node server, both TLS 1.2 only): with 1.1.1 only an RSA key against an RSA server certificate
// works (ECDHE-RSA over X25519); an ECDSA server certificate gets "no shared cipher", a P-256
// client key "tls12_check_peer_sigalg: wrong curve" (its curve is not in our supported_groups);
// `-groups P-256` is refused ("group 'P-256' cannot be set"), and loading the key without the
// tpm2 propquery signs with the default provider ("ossl_ecdsa_simple_sign_sig: missing private
// key"). With tpm2-openssl 1.3.0 built from source, all four pairs connect over TLS 1.2; from
// 1.2.0 the default provider is preferred (tools.ts tlsPropquery), and with it EC and RSA TPM keys
// against EC and RSA server certificates connect over TLS 1.3 and 1.2 (eight pairs, 1.3.0 through
// tpm2-abrmd, s_server on the host; and against the emulator in the QEMU guest through /dev/tpmrm0).
// TLS 1.3 works with both: its key share and certificate checks do not depend on those groups.
// AWS IoT Core's default security policy (IoTSecurityPolicy_TLS13_1_2_2022_10, "Transport security
// in AWS IoT Core") offers TLS 1.3 on 443, 8443 and 8883.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { MQTT_ALPN } from '../../shared/protocol.ts';
import { Fault } from '../errors.ts';
import { handleUri } from './key-store.ts';
import { stderrReason, tctiEnv } from './tools.ts';
import { relayTunnel, type TunnelRelay } from './tunnel-relay.ts';

export interface TpmTlsOptions {
  host: string;
  port: number;
  certPem: string;
  caPem: string;
  handle: number;
  tcti: string;
  /** The property query for the provider's version (tools.ts tlsPropquery). */
  propquery: string;
  /** A tunnel through the proxy to host:port (proxy/tunnel.ts), and the proxy as messages name it. */
  tunnel?: { socket: Socket; via: string };
}

/** s_client's verify codes (X509_V_ERR_*) as the Node error codes errors.ts classifies. */
const VERIFY_CODES: Record<number, string> = {
  2: 'UNABLE_TO_GET_ISSUER_CERT',
  7: 'CERT_SIGNATURE_FAILURE',
  9: 'CERT_NOT_YET_VALID',
  10: 'CERT_HAS_EXPIRED',
  18: 'DEPTH_ZERO_SELF_SIGNED_CERT',
  19: 'SELF_SIGNED_CERT_IN_CHAIN',
  20: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  21: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  62: 'ERR_TLS_CERT_ALTNAME_INVALID',
  64: 'ERR_TLS_CERT_ALTNAME_INVALID',
};

/** An Error shaped like Node's socket and TLS errors, from what s_client said before it exited. */
export function opensslError(stderr: string, exitCode: number | null): Error {
  const verify = /verify error:num=(\d+)/.exec(stderr);
  const connect = /connect:errno=(\d+)/.exec(stderr) ?? /(Connection refused|No route to host|Network is unreachable)/.exec(stderr);
  let code: string | undefined;
  if (verify) code = VERIFY_CODES[Number(verify[1])];
  else if (connect) code = /111|refused/i.test(connect[0]) ? 'ECONNREFUSED' : /113|No route/i.test(connect[0]) ? 'EHOSTUNREACH' : 'ENETUNREACH';
  // The peer (or a proxy tunnel) went away mid-handshake: what Node reports as ECONNRESET.
  else if (/unexpected eof while reading|errno=104\b|Connection reset by peer/i.test(stderr)) code = 'ECONNRESET';
  else if (/errno=32\b|Broken pipe/i.test(stderr)) code = 'EPIPE';
  else if (/getaddrinfo|Name or service not known|nodename nor servname/i.test(stderr)) code = 'ENOTFOUND';
  const reason = verify ? `certificate verify error ${verify[1]}` : stderrReason(stderr);
  const error = new Error(`openssl s_client (TPM key): ${reason}${exitCode === null ? '' : ` (exit ${exitCode})`}`) as NodeJS.ErrnoException;
  if (code) error.code = code;
  return error;
}

/** s_client's error when the proxy tunnel under it closed first: named as the tunnel's (a network fault, as on the Node path). */
function relayedError(stderr: string, exitCode: number | null, { relay, via }: { relay: TunnelRelay; via: string }): Error {
  const error = opensslError(stderr, exitCode) as NodeJS.ErrnoException;
  if (!relay.tunnelClosedFirst() || /verify error|alert/i.test(stderr)) return error;
  error.message = `${via}: the tunnel closed during the TLS session (${error.message})`;
  error.code ??= 'ECONNRESET';
  return error;
}

/** The child's stdout and stdin as one stream; destroying it ends the child. */
class ChildStream extends Duplex {
  private stderr = '';

  constructor(
    private readonly child: ChildProcess,
    onExit: () => void,
    /** Names the tunnel in an error when it closed under s_client (see relayedError). */
    private readonly relayed?: { relay: TunnelRelay; via: string },
  ) {
    // When the server closes (s_client exits), the stream ends both ways.
    super({ allowHalfOpen: false });
    child.stdout!.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout!.pause();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-4096);
    });
    // EPIPE when s_client is gone: its exit below says why.
    child.stdin!.on('error', () => undefined);
    child.on('error', (error: NodeJS.ErrnoException) =>
      this.destroy(error.code === 'ENOENT' ? new Fault('tpmMissing', 'key.store tpm: openssl is not installed; the image needs openssl and tpm2-openssl') : error),
    );
    child.on('close', (code, signal) => {
      onExit();
      if (this.destroyed) return;
      if (code === 0 || signal) this.push(null);
      else this.destroy(this.relayed ? relayedError(this.stderr, code, this.relayed) : opensslError(this.stderr, code));
    });
  }

  override _read(): void {
    this.child.stdout!.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.child.stdin!.write(chunk, () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.child.stdin!.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    callback(error);
  }
}

/**
 * Starts s_client and resolves to the stream to speak MQTT over. The certificate and CA (public)
 * are handed over in a private scratch dir, removed when s_client ends. Bytes written before the
 * handshake is done wait in the pipe; a failed handshake ends the stream with an error.
 */
export async function openTpmTls(options: TpmTlsOptions): Promise<Duplex> {
  let dir: string | undefined;
  let relay: TunnelRelay | undefined;
  const cleanUp = () => {
    relay?.close();
    if (dir) void rm(dir, { recursive: true, force: true });
  };
  try {
    dir = await mkdtemp(path.join(tmpdir(), 'fp-agent-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const ca = path.join(dir, 'ca.pem');
    await writeFile(cert, options.certPem, { mode: 0o600 });
    await writeFile(ca, options.caPem, { mode: 0o600 });
    if (options.tunnel) relay = await relayTunnel(options.tunnel.socket, path.join(dir, 'tunnel'));
    const ip = isIP(options.host) !== 0;
    const args = [
      's_client', '-quiet', '-nocommands',
      '-provider', 'tpm2', '-provider', 'default', '-propquery', options.propquery,
      // Through a proxy: the relay's socket, the tunnel to host:port behind it; SNI and the name check as for a direct connection.
      ...(relay ? ['-unix', relay.path] : ['-connect', `${ip && isIP(options.host) === 6 ? `[${options.host}]` : options.host}:${options.port}`]),
      '-cert', cert, '-key', handleUri(options.handle), '-CAfile', ca,
      '-verify_return_error', '-min_protocol', 'TLSv1.2',
      // SNI carries host names only (RFC 6066); an IP address is checked against the certificate's IP SANs.
      ...(ip ? ['-noservername', '-verify_ip', options.host] : ['-servername', options.host, '-verify_hostname', options.host]),
      ...(options.port === 443 ? ['-alpn', MQTT_ALPN] : []),
    ];
    const child = spawn('openssl', args, { env: childEnv(options.tcti), stdio: ['pipe', 'pipe', 'pipe'] });
    return new ChildStream(child, cleanUp, relay && options.tunnel ? { relay, via: options.tunnel.via } : undefined);
  } catch (error) {
    cleanUp();
    options.tunnel?.socket.destroy();
    throw error;
  }
}

/** The TCTI for the tpm2 provider; no proxy variables: s_client does not use them, and they may hold a password. */
function childEnv(tcti: string): NodeJS.ProcessEnv {
  const env = tctiEnv(tcti);
  for (const name of ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY']) delete env[name];
  return env;
}
