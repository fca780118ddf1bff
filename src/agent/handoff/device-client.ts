// Hands the identity to the AWS IoT Device Client (awslabs/aws-iot-device-client): its JSON config
// gets endpoint, cert, key, root-ca and thing-name (the keys of its config-template.json and
// source/config/Config.cpp, PlainConfig::JSON_KEY_*), its own fleet-provisioning feature stays
// off ("fleet-provisioning": {"enabled": false}: provisioning is ours), every other key of an
// existing config is kept (jobs, tunneling, logging ... are the image's), and its unit restarts:
// it reads the config only at start.
//
// What it checks at start (docs/PERMISSIONS.md; source/SharedCrtResourceManager.cpp and
// Config.cpp, FileUtils::ValidateFilePermissions compares the mode exactly and wants the file
// owned by the user it runs as, root in meta-aws's unit): the private key 600 in a 700 directory,
// certificate and root CA 644 in a 700 directory (the standalone row of RESULT_ACCESS); the
// config 640 in a 745 directory (recommended: a warning otherwise).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../../shared/config.ts';
import { makeDirs, writeFileAtomic, type Owner } from '../../shared/atomic-file.ts';
import { Fault } from '../errors.ts';

export interface DeviceClientIdentity {
  thingName: string;
  certificatePath: string;
  privateKeyPath: string;
  rootCaPath: string;
}

/** Config.h Permissions: CONFIG_FILE 640, CONFIG_DIR 745. */
export const DEVICE_CLIENT_CONFIG_MODE = 0o640;
export const DEVICE_CLIENT_CONFIG_DIR_MODE = 0o745;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The config on disk as a JSON object; undefined when there is none. A file that is not one: exit 78 (before anything is minted). */
export async function readDeviceClientConfig(config: AgentConfig): Promise<Json | undefined> {
  const file = config.deviceClient.configFile;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new Fault('deviceClientConfig', `deviceClient.configFile ${file}: cannot be read (${code ?? 'error'})`);
  }
  if (text.trim() === '') return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Fault('deviceClientConfig', `deviceClient.configFile ${file}: is not JSON; expected the AWS IoT Device Client's JSON config (or no file)`);
  }
  if (!isObject(doc)) throw new Fault('deviceClientConfig', `deviceClient.configFile ${file}: expected a JSON object`);
  return doc;
}

/** The config with our identity in it; everything else as it was. */
export function deviceClientConfig(config: AgentConfig, identity: DeviceClientIdentity, existing: Json = {}): Json {
  const fleet = isObject(existing['fleet-provisioning']) ? existing['fleet-provisioning'] : {};
  return {
    ...existing,
    endpoint: config.iotDataEndpoint,
    cert: identity.certificatePath,
    key: identity.privateKeyPath,
    'root-ca': identity.rootCaPath,
    'thing-name': identity.thingName,
    // Provisioning is ours: the Device Client's own feature would provision again with the claim.
    'fleet-provisioning': { ...fleet, enabled: false },
  };
}

/** Whether the config on disk already names this identity with its fleet provisioning off. */
export async function deviceClientUpToDate(config: AgentConfig, identity: DeviceClientIdentity): Promise<boolean> {
  const existing = await readDeviceClientConfig(config).catch(() => undefined);
  if (!existing) return false;
  return JSON.stringify(deviceClientConfig(config, identity, existing)) === JSON.stringify(existing);
}

/** Writes the config (root-owned 0640, its directory 0745 if we make it), keeping what it held. */
export async function writeDeviceClientConfig(config: AgentConfig, identity: DeviceClientIdentity, owner: Owner): Promise<void> {
  const file = config.deviceClient.configFile;
  const doc = deviceClientConfig(config, identity, await readDeviceClientConfig(config));
  await makeDirs(path.dirname(file), DEVICE_CLIENT_CONFIG_DIR_MODE);
  await writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`, {
    mode: DEVICE_CLIENT_CONFIG_MODE,
    owner,
  });
}
