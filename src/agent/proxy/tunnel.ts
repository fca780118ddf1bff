// A TCP tunnel through an HTTP proxy (RFC 9110 9.3.6 CONNECT), for MQTT over TLS to AWS IoT Core.
// AWS IoT Core takes MQTT with a client certificate on 443 when the client offers ALPN
// x-amzn-mqtt-ca ("Device communication protocols", "Protocols, port mappings, and
// authentication"), which is why a device behind a proxy that only lets CONNECT through to 443
// can still reach it; the TLS session, ALPN included, runs end to end inside the tunnel.
import { connect, type Socket } from 'node:net';
import { proxyAddress } from '../../shared/proxy-url.ts';
import { Fault } from '../errors.ts';
import type { ProxyRoute } from './route.ts';

/** A proxy's answer is a status line and headers; anything longer is not one. */
const MAX_RESPONSE_HEAD = 16 * 1024;

/** The CONNECT request; credentials as Basic (RFC 7617). */
export function connectRequest(route: ProxyRoute, host: string, port: number): string {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
  const { username, password } = route.proxy;
  if (username !== undefined) lines.push(`Proxy-Authorization: Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** The fault for a CONNECT refused with `status`: which setting to fix, or that it may pass. */
export function refusalFault(route: ProxyRoute, status: number, reason: string, target: string): Fault {
  const proxy = `the proxy ${proxyAddress(route.proxy)} (${route.source})`;
  const answer = `${status}${reason ? ` ${reason}` : ''}`;
  // 407 is the standard answer; tinyproxy 1.11 answers wrong credentials with 401.
  if (status === 407 || status === 401) {
    return route.proxy.username === undefined
      ? new Fault('proxyAuth', `${proxy} wants credentials (${answer}): put them in ${route.source === 'proxy.url' ? 'proxy.username and proxy.password' : route.source}`)
      : new Fault('proxyAuth', `${proxy} refused the credentials (${answer}): check the proxy user and password of ${route.source === 'proxy.url' ? 'proxy.url' : route.source}`);
  }
  // Upstream faults (bad gateway, unavailable, gateway timeout) and throttling may pass.
  if (status >= 500 || status === 408 || status === 429) return new Fault('network', `${proxy} could not reach ${target} (${answer})`);
  return new Fault('proxyRefused', `${proxy} refused to connect to ${target} (${answer}): its rules must allow CONNECT to port ${target.split(':').at(-1)}`);
}

/**
 * Connects to the proxy, asks it for a tunnel to `host:port` and resolves with the socket once
 * the proxy answers 2xx. `signal` aborts (and destroys the socket) at any point.
 */
export function openTunnel(route: ProxyRoute, host: string, port: number, signal: AbortSignal): Promise<Socket> {
  const target = `${host}:${port}`;
  const via = `proxy ${proxyAddress(route.proxy)}`;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const socket = connect({ host: route.proxy.host, port: route.proxy.port, noDelay: true }); // no Nagle, as mqtt/connection.ts
    let head = Buffer.alloc(0);
    const done = (error?: Error) => {
      signal.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (error) {
        socket.destroy();
        reject(error);
      }
    };
    const onAbort = () => done(signal.reason as Error);
    const onError = (error: NodeJS.ErrnoException) => done(new Fault('network', `${via}: ${error.code ?? 'error'}: ${error.message}`));
    const onClose = () => done(new Fault('network', `${via} closed the connection before answering CONNECT ${target}`));
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) done(new Fault('network', `${via} answered CONNECT with something that is not HTTP`));
        return;
      }
      const status = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?\r\n/.exec(head.subarray(0, end + 2).toString('latin1'));
      if (!status) return done(new Fault('network', `${via} answered CONNECT with something that is not HTTP`));
      const code = Number(status[1]);
      if (code < 200 || code > 299) return done(refusalFault(route, code, status[2]?.trim() ?? '', target));
      // The server speaks only after our ClientHello: bytes already here are not from it.
      if (head.length > end + 4) return done(new Fault('network', `${via} sent data into the tunnel before the TLS handshake`));
      done();
      socket.pause();
      resolve(socket);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once('connect', () => socket.write(connectRequest(route, host, port)));
  });
}
