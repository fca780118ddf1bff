// The HTTP proxy a device reaches AWS IoT through: `http://[user:password@]host:port`, from the
// config's `proxy` block or from https_proxy. Parsed here, once, for the config validator and for
// the agent's environment; the password is never part of any message.

export interface ProxyUrl {
  host: string;
  port: number;
  /** Basic credentials (RFC 7617) for Proxy-Authorization; percent-decoded. */
  username?: string;
  password?: string;
}

/** What a proxy URL must look like, for error messages. */
export const PROXY_URL_EXPECTED = 'an http:// proxy URL with a port, such as http://proxy.example.com:3128 (https:// proxies are not supported)';

/**
 * Parses `http://[user[:password]@]host:port[/]`, or returns undefined. The port is required:
 * clients disagree on the default (curl: 1080, Greengrass: 80), so we do not guess.
 */
export function parseProxyUrl(text: string): ProxyUrl | undefined {
  const match = /^http:\/\/(?:([^@/]*)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(text.trim());
  if (!match) return undefined;
  const [, userinfo, rawHost, rawPort] = match;
  const port = Number(rawPort);
  if (port < 1 || port > 65_535) return undefined;
  const host = rawHost!.startsWith('[') ? rawHost!.slice(1, -1) : rawHost!;
  if (userinfo === undefined) return { host, port };
  const colon = userinfo.indexOf(':');
  try {
    const username = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
    const password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    return { host, port, username, ...(password === undefined ? {} : { password }) };
  } catch {
    return undefined;
  }
}

/** The URL without credentials: what logs and `status` may show. */
export const proxyAddress = (proxy: Pick<ProxyUrl, 'host' | 'port'>): string =>
  `http://${proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host}:${proxy.port}`;

/** The URL with percent-encoded credentials, as curl and Greengrass lite take it. */
export function proxyUrlWithCredentials(proxy: ProxyUrl): string {
  if (proxy.username === undefined) return proxyAddress(proxy);
  const password = proxy.password === undefined ? '' : `:${encodeURIComponent(proxy.password)}`;
  return proxyAddress(proxy).replace('http://', `http://${encodeURIComponent(proxy.username)}${password}@`);
}
