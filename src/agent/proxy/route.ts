// Whether a connection goes through an HTTP proxy, and which: the config's `proxy` block wins
// over the environment (https_proxy, then HTTPS_PROXY; no_proxy, then NO_PROXY, as curl reads
// them), field by field. docs/proxy.md lists the no_proxy forms supported.
import { isIP } from 'node:net';
import type { AgentConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { parseProxyUrl, PROXY_URL_EXPECTED, type ProxyUrl } from '../../shared/proxy-url.ts';

export interface ProxyRoute {
  proxy: ProxyUrl;
  /** Where the URL came from, for messages: `proxy.url` or the environment variable's name. */
  source: string;
}

type Env = Record<string, string | undefined>;

const firstSet = (env: Env, names: string[]): [string, string] | undefined => {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return [name, value];
  }
  return undefined;
};

/** The proxy for `host:port`, or undefined for a direct connection. */
export function proxyRoute(config: Pick<AgentConfig, 'proxy'>, host: string, port: number, env: Env = process.env): ProxyRoute | undefined {
  let route: ProxyRoute | undefined;
  if (config.proxy?.url) route = { proxy: config.proxy.url, source: 'proxy.url' };
  else {
    const found = firstSet(env, ['https_proxy', 'HTTPS_PROXY']);
    if (!found) return undefined;
    const proxy = parseProxyUrl(found[1]);
    if (!proxy) throw new ConfigError('environment', found[0], PROXY_URL_EXPECTED);
    route = { proxy, source: found[0] };
  }
  const noProxy = config.proxy?.noProxy ?? firstSet(env, ['no_proxy', 'NO_PROXY'])?.[1] ?? '';
  return bypassesProxy(noProxy, host, port) ? undefined : route;
}

/**
 * curl's no_proxy matching (CURLOPT_NOPROXY), plus `host:port` entries: `*` alone matches every
 * host; a name matches itself and its subdomains (a leading dot is ignored: `example.com` and
 * `.example.com` both match `a.example.com`, never `notexample.com`); an IP address matches
 * itself, and `addr/bits` a CIDR range; `entry:port` only that port. Case-insensitive; entries
 * are separated by commas and/or white space.
 */
export function bypassesProxy(noProxy: string, host: string, port: number): boolean {
  const target = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  for (const raw of noProxy.split(/[\s,]+/)) {
    if (!raw) continue;
    if (raw === '*') return true;
    let entry = raw.toLowerCase();
    const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (withPort) {
      if (Number(withPort[2]) !== port) continue;
      entry = withPort[1]!;
    }
    entry = entry.replace(/^\[|\]$/g, '');
    if (entry.includes('/')) {
      if (isIP(target) && inCidr(target, entry)) return true;
      continue;
    }
    if (isIP(entry) || isIP(target)) {
      if (entry === target) return true;
      continue;
    }
    const name = entry.replace(/^\./, '').replace(/\.$/, '');
    if (name && (target === name || target.endsWith(`.${name}`))) return true;
  }
  return false;
}

function inCidr(address: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/') as [string, string];
  const family = isIP(base);
  if (family === 0 || family !== isIP(address) || !/^\d+$/.test(bitsText)) return false;
  const a = addressBits(address);
  const b = addressBits(base);
  const bits = Math.min(Number(bitsText), a.length);
  return a.slice(0, bits) === b.slice(0, bits);
}

/** An IPv4 or IPv6 address as a string of bits (IPv6 with a dotted IPv4 tail: never matched). */
function addressBits(address: string): string {
  if (isIP(address) === 4) return address.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('');
  if (address.includes('.')) return '';
  const [head, tail] = address.split('::').map((half) => (half ? half.split(':') : [])) as [string[], string[] | undefined];
  const groups = tail === undefined ? head : [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  return groups.map((g) => parseInt(g, 16).toString(2).padStart(16, '0')).join('');
}
