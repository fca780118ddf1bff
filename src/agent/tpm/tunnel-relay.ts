// Hands a proxy tunnel that proxy/tunnel.ts opened to `openssl s_client` (tpm/openssl-tls.ts),
// which cannot take a file descriptor: a Unix-domain socket in the private (0700) scratch dir of
// one s_client run, which `s_client -unix <path>` connects to. The relay accepts that one
// connection and copies bytes both ways; s_client's TLS runs end to end inside the tunnel, as Node's
// does on the file-key path.
//
// Why not `s_client -proxy host:port -proxy_user ... -proxy_pass env:VAR` (OpenSSL >= 3.0): the
// CONNECT would then be made by OpenSSL, and its outcome would only be stderr text to parse back
// into faults (OpenSSL 3.0.19 against tinyproxy: "s_client: HTTP CONNECT failed, reason= 407 Proxy
// Authentication Required", exit 1; an unreachable proxy: "connect:errno=111"), and the password
// would sit in s_client's environment. Through the relay the route decision (proxy/route.ts), the CONNECT request, the
// credentials, the answer's classification (403, 407/401, 5xx, unreachable, closed) and the step
// timeouts are proxy/tunnel.ts's for both key stores, so they cannot drift apart; and the proxy
// password stays in this process (never in s_client's argv, environment or stderr).
import { createServer, type Server, type Socket } from 'node:net';

export interface TunnelRelay {
  /** The socket path to give s_client (`-unix`). */
  path: string;
  /** Whether the tunnel ended (the proxy or the network closed it) while s_client was still connected. */
  tunnelClosedFirst(): boolean;
  /** Stops listening and destroys both ends. */
  close(): void;
}

/** Listens on `socketPath` (in a dir only we may enter) and relays its first connection to `tunnel`. */
export async function relayTunnel(tunnel: Socket, socketPath: string): Promise<TunnelRelay> {
  let client: Socket | undefined;
  let clientClosed = false;
  let tunnelClosed = false;
  let closedFirst = false;
  const server: Server = createServer((connection) => {
    // s_client connects once; nothing else may use the tunnel.
    if (client) return void connection.destroy();
    client = connection;
    server.close();
    if (tunnelClosed) return void connection.destroy();
    connection.on('error', () => undefined);
    connection.on('close', () => {
      clientClosed = true;
      tunnel.destroy();
    });
    connection.pipe(tunnel);
    tunnel.pipe(connection);
    tunnel.resume();
  });
  tunnel.on('error', () => undefined);
  tunnel.on('close', () => {
    tunnelClosed = true;
    if (!clientClosed) closedFirst = true;
    // Ends s_client's side too: it sees the same EOF or reset a direct connection would.
    client?.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    path: socketPath,
    tunnelClosedFirst: () => closedFirst,
    close: () => {
      if (server.listening) server.close();
      client?.destroy();
      if (!tunnelClosed) tunnel.destroy();
    },
  };
}
