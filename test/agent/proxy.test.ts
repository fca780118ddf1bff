// MQTT over TLS through a real HTTP CONNECT proxy (Debian's tinyproxy on 127.0.0.1) to the
// emulator playing AWS IoT Core's port 443 (ALPN x-amzn-mqtt-ca required). The emulator listens
// on 443 of its own loopback address (127.x.y.z), so tests in parallel never share one.
import { chmod, readFile, stat } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { startCuttingRelay } from '../helpers/relay.ts';
import { freePort, hasTinyproxy, startTinyproxy } from '../helpers/tinyproxy.ts';
import { expectNoSecrets, GG_GID, makeDevice, THING_NAME } from './device.ts';

const canBind443 = process.getuid?.() === 0 || Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) <= 443;
const proxyIt = it.runIf(hasTinyproxy && canBind443);

const PASSWORD = 'pr0xy-s3cret';
const FAST = { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 2_000, attemptTimeoutMs: 1_000 };

/** The emulator on <own loopback address>:443, where it requires ALPN x-amzn-mqtt-ca as AWS does. */
async function emulatorOn443(): Promise<{ t: TestEmulator; host: string }> {
  const host = `127.${randomInt(64, 250)}.${randomInt(0, 255)}.${randomInt(1, 254)}`;
  const t = await startTestEmulator({ host, port: 443 });
  return { t, host };
}

async function proxiedDevice(config: Record<string, unknown>) {
  const { t, host } = await emulatorOn443();
  const device = await makeDevice(t, { iotDataEndpoint: host, port: 443, ...config });
  return { t, host, device };
}

const lastLine = (stderr: string) => stderr.trim().split('\n').at(-1)!.replace(/^fp-agent: /, '');
const dropInOf = async (file: string) => parse(await readFile(file, 'utf8')) as { services: Record<string, { configuration: Record<string, unknown> }> };
const networkProxyOf = async (file: string) => (await dropInOf(file)).services['aws.greengrass.NucleusLite']!.configuration.networkProxy;

