// Hand-off to the AWS IoT Device Client: its config names the new identity (checked against its
// documented keys, types and permission rules: test/helpers/device-client-schema.ts), keeps the
// image's other settings, keeps its own fleet provisioning off, and its unit is restarted.
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deviceClientProxyConfig, rootHome, writeDeviceClientProxyConfig } from '../../src/agent/handoff/device-client-proxy.ts';
import type { ProxyRoute } from '../../src/agent/proxy/route.ts';
import { parseProxyUrl } from '../../src/shared/proxy-url.ts';
import { startTestEmulator } from '../helpers/emulator.ts';
import { DEVICE_CLIENT_CONFIG_FILE_RULE, DEVICE_CLIENT_PROXY_FILE_RULE, permissionProblems, proxyConfigProblems, schemaProblems } from '../helpers/device-client-schema.ts';
import { hasTinyproxy, startTinyproxy } from '../helpers/tinyproxy.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { expectNoSecrets, makeDevice, THING_NAME, FAKE_MEMBERS } from './device.ts';

const UNIT = 'aws-iot-device-client.service';
const RESTART_CALLS = [`show --property=ConsistsOf --value ${UNIT}`, `reset-failed ${UNIT} ${FAKE_MEMBERS.join(' ')}`, `--no-block restart ${UNIT}`];

async function deviceClientDevice(existing?: string, emulatorOn443 = false, config: Record<string, unknown> = {}, proxyFileInConfig = true) {
  // Port 443 (ALPN) on its own loopback address: where the proxy tests' tinyproxy may CONNECT to.
  const host = `127.${randomInt(64, 250)}.${randomInt(0, 255)}.${randomInt(1, 254)}`;
  const t = await startTestEmulator(emulatorOn443 ? { host, port: 443 } : {});
  const device = await makeDevice(t, { handoff: 'device-client', greengrass: { enabled: false }, ...(emulatorOn443 ? { iotDataEndpoint: host, port: 443 } : {}), ...config });
  const configFile = path.join(device.dir, 'etc', '.aws-iot-device-client', 'aws-iot-device-client.conf');
  if (existing !== undefined) {
    await mkdir(path.dirname(configFile), { recursive: true, mode: 0o745 });
    await writeFile(configFile, existing, { mode: 0o640 });
  }
  // The config names the Device Client's file; the rest of the device as makeDevice made it.
  const text = await readFile(device.configFile, 'utf8');
  const proxyFile = path.join(device.dir, 'root', '.aws-iot-device-client', 'http-proxy.conf');
  await writeFile(device.configFile, `${text}deviceClient:\n  configFile: ${configFile}\n${proxyFileInConfig ? `  httpProxyConfigFile: ${proxyFile}\n` : ''}`);
  return { t, device, configFile, proxyFile };
}

const readJson = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

