// The AWS IoT Device Client's HTTP proxy config, for a device whose agent reached AWS IoT through a
// proxy: the JSON file and keys of its docs/HTTP_PROXY.md ("Configuring HTTP Proxy via the JSON
// configuration file"), read from ~/.aws-iot-device-client/http-proxy.conf of the user it runs as
// (Config::DEFAULT_HTTP_PROXY_CONFIG_FILE; not named in its main config, only --http-proxy-config
// overrides it). Written 0600 (Permissions::HTTP_PROXY_CONFIG_FILE, "enforces chmod permission
// code of 600"), its directory 0745 when we make it (Permissions::CONFIG_DIR).
//
// What it accepts (source/config/Config.cpp HttpProxyConfig::Validate, source/util/ProxyUtils.cpp):
// `http-proxy-host` must be a private IPv4 address (10/8, 172.16/12, 192.168/16; no names, no
// loopback, no IPv6), `http-proxy-port` a string of 1-65535, `http-proxy-auth-method`
// `UserNameAndPassword` (then both username and password non-empty) or `None`. A config it
// refuses stops it at start ("Unable to Parse HTTP proxy Config file"), so a proxy outside those
// rules is not written: the hand-off says so in one warning line instead.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { makeDirs, writeFileAtomic, type Owner } from '../../shared/atomic-file.ts';
import type { AgentConfig } from '../../shared/config.ts';
import { DEVICE_CLIENT_HTTP_PROXY_CONFIG_IN_HOME } from '../../shared/device-paths.ts';
import { proxyAddress } from '../../shared/proxy-url.ts';
import type { ProxyRoute } from '../proxy/route.ts';
import { sysroot } from '../test-hooks.ts';

export const HTTP_PROXY_CONFIG_MODE = 0o600;
export const HTTP_PROXY_CONFIG_DIR_MODE = 0o745;

export interface DeviceClientProxyConfig {
  'http-proxy-enabled': true;
  'http-proxy-host': string;
  'http-proxy-port': string;
  'http-proxy-auth-method': 'UserNameAndPassword' | 'None';
  'http-proxy-username'?: string;
  'http-proxy-password'?: string;
}

/** ProxyUtils::IsIpAddressPrivate: the RFC 1918 ranges. */
function isPrivateIpv4(host: string): boolean {
  if (isIP(host) !== 4) return false;
  const [a, b] = host.split('.').map(Number) as [number, number];
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}

/** The file's content for `route`, or why the Device Client would refuse it (never naming the password). */
export function deviceClientProxyConfig(route: ProxyRoute): { config: DeviceClientProxyConfig } | { refused: string } {
  const { host, port, username, password } = route.proxy;
  const proxy = `the proxy ${proxyAddress(route.proxy)} (${route.source})`;
  if (!isPrivateIpv4(host)) {
    return { refused: `the AWS IoT Device Client takes only a private IPv4 address (10/8, 172.16/12, 192.168/16) as its proxy host, and ${proxy} is not one` };
  }
  if (username !== undefined && (!username || !password)) {
    return { refused: `the AWS IoT Device Client needs both a user name and a password for proxy authentication, and ${proxy} lacks one` };
  }
  const config: DeviceClientProxyConfig = {
    'http-proxy-enabled': true,
    'http-proxy-host': host,
    // Read with GetString and stoi: a string.
    'http-proxy-port': String(port),
    'http-proxy-auth-method': username === undefined ? 'None' : 'UserNameAndPassword',
    ...(username === undefined ? {} : { 'http-proxy-username': username, 'http-proxy-password': password }),
  };
  return { config };
}

/** The home directory of uid 0 in passwd(5) text: what "~" is for the Device Client's unit (wordexp, from HOME or getpwuid). */
export function rootHome(passwd: string): string | undefined {
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 7 && fields[2] === '0' && fields[5]?.startsWith('/')) return fields[5];
  }
  return undefined;
}

/** deviceClient.httpProxyConfigFile, else the file under root's home (/etc/passwd; /root if it does not say). */
export async function deviceClientProxyFile(config: Pick<AgentConfig, 'deviceClient'>): Promise<string> {
  if (config.deviceClient.httpProxyConfigFile) return config.deviceClient.httpProxyConfigFile;
  const passwd = await readFile(path.join(sysroot() || '/', 'etc/passwd'), 'utf8').catch(() => '');
  return path.join(rootHome(passwd) ?? '/root', DEVICE_CLIENT_HTTP_PROXY_CONFIG_IN_HOME);
}

export const renderProxyConfig = (config: DeviceClientProxyConfig): string => `${JSON.stringify(config, null, 2)}\n`;

/** Writes the file (0600, owner as given; its directory 0745 if we make it). */
export async function writeDeviceClientProxyConfig(file: string, config: DeviceClientProxyConfig, owner: Owner): Promise<void> {
  await makeDirs(path.dirname(file), HTTP_PROXY_CONFIG_DIR_MODE);
  await writeFileAtomic(file, renderProxyConfig(config), { mode: HTTP_PROXY_CONFIG_MODE, owner });
}
