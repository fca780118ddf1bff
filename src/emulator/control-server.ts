// Serves a ControlPlane on loopback: POST /control/<method> with {"args": [...]}, bearer token.
// Errors keep their AWS exception name so remote callers can branch on it.
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ControlPlane } from './control-plane.ts';
import { isControlMethod } from './control-methods.ts';

export interface ControlServer {
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;

function authorized(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header ?? '');
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startControlServer(control: ControlPlane, token: string, host = '127.0.0.1'): Promise<ControlServer> {
  const server = http.createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (!authorized(req.headers.authorization, token)) return send(401, { error: { name: 'UnauthorizedException', message: 'bad or missing bearer token' } });
      const method = /^\/control\/([A-Za-z]+)$/.exec(req.url ?? '')?.[1];
      if (req.method === 'GET' && req.url === '/control') return send(200, { result: 'fp-yocto emulator' });
      if (req.method !== 'POST' || !method || !isControlMethod(method)) return send(404, { error: { name: 'NotFound', message: `no such control method: ${req.method} ${req.url}` } });
      const text = await readBody(req);
      const args = text ? (JSON.parse(text) as { args?: unknown[] }).args ?? [] : [];
      if (!Array.isArray(args)) return send(400, { error: { name: 'InvalidRequestException', message: 'args must be a list' } });
      const result = await (control[method] as (...a: unknown[]) => Promise<unknown>)(...args);
      send(200, { result });
    } catch (error) {
      const e = error as Error & { status?: number };
      const status = e.status ?? (e instanceof SyntaxError ? 400 : e.name?.endsWith('Exception') ? 400 : 500);
      send(status, { error: { name: e.name ?? 'Error', message: e.message ?? String(error) } });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/control`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