describe('through an HTTP CONNECT proxy (tinyproxy) to port 443 with ALPN', () => {
  proxyIt('provisions through the proxy named in the config, and carries it on to Greengrass lite', async () => {
    const proxy = await startTinyproxy();
    const { t, host, device } = await proxiedDevice({ proxy: { url: proxy.url, noProxy: 'localhost,169.254.169.254' } });
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`connecting to ${host}:443 through the proxy ${proxy.url} (proxy.url)`);
    // Both connections (claim, then the new certificate's check) went through the proxy.
    expect((await proxy.log()).match(new RegExp(`CONNECT ${host.replaceAll('.', '\\.')}:443 HTTP/1\\.1`, 'g'))).toHaveLength(2);
    expect(await t.emulator.control.describeThing(THING_NAME)).toBeTruthy();
    expect(await networkProxyOf(device.dropIn)).toEqual({ noProxyAddresses: 'localhost,169.254.169.254', noproxy: 'localhost,169.254.169.254', proxy: { url: proxy.url } });
    expect((await stat(device.dropIn)).mode & 0o777).toBe(0o644);
  });

  proxyIt('takes https_proxy from the environment when the config names none', async () => {
    const proxy = await startTinyproxy();
    const { host, device } = await proxiedDevice({});
    const r = await device.run(['provision'], { https_proxy: `${proxy.url}/` });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`through the proxy ${proxy.url} (https_proxy)`);
    expect(await proxy.log()).toContain(`CONNECT ${host}:443`);

    // A later run without https_proxy (sudo drops it) leaves Greengrass its proxy: no rewrite, no restart.
    const carried = await networkProxyOf(device.dropIn);
    expect(carried).toEqual({ proxy: { url: proxy.url } });
    const restarts = (await device.restarts()).length;
    const rerun = await device.run(['provision']);
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    expect(rerun.stderr).not.toContain('rewriting it');
    expect(await networkProxyOf(device.dropIn)).toEqual(carried);
    expect((await device.restarts()).length).toBe(restarts);
  });

  proxyIt('sends Basic credentials, never shows them, and keeps the drop-in that holds them from others', async () => {
    const proxy = await startTinyproxy({ basicAuth: ['device', PASSWORD] });
    const url = `http://device:${PASSWORD}@127.0.0.1:${proxy.port}`;
    const { device } = await proxiedDevice({ proxy: { url } });
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(`${r.stdout}${r.stderr}`).not.toContain(PASSWORD);
    const status = await device.run(['status', '--json']);
    expect(`${status.stdout}${status.stderr}`).not.toContain(PASSWORD);
    // Greengrass lite's curl takes the credentials from the URL; root and the Greengrass group alone may read it.
    expect(await networkProxyOf(device.dropIn)).toEqual({ proxy: { url } });
    const info = await stat(device.dropIn);
    expect([info.mode & 0o777, info.uid, info.gid]).toEqual([0o640, process.getuid!(), GG_GID]);
    // A config others may read is named, once 0600 it is not.
    await chmod(device.configFile, 0o644);
    expect((await device.run()).stderr).toContain(`warning: ${device.configFile} holds a proxy password and others may read it (mode 0644): make it 0600`);
    await chmod(device.configFile, 0o600);
    expect((await device.run()).stderr).not.toContain('holds a proxy password');
  });

  proxyIt('ends with exit 78 naming the proxy setting when the proxy refuses the credentials', async () => {
    const proxy = await startTinyproxy({ basicAuth: ['device', PASSWORD] });
    const { t, device } = await proxiedDevice({ proxy: { url: `http://127.0.0.1:${proxy.port}`, username: 'device', password: 'wrong-password' } });
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(78);
    expect(lastLine(r.stderr)).toMatch(new RegExp(`^the proxy http://127\\.0\\.0\\.1:${proxy.port} \\(proxy\\.url\\) refused the credentials \\(40[17] [^)]*\\): check the proxy user and password of proxy\\.url$`));
    expect(r.stderr).not.toContain('wrong-password');
    expectNoSecrets(r.stderr);
    expect((await t.emulator.control.listCertificates()).map((c) => c.certificateId)).toEqual([t.claim.certificateId]);
  });

  proxyIt('ends with exit 78 when the proxy wants credentials the config lacks', async () => {
    const proxy = await startTinyproxy({ basicAuth: ['device', PASSWORD] });
    const { device } = await proxiedDevice({ proxy: { url: proxy.url } });
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(78);
    expect(lastLine(r.stderr)).toMatch(/wants credentials \(407 Proxy Authentication Required\): put them in proxy\.username and proxy\.password$/);
  });

  proxyIt('ends with exit 78 when the proxy refuses CONNECT to port 443', async () => {
    const proxy = await startTinyproxy({ connectPorts: [563] });
    const { host, device } = await proxiedDevice({ proxy: { url: proxy.url } });
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(78);
    expect(lastLine(r.stderr)).toBe(`the proxy ${proxy.url} (proxy.url) refused to connect to ${host}:443 (403 Access violation): its rules must allow CONNECT to port 443`);
  });

  proxyIt('retries when the proxy drops the tunnel mid-flow, and then provisions', async () => {
    const proxy = await startTinyproxy();
    const relay = await startCuttingRelay(proxy.port);
    const { device } = await proxiedDevice({ proxy: { url: `http://127.0.0.1:${relay.port}` }, retry: { ...FAST, deadlineMs: 20_000 } });
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/attempt 1 failed: .*; retrying in \d+ ms/);
    expect(relay.connections()).toBeGreaterThanOrEqual(3);
  });

  proxyIt('retries an unreachable proxy until the deadline (exit 75)', async () => {
    const port = await freePort();
    const { device } = await proxiedDevice({ proxy: { url: `http://127.0.0.1:${port}` }, retry: FAST });
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(75);
    expect(lastLine(r.stderr)).toMatch(new RegExp(`^gave up after \\d+ attempts in [\\d.]+ s: proxy http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  });

  proxyIt('goes direct to a host no_proxy names, and the config\'s noProxy wins over no_proxy', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const env = await proxiedDevice({});
    const direct = await env.device.run(['provision'], { https_proxy: dead, no_proxy: `example.com, ${env.host}` });
    expect(direct.exitCode, direct.stderr).toBe(0);
    expect(direct.stderr).toContain(`connecting to ${env.host}:443 as`);

    const hostPort = await proxiedDevice({});
    const byPort = await hostPort.device.run(['provision'], { https_proxy: dead, no_proxy: `${hostPort.host}:443` });
    expect(byPort.exitCode, byPort.stderr).toBe(0);
    expect(byPort.stderr).not.toContain('through the proxy');

    // noProxy in the config replaces no_proxy: this host is not in it, so the (dead) proxy is used.
    const wins = await proxiedDevice({ proxy: { url: dead, noProxy: 'nothing.example' }, retry: FAST });
    const r = await wins.device.run(['provision'], { no_proxy: wins.host });
    expect(r.exitCode, r.stderr).toBe(75);
    expect(r.stderr).toContain(`through the proxy ${dead} (proxy.url)`);
  });
});
