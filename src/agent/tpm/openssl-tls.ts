// Mutual TLS with a key that stays in the TPM. Node's TLS takes only key bytes, so the connection
// is made by `openssl s_client` with the tpm2 provider (tpm2-openssl's docs/tls.md: `-provider
// tpm2 -provider default -propquery ?provider=tpm2 -key handle:...`) as a child process, and MQTT
// runs over its stdin and stdout: with -quiet s_client writes nothing else there, and with
// -nocommands no byte we send is taken for a command letter.
//
// TLS 1.3 only: with the tpm2 provider preferred, OpenSSL 3.0's TLS 1.2 client offers no cipher
// suite a server accepts (measured against s_server and Node), while TLS 1.3 works. AWS IoT Core's
// default security policy (IoTSecurityPolicy_TLS13_1_2_2022_10, "Transport security in AWS IoT
// Core") offers TLS 1.3 on 443, 8443 and 8883.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { MQTT_ALPN } from '../../shared/protocol.ts';
import { Fault } from '../errors.ts';
import { handleUri } from './key-store.ts';
import { stderrReason, tctiEnv } from './tools.ts';

export interface TpmTlsOptions {
  host: string;
  port: number;
  certPem: string;
  caPem: string;
  handle: number;
  tcti: string;
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
  else if (/getaddrinfo|Name or service not known|nodename nor servname/i.test(stderr)) code = 'ENOTFOUND';
  const reason = verify ? `certificate verify error ${verify[1]}` : stderrReason(stderr);
  const error = new Error(`openssl s_client (TPM key): ${reason}${exitCode === null ? '' : ` (exit ${exitCode})`}`) as NodeJS.ErrnoException;
  if (code) error.code = code;
  return error;
}

/** The child's stdout and stdin as one stream; destroying it ends the child. */
class ChildStream extends Duplex {
  private stderr = '';

  constructor(
    private readonly child: ChildProcess,
    onExit: () => void,
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
      else this.destroy(opensslError(this.stderr, code));
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
  const dir = await mkdtemp(path.join(tmpdir(), 'fp-agent-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const ca = path.join(dir, 'ca.pem');
  await writeFile(cert, options.certPem, { mode: 0o600 });
  await writeFile(ca, options.caPem, { mode: 0o600 });
  const ip = isIP(options.host) !== 0;
  const args = [
    's_client', '-quiet', '-nocommands',
    '-provider', 'tpm2', '-provider', 'default', '-propquery', '?provider=tpm2',
    '-connect', `${ip && isIP(options.host) === 6 ? `[${options.host}]` : options.host}:${options.port}`,
    '-cert', cert, '-key', handleUri(options.handle), '-CAfile', ca,
    '-verify_return_error', '-min_protocol', 'TLSv1.3',
    // SNI carries host names only (RFC 6066); an IP address is checked against the certificate's IP SANs.
    ...(ip ? ['-noservername', '-verify_ip', options.host] : ['-servername', options.host, '-verify_hostname', options.host]),
    ...(options.port === 443 ? ['-alpn', MQTT_ALPN] : []),
  ];
  const child = spawn('openssl', args, { env: tctiEnv(options.tcti), stdio: ['pipe', 'pipe', 'pipe'] });
  return new ChildStream(child, () => void rm(dir, { recursive: true, force: true }));
}
