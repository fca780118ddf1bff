// The device key pair: made on the device (EC P-256 by default, or RSA-2048), or an existing key
// (and CSR) for secure elements. Private keys only ever go to files created with their final owner and mode.
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { AgentConfig } from '../shared/config.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import type { FileAccess } from './file-access.ts';
import { createCsr, csrPublicKey } from './csr.ts';
import { PermanentError } from './errors.ts';
import { log } from './log.ts';

const generate = promisify(generateKeyPair);

export async function generatePrivateKey(algorithm: AgentConfig['key']['algorithm']): Promise<KeyObject> {
  const { privateKey } =
    algorithm === 'rsa-2048'
      ? await generate('rsa', { modulusLength: 2048 })
      : await generate('ec', { namedCurve: 'prime256v1' });
  return privateKey;
}

export const privateKeyPem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;

/** Writes a private key PEM with its final owner and mode (0600, or 0640 for Greengrass) from the first byte. */
export async function writePrivateKey(file: string, pem: string, access: FileAccess): Promise<void> {
  await writeFileAtomic(file, pem, access);
}

/**
 * Refuses a key file that others may read: it is a secret, and a wrong mode means a wrong setup.
 * `reader`: a group that may read it too (the Greengrass group, for a configured device key).
 */
export async function assertPrivateKeyFile(file: string, what: string, reader?: { gid: number; name: string }): Promise<void> {
  let info: { mode: number; gid: number };
  try {
    info = await stat(file);
  } catch {
    throw new PermanentError(`${what} ${file} does not exist`);
  }
  const mode = info.mode & 0o777;
  const groupMayRead = reader !== undefined && info.gid === reader.gid && (mode & 0o037) === 0;
  if ((mode & 0o077) !== 0 && !groupMayRead) {
    const expected = reader === undefined ? '0600 or stricter' : `0600 or stricter, or 0640 with group ${reader.name}`;
    throw new PermanentError(`${what} ${file} has mode 0${mode.toString(8)}; expected ${expected}`);
  }
}

export async function readFileOrFail(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new PermanentError(`cannot read ${what} ${file} (${code})`);
  }
}

export interface DeviceKeyMaterial {
  /** PEM of the private key, for the connection that verifies the new certificate. */
  privateKeyPem: string;
  csrPem: string;
}

/** A configured key (and optionally CSR), checked for mode and for matching each other. */
export async function loadConfiguredKey(config: AgentConfig, deviceId: string, access: FileAccess): Promise<DeviceKeyMaterial> {
  const keyPath = config.key.devicePrivateKeyPath!;
  const reader = config.greengrass.enabled ? { gid: access.owner.gid, name: config.greengrass.group } : undefined;
  await assertPrivateKeyFile(keyPath, 'device key', reader);
  if (reader) {
    const info = await stat(keyPath);
    if (info.gid !== reader.gid || (info.mode & 0o040) === 0) {
      log(`warning: group ${config.greengrass.group} cannot read the device key ${keyPath}; Greengrass lite needs it (root:${config.greengrass.group} 0640)`);
    }
  }
  const pem = await readFileOrFail(keyPath, 'device key');
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new PermanentError(`device key ${keyPath} is not a PEM private key`);
  }
  if (!config.key.csrPath) return { privateKeyPem: pem, csrPem: createCsr(key, deviceId) };
  const csrPem = await readFileOrFail(config.key.csrPath, 'CSR');
  let matches: boolean;
  try {
    const inCsr = csrPublicKey(csrPem).export({ type: 'spki', format: 'der' });
    matches = inCsr.equals(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  } catch {
    throw new PermanentError(`${config.key.csrPath} is not a PEM certificate signing request`);
  }
  if (!matches) throw new PermanentError(`CSR ${config.key.csrPath} was not made for device key ${keyPath}`);
  return { privateKeyPem: pem, csrPem };
}
