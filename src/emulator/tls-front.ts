// The emulator's TLS front: the mutual-TLS server devices connect to, and what the broker needs to
// know of each peer once the handshake is done. The same code runs in the emulator's own thread
// (tlsWorkers 0) and in each TLS worker process (tls-worker.ts), so the handshake, the certificate
// checks, the port-443 ALPN rule and the refusal logs are the same in both modes.
import { constants } from 'node:crypto';
import type { AddressInfo, Server, Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { MQTT_ALPN } from '../shared/protocol.ts';

/** What the broker learns of a connection from its TLS layer. */
export interface Peer {
  /** SHA-256 of the client certificate's DER, lowercase hex: AWS's certificate id. */
  certificateId?: string;
  alpnProtocol: string | false;
  /** The SNI name the client sent, if any. */
  servername?: string;
  remoteAddress?: string;
  remotePort?: number;
}

export interface TlsFrontOptions {
  caPem: string;
  server: { certPem: string; keyPem: string };
  /** Port 443 mode: MQTT with a client certificate only with ALPN x-amzn-mqtt-ca. */
  alpnRequired: boolean;
}

/** The peer of a socket whose handshake is complete. */
export function peerOf(socket: TLSSocket): Peer {
  // fingerprint256 is the SHA-256 of the DER, i.e. AWS's certificate id in another spelling.
  const fingerprint = socket.getPeerCertificate()?.fingerprint256;
  const servername = (socket as TLSSocket & { servername?: string | false }).servername;
  return {
    ...(fingerprint ? { certificateId: fingerprint.replace(/:/g, '').toLowerCase() } : {}),
    alpnProtocol: socket.alpnProtocol ?? false,
    ...(servername ? { servername } : {}),
    ...(socket.remoteAddress ? { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort } : {}),
  };
}

/**
 * A mutual-TLS server (not listening) that hands each connection that passed the handshake and
 * the ALPN rule to `onPeer`. Connections also come in by `server.emit('connection', socket)`, as
 * the TLS workers feed it the sockets they accept.
 */
export function createTlsFront(opts: TlsFrontOptions, log: (line: string) => void, onPeer: (socket: TLSSocket, peer: Peer) => void): tls.Server {
  const server = tls.createServer(
    {
      key: opts.server.keyPem,
      cert: opts.server.certPem,
      ca: [opts.caPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // AWS IoT Core's device gateway does not resume TLS sessions (device SDKs found it never
      // did, e.g. nrfconnect/sdk-nrf#3962, "session caching is currently not supported by AWS
      // IoT"); Node would, with stateless tickets. With this a ticket it sends never resumes,
      // and it no longer encrypts the session, client certificate included, into two tickets a
      // connection: about 0.5 ms of the handshake's server CPU (docs/emulator.md, Throughput).
      secureOptions: constants.SSL_OP_NO_TICKET,
      ALPNProtocols: opts.alpnRequired ? [MQTT_ALPN] : [MQTT_ALPN, 'mqtt'],
    },
    (socket) => {
      // "Clients that connect on port 443 with X.509 client certificate authentication must
      // implement the ALPN TLS extension and use the ALPN protocol name [x-amzn-mqtt-ca]"
      // (AWS IoT Developer Guide, "Protocols, port mappings, and authentication"). Without it
      // port 443 is HTTPS, which an MQTT CONNECT is not: the connection ends.
      if (opts.alpnRequired && socket.alpnProtocol !== MQTT_ALPN) {
        log(`tls: refused a client without ALPN ${MQTT_ALPN} (port 443 mode)`);
        socket.destroy();
        return;
      }
      onPeer(socket, peerOf(socket));
    },
  );
  // Nagle off, on every accepted socket (also those a TLS worker feeds in with emit, which the
  // server's own `noDelay` option would miss). With it on, a reply written after its PUBACK
  // waited for the device's delayed ACK: about 40 ms a request on Linux, four times a device
  // (the known MQTT-broker trap: eclipse-mosquitto/mosquitto#433, LabOverWire/mqtt-lib#128).
  server.prependListener('connection', (socket: Socket) => socket.setNoDelay(true));
  // Under TLS 1.3 a refused client certificate is only noticed after the handshake: end the
  // socket so the client sees the refusal instead of waiting forever.
  server.on('tlsClientError', (error, socket) => {
    log(`tls: refused a client: ${error.message}`);
    socket.destroy();
  });
  return server;
}

/** Listens on host:port; rejects with the listen error (EADDRINUSE, EACCES...). Resolves with the port. */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
