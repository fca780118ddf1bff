// A plain TCP relay that cuts its first connection part-way: put between the agent and a real
// proxy, it plays a proxy (or the network to it) dropping a tunnel mid-flow. Test code only.
import { connect, createServer, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';

export interface Relay {
  port: number;
  /** Connections accepted so far. */
  connections(): number;
}

/**
 * Relays 127.0.0.1:<port> to `target`. Connection number `cut` (0: the first) is cut (both sides
 * destroyed) once the upstream has sent the end of an HTTP head (the proxy's CONNECT answer) and
 * then `afterBytes` more bytes: inside the tunnel, mid-way through the TLS handshake.
 */
export async function startCuttingRelay(targetPort: number, afterBytes = 1, cut = 0): Promise<Relay> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const index = count++;
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (chunk) => upstream.write(chunk));
    let seen = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      if (index !== cut) return void client.write(chunk);
      seen = Buffer.concat([seen, chunk]);
      const head = seen.indexOf('\r\n\r\n');
      if (head < 0 || seen.length - (head + 4) < afterBytes) return void client.write(chunk);
      // Pass on what the cut leaves: the head and `afterBytes` of the tunnel, then drop both sides.
      const keep = head + 4 + afterBytes - (seen.length - chunk.length);
      client.write(chunk.subarray(0, Math.max(0, keep)), () => {
        client.destroy();
        upstream.destroy();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as { port: number }).port, connections: () => count };
}
