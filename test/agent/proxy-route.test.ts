// Which connections go through a proxy: the URL forms, no_proxy matching (curl's, plus host:port),
// config over environment; and the CONNECT request itself.
import { describe, expect, it } from 'vitest';
import { bypassesProxy, proxyRoute } from '../../src/agent/proxy/route.ts';
import { connectRequest, refusalFault } from '../../src/agent/proxy/tunnel.ts';
import { validateAgentConfig } from '../../src/shared/config.ts';
import { parseProxyUrl, proxyUrlWithCredentials } from '../../src/shared/proxy-url.ts';

const FILE = '/etc/fleetprovisioning/config.yaml';
const base = { iotDataEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com', templateName: 't' };
const errorOf = (doc: Record<string, unknown>) => {
  try {
    validateAgentConfig({ ...base, ...doc }, FILE);
  } catch (error) {
    return (error as Error).message;
  }
  return 'no error';
};

describe('proxy URLs', () => {
  it.each([
    ['http://proxy.example.com:3128', { host: 'proxy.example.com', port: 3128 }],
    ['http://proxy:3128/', { host: 'proxy', port: 3128 }],
    ['http://10.0.0.1:8080', { host: '10.0.0.1', port: 8080 }],
    ['http://[fd00::1]:8080', { host: 'fd00::1', port: 8080 }],
    ['http://user:p%40ss%3Aw@proxy:3128', { host: 'proxy', port: 3128, username: 'user', password: 'p@ss:w' }],
    ['http://user@proxy:3128', { host: 'proxy', port: 3128, username: 'user' }],
  ])('reads %s', (text, expected) => expect(parseProxyUrl(text)).toEqual(expected));

  it.each(['https://proxy:3128', 'http://proxy', 'proxy:3128', 'http://proxy:0', 'http://proxy:70000', 'http://proxy:3128/path', 'socks5://proxy:1080', 'http://u:%zz@proxy:1'])('refuses %s', (text) => {
    expect(parseProxyUrl(text)).toBeUndefined();
  });

  it('writes credentials back percent-encoded', () => {
    expect(proxyUrlWithCredentials({ host: 'proxy', port: 3128, username: 'a b', password: 'p@ss:w/' })).toBe('http://a%20b:p%40ss%3Aw%2F@proxy:3128');
  });
});

describe('the proxy block of config.yaml', () => {
  it('takes url, credentials beside it, and noProxy', () => {
    const config = validateAgentConfig({ ...base, proxy: { url: 'http://proxy:3128', username: 'u', password: ' p w ', noProxy: 'localhost' } }, FILE);
    expect(config.proxy).toEqual({ url: { host: 'proxy', port: 3128, username: 'u', password: ' p w ' }, noProxy: 'localhost' });
    expect(validateAgentConfig(base, FILE).proxy).toBeUndefined();
  });

  it.each([
    [{ url: 'https://proxy:3128' }, 'proxy.url: expected an http:// proxy URL with a port'],
    [{ url: 'http://proxy' }, 'proxy.url: expected an http:// proxy URL with a port'],
    [{ username: 'u' }, 'proxy.url: expected a proxy URL when proxy.username or proxy.password is set'],
    [{ url: 'http://a:b@proxy:1', password: 'c' }, 'proxy.password: expected not set when proxy.url holds credentials'],
    [{ password: 7, url: 'http://proxy:1' }, 'proxy.password: expected a string'],
    [{ noproxy: 'x' }, 'proxy.noproxy: expected a known key: did you mean proxy.noProxy?'],
  ])('refuses %j in one line naming the field, never echoing a password', (proxy, message) => {
    const error = errorOf({ proxy });
    expect(error).toContain(`${FILE}: ${message}`);
    expect(error).not.toMatch(/\bb\b.*@|secret/);
  });

  it('does not echo a password it refuses', () => {
    expect(errorOf({ proxy: { url: 'http://u:topsecret@proxy' } })).not.toContain('topsecret');
  });
});

describe('no_proxy (curl semantics, plus host:port)', () => {
  it.each([
    ['*', 'anything.example', 443, true],
    ['example.com', 'example.com', 443, true],
    ['example.com', 'a.b.example.com', 443, true],
    ['.example.com', 'a.example.com', 443, true],
    ['.example.com', 'example.com', 443, true],
    ['example.com', 'notexample.com', 443, false],
    ['EXAMPLE.com', 'Iot.Example.COM', 443, true],
    ['foo, bar  example.com', 'x.example.com', 443, true],
    ['10.1.2.3', '10.1.2.3', 443, true],
    ['10.1.2.3', '10.1.2.30', 443, false],
    ['10.0.0.0/8', '10.200.1.1', 443, true],
    ['10.0.0.0/8', '11.0.0.1', 443, false],
    ['fd00::/16', 'fd00::1', 443, true],
    ['[::1]', '::1', 443, true],
    ['example.com:443', 'a.example.com', 443, true],
    ['example.com:8883', 'a.example.com', 443, false],
    ['10.1.2.3:443', '10.1.2.3', 443, true],
    ['', 'example.com', 443, false],
    ['*.example.com', 'a.example.com', 443, false],
  ])('%j for %s:%d -> %s', (list, host, port, expected) => expect(bypassesProxy(list, host, port)).toBe(expected));
});

describe('the route', () => {
  const url = { host: 'proxy', port: 3128 };
  it('prefers the config, then https_proxy, then HTTPS_PROXY', () => {
    expect(proxyRoute({ proxy: { url } }, 'h', 443, { https_proxy: 'http://other:1' })).toEqual({ proxy: url, source: 'proxy.url' });
    expect(proxyRoute({}, 'h', 443, { https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:2' })?.source).toBe('https_proxy');
    expect(proxyRoute({}, 'h', 443, { HTTPS_PROXY: 'http://b:2' })?.proxy).toEqual({ host: 'b', port: 2 });
    expect(proxyRoute({}, 'h', 443, { http_proxy: 'http://a:1' })).toBeUndefined();
  });

  it('names the variable of a malformed environment URL', () => {
    expect(() => proxyRoute({}, 'h', 443, { HTTPS_PROXY: 'proxy:3128' })).toThrow('environment: HTTPS_PROXY: expected an http:// proxy URL with a port');
  });

  it('takes no_proxy, then NO_PROXY, unless the config has noProxy', () => {
    expect(proxyRoute({ proxy: { url } }, 'h.local', 443, { no_proxy: 'local' })).toBeUndefined();
    expect(proxyRoute({ proxy: { url } }, 'h.local', 443, { NO_PROXY: 'local' })).toBeUndefined();
    expect(proxyRoute({ proxy: { url, noProxy: 'other' } }, 'h.local', 443, { no_proxy: 'local' })).toBeDefined();
  });
});

describe('CONNECT', () => {
  it('asks for the endpoint, with Basic credentials when given', () => {
    const route = { proxy: { host: 'p', port: 1, username: 'Aladdin', password: 'open sesame' }, source: 'proxy.url' };
    // RFC 7617's example.
    expect(connectRequest(route, 'abc-ats.iot.eu-west-1.amazonaws.com', 443)).toBe(
      'CONNECT abc-ats.iot.eu-west-1.amazonaws.com:443 HTTP/1.1\r\nHost: abc-ats.iot.eu-west-1.amazonaws.com:443\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n',
    );
    expect(connectRequest({ proxy: { host: 'p', port: 1 }, source: 'https_proxy' }, 'fd00::1', 443)).toBe('CONNECT [fd00::1]:443 HTTP/1.1\r\nHost: [fd00::1]:443\r\n\r\n');
  });

  it.each([
    [407, 'proxyAuth'],
    [401, 'proxyAuth'],
    [403, 'proxyRefused'],
    [405, 'proxyRefused'],
    [502, 'network'],
    [503, 'network'],
    [500, 'network'],
    [429, 'network'],
  ])('classifies a %d answer as %s', (status, kind) => {
    expect(refusalFault({ proxy: { host: 'p', port: 1 }, source: 'https_proxy' }, status, '', 'h:443').kind).toBe(kind);
  });
});
