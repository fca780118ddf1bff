// A simulated device for the agent's end-to-end tests: a fake sysfs with one NIC holding the
// default route, a config pointing at a test emulator, and a fake `systemctl` first on PATH
// that records its arguments (a real child process of the agent).
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { TestEmulator } from '../helpers/emulator.ts';
import { AGENT } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { agent, makeSysroot, NO_PROXY_ENV, writeConfig, type AgentRun } from './fixtures.ts';

export const DEVICE_MAC = '00:1b:21:3a:4f:5e';
export const DEVICE_ID = '001b213a4f5e';
export const THING_NAME = `fp-${DEVICE_ID}`;
/** The Greengrass group of the simulated device's /etc/group (a gid no host group is likely to have). */
export const GG_GROUP = 'ggcore';
export const GG_GID = 46_123;
export const GROUP_FILE = `root:x:0:\n${GG_GROUP}:x:${GG_GID}:\n`;

export interface Device {
  dir: string;
  out: string;
  configFile: string;
  dropIn: string;
  systemctlLog: string;
  env: Record<string, string>;
  run(args?: string[], env?: Record<string, string>): Promise<AgentRun>;
  /** Starts the agent without waiting for it (for kill tests). */
  spawn(args?: string[], env?: Record<string, string>): ResultPromise;
  systemctlCalls(): Promise<string[]>;
  /** The `restart` calls only. */
  restarts(): Promise<string[]>;
}

/** The units the fake systemctl says are PartOf= any unit (`systemctl show -p ConsistsOf`). */
export const FAKE_MEMBERS = ['ggl.core.ggconfigd.service', 'ggl.core.iotcored.service'];

/** The calls a hand-off to Greengrass lite makes: clear failed states of the target and its units, then restart. */
export const GREENGRASS_RESTART_CALLS = [
  'show --property=ConsistsOf --value greengrass-lite.target',
  `reset-failed greengrass-lite.target ${FAKE_MEMBERS.join(' ')}`,
  '--no-block restart greengrass-lite.target',
];

export async function makeDevice(t: TestEmulator, config: Record<string, unknown> = {}, mac = DEVICE_MAC): Promise<Device> {
  const dir = await tmpDir('fp-agent-dev-');
  const sysroot = await makeSysroot(path.join(dir, 'root'), {
    nics: [{ name: 'eth0', address: mac }],
    defaultRoute: 'eth0',
    groupFile: GROUP_FILE,
  });
  const bin = path.join(dir, 'bin');
  const systemctlLog = path.join(dir, 'systemctl.log');
  await mkdir(bin);
  await writeFile(path.join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> '${systemctlLog}'\n[ "$1" = show ] && echo '${FAKE_MEMBERS.join(' ')}'\nexit 0\n`);
  await chmod(path.join(bin, 'systemctl'), 0o755);
  const dropIn = path.join(dir, 'greengrass', 'config.d', 'zz-fleetprovisioning.yaml');
  const configFile = await writeConfig(dir, {
    iotDataEndpoint: t.emulator.endpoint,
    port: t.emulator.port,
    templateName: t.templateName,
    templateParams: { DeviceId: '${deviceId}' },
    claimCertPath: t.claim.certPath,
    claimKeyPath: t.claim.keyPath,
    rootCaPath: t.claim.rootCaPath,
    awsRegion: 'us-east-1',
    iotCredEndpoint: 'creds.localhost',
    iotRoleAlias: 'fp-token-exchange',
    retry: { initialDelayMs: 100, maxDelayMs: 1_000, deadlineMs: 20_000, attemptTimeoutMs: 5_000 },
    ...config,
    // Merged, so a test can change one Greengrass key and keep the drop-in inside the device.
    greengrass: { enabled: true, configDropIn: dropIn, ...(config.greengrass as object | undefined) },
  });
  const env = { FP_AGENT_SYSROOT: sysroot, PATH: `${bin}:${process.env.PATH}` };
  const args = (extra: string[]) => (extra.includes('--config') ? extra : [...extra, '--config', configFile]);
  return {
    dir,
    out: path.join(dir, 'out'),
    configFile,
    dropIn,
    systemctlLog,
    env,
    run: (extra = ['provision'], more = {}) => agent(args(extra), { ...env, ...more }),
    spawn: (extra = ['provision'], more = {}) =>
      execa(AGENT, args(extra), { reject: false, env: { NO_COLOR: '1', ...NO_PROXY_ENV, ...env, ...more } }),
    systemctlCalls: async () => (await readFile(systemctlLog, 'utf8').catch(() => '')).split('\n').filter(Boolean),
    restarts: async () => (await readFile(systemctlLog, 'utf8').catch(() => '')).split('\n').filter((line) => line.includes('restart')),
  };
}

/** Resolves when the child's stderr contains `text` (no sleeps: driven by the output itself). */
export function waitForStderr(child: ResultPromise, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      if (seen.includes(text)) {
        child.stderr!.off('data', onData);
        resolve();
      }
    };
    child.stderr!.on('data', onData);
    child.then(
      (r) => reject(new Error(`agent exited (${r.exitCode}) before printing ${JSON.stringify(text)}:\n${seen}`)),
      reject,
    );
  });
}

/**
 * Fails if output holds key material, a certificate or something shaped like an ownership token
 * (AWS's are long base64; certificate ids are hex, so a long base64 run with non-hex is suspect).
 */
export function expectNoSecrets(output: string): void {
  if (/-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)|ownershiptoken/i.test(output)) throw new Error(`secret-looking text in output:\n${output}`);
  const token = /[A-Za-z0-9+/]{40,}={0,2}/g;
  for (const match of output.matchAll(token)) {
    if (/[g-zG-Z+/]/.test(match[0])) throw new Error(`token-like text in output: ${match[0]}`);
  }
}