describe('hand-off to the AWS IoT Device Client', () => {
  it('writes its config as it documents it, with modes it accepts, and restarts its unit', async () => {
    const { t, device, configFile, proxyFile } = await deviceClientDevice();
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(0);
    // No proxy on the way: no proxy config for it either.
    await expect(stat(proxyFile)).rejects.toThrow(/ENOENT/);
    const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
    const doc = await readJson(configFile);
    expect(doc).toEqual({
      endpoint: t.emulator.endpoint,
      cert: state.certificatePath,
      key: state.privateKeyPath,
      'root-ca': state.rootCaPath,
      'thing-name': THING_NAME,
      'fleet-provisioning': { enabled: false },
    });
    expect(schemaProblems(doc)).toEqual([]);
    // The identity as the Device Client checks it at start: key 600, cert and CA 644, in a 700 directory.
    expect(await permissionProblems(doc)).toEqual([]);
    expect([await modeOf(configFile), await modeOf(path.dirname(configFile))]).toEqual([DEVICE_CLIENT_CONFIG_FILE_RULE.mode, DEVICE_CLIENT_CONFIG_FILE_RULE.dirMode]);
    expect(await device.systemctlCalls()).toEqual(RESTART_CALLS);
    // No Greengrass drop-in.
    await expect(stat(device.dropIn)).rejects.toThrow();
    expect(r.stderr).toContain(`wrote the AWS IoT Device Client config ${configFile}`);
    // Provisioned: a malformed https_proxy has nothing left to stop (it ends only a run that would mint).
    const rerun = await device.run(['provision'], { https_proxy: 'proxy.example.com' });
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    expect(rerun.stderr).toContain('already provisioned');
  });

  it("keeps the image's other settings and turns its own fleet provisioning off", async () => {
    const existing = {
      endpoint: 'old-ats.iot.eu-west-1.amazonaws.com',
      cert: '/old/cert.pem',
      key: '/old/key.pem',
      'thing-name': 'old',
      logging: { level: 'INFO', type: 'STDOUT', file: '/var/log/aws-iot-device-client/aws-iot-device-client.log' },
      jobs: { enabled: true, 'handler-directory': '/etc/aws-iot-device-client/jobs' },
      tunneling: { enabled: true },
      'fleet-provisioning': { enabled: true, 'template-name': 'theirs', 'template-parameters': '{"SerialNumber": "x"}' },
    };
    const { device, configFile } = await deviceClientDevice(JSON.stringify(existing));
    expect((await device.run()).exitCode).toBe(0);
    const doc = await readJson(configFile);
    expect(doc.logging).toEqual(existing.logging);
    expect(doc.jobs).toEqual(existing.jobs);
    expect(doc.tunneling).toEqual(existing.tunneling);
    expect(doc['fleet-provisioning']).toEqual({ ...existing['fleet-provisioning'], enabled: false });
    expect(doc['thing-name']).toBe(THING_NAME);
    expect(schemaProblems(doc)).toEqual([]);
  });

  it('rewrites a config that no longer names the committed identity, and follows --force', async () => {
    const { device, configFile } = await deviceClientDevice();
    expect((await device.run()).exitCode).toBe(0);
    const first = await readJson(configFile);
    await writeFile(configFile, JSON.stringify({ ...first, cert: '/somewhere/else.pem' }));
    const rerun = await device.run();
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stderr).toContain('does not name the committed identity');
    expect(await readJson(configFile)).toEqual(first);
    expect(await modeOf(configFile)).toBe(0o640);

    const forced = await device.run(['provision', '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    const state = JSON.parse(await readFile(path.join(device.out, 'state.json'), 'utf8'));
    const after = await readJson(configFile);
    expect([after.cert, after.key, after['root-ca']]).toEqual([state.certificatePath, state.privateKeyPath, state.rootCaPath]);
    expect(after.cert).not.toBe(first.cert);
    expect(await permissionProblems(after)).toEqual([]);
    expect((await device.restarts()).length).toBe(3);
  });

  it('holds the schema table to what it documents: wrong types and unknown keys are found', () => {
    expect(schemaProblems({ endpoint: 'e', cert: 'c', key: 'k', 'thing-name': 't', 'fleet-provisioning': { enabled: 'false' }, thingName: 'x' })).toEqual([
      expect.stringMatching(/^fleet-provisioning\.enabled: string, expected boolean/),
      'thingName: not a key the Device Client documents',
    ]);
    expect(schemaProblems({})).toHaveLength(4);
  });
  it("writes its HTTP proxy config as it documents it: keys, types, a private IPv4 host, 0600 in a 0745 directory", async () => {
    const route = (url: string): ProxyRoute => ({ proxy: parseProxyUrl(url)!, source: 'proxy.url' });
    const withCredentials = deviceClientProxyConfig(route('http://device:s3cret%40x@10.0.0.140:9999'));
    expect(withCredentials).toEqual({
      config: {
        'http-proxy-enabled': true,
        'http-proxy-host': '10.0.0.140',
        'http-proxy-port': '9999',
        'http-proxy-auth-method': 'UserNameAndPassword',
        'http-proxy-username': 'device',
        'http-proxy-password': 's3cret@x',
      },
    });
    const file = path.join(await tmpDir('fp-dc-proxy-'), 'root', '.aws-iot-device-client', 'http-proxy.conf');
    if (!('config' in withCredentials)) throw new Error('refused');
    await writeDeviceClientProxyConfig(file, withCredentials.config, { uid: process.getuid!(), gid: process.getgid!() });
    const written = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    expect(proxyConfigProblems(written)).toEqual([]);
    expect([await modeOf(file), await modeOf(path.dirname(file))]).toEqual([DEVICE_CLIENT_PROXY_FILE_RULE.mode, DEVICE_CLIENT_PROXY_FILE_RULE.dirMode]);

    for (const url of ['http://172.16.0.9:3128', 'http://192.168.1.2:8080', 'http://10.1.2.3:80']) {
      const result = deviceClientProxyConfig(route(url));
      expect('config' in result && proxyConfigProblems(result.config as unknown as Record<string, unknown>), url).toEqual([]);
      expect('config' in result && result.config['http-proxy-auth-method'], url).toBe('None');
    }
    // What the Device Client would refuse at start is not written; the reason never holds the password.
    for (const url of ['http://127.0.0.1:3128', 'http://proxy.example.com:3128', 'http://172.32.0.1:3128', 'http://[fd00::1]:3128', 'http://8.8.8.8:3128', 'http://device@10.0.0.1:3128', 'http://device:@10.0.0.1:3128']) {
      const result = deviceClientProxyConfig(route(url));
      expect('refused' in result && result.refused, url).toMatch(/^the AWS IoT Device Client (takes only a private IPv4 address|needs both a user name and a password)/);
    }
    // Where it is read: "~" of root (Yocto's ROOT_HOME /home/root, or /root), as /etc/passwd says.
    expect(rootHome('daemon:x:1:1::/usr/sbin:/bin/false\nroot:x:0:0:root:/home/root:/bin/sh\n')).toBe('/home/root');
    expect(rootHome('root:x:0:0:root:/root:/bin/bash\n')).toBe('/root');
    expect(rootHome('nobody:x:65534:65534::/nonexistent:/bin/false\n')).toBeUndefined();

    // The checker itself finds what the Device Client refuses.
    expect(proxyConfigProblems({ 'http-proxy-enabled': true, 'http-proxy-host': '127.0.0.1', 'http-proxy-port': 3128, 'http-proxy-auth-method': 'UserNameAndPassword' })).toEqual([
      expect.stringMatching(/^http-proxy-port: integer, expected string/),
      expect.stringMatching(/^http-proxy-host: 127\.0\.0\.1 is not a private IPv4 address/),
      'http-proxy-username: required with UserNameAndPassword',
      'http-proxy-password: required with UserNameAndPassword',
    ]);
  });

  const canBind443 = process.getuid?.() === 0 || Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) <= 443;
  it.runIf(hasTinyproxy && canBind443)('through a proxy the Device Client would refuse (loopback): provisions, says why its proxy config is not written, never shows the password', async () => {
    const password = 'dc-pr0xy-s3cret';
    const proxy = await startTinyproxy({ basicAuth: ['device', password] });
    const { device, configFile } = await deviceClientDevice(undefined, true, { proxy: { url: `http://device:${password}@127.0.0.1:${proxy.port}` } }, false);
    // Without deviceClient.httpProxyConfigFile: under root's home as /etc/passwd (FP_AGENT_SYSROOT's) says, Yocto's /home/root.
    await writeFile(path.join(device.dir, 'root', 'etc', 'passwd'), 'root:x:0:0:root:/home/root:/bin/sh\ndaemon:x:1:1::/usr/sbin:/bin/false\n');
    const proxyFile = '/home/root/.aws-iot-device-client/http-proxy.conf';
    const r = await device.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `warning: the AWS IoT Device Client takes only a private IPv4 address (10/8, 172.16/12, 192.168/16) as its proxy host, and the proxy ${proxy.url} (proxy.url) is not one; ${proxyFile} is not written, so the Device Client connects directly`,
    );
    expect(schemaProblems(await readJson(configFile))).toEqual([]);
    expect(`${r.stdout}${r.stderr}`).not.toContain(password);
    expectNoSecrets(r.stderr);
    // A rerun does not rewrite for it (nothing it could write), nor warn again.
    const rerun = await device.run();
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stderr).not.toContain('rewriting it');
    expect(rerun.stderr).not.toContain('private IPv4');
  });
});
