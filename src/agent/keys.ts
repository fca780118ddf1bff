// The device key pair: made on the device (EC P-256 by default, or RSA-2048), or an existing key
// (and CSR) for secure elements. Private keys only ever go to files created with their final owner and mode.
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { AgentConfig } from '../shared/config.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import type { FileAccess } from './file-access.ts';
import { createCsr, csrPublicKey } from './csr.ts';
import { Fault } from './errors.ts';
import { readConfiguredFile, statRegularFile } from './local-files.ts';
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
export async function assertPrivateKeyFile(
  kind: 'claimFiles' | 'deviceKey',
  field: string,
  file: string,
  reader?: { gid: number; name: string },
): Promise<{ mode: number; gid: number }> {
  const info = await statRegularFile(kind, field, file);
  const mode = info.mode & 0o777;
  const groupMayRead = reader !== undefined && info.gid === reader.gid && (mode & 0o037) === 0;
  if ((mode & 0o077) !== 0 && !groupMayRead) {
    const expected = reader === undefined ? '0600 or stricter' : `0600 or stricter, or 0640 with group ${reader.name}`;
    throw new Fault(kind, `${field} ${file}: has mode 0${mode.toString(8)}; expected ${expected}`);
  }
  return { mode, gid: info.gid };
}

/** A PEM private key; `kind` and `field` name the fault. Encrypted keys are refused (nobody could type the passphrase). */
export function parsePrivateKey(kind: 'claimFiles' | 'deviceKey', field: string, file: string, pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (error) {
    const encrypted = /passphrase/i.test((error as Error).message);
    throw new Fault(kind, `${field} ${file}: ${encrypted ? 'is encrypted; expected an unencrypted PEM private key' : 'is not a PEM private key'}`);
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
  const keyField = 'key.devicePrivateKeyPath';
  const reader = config.greengrass.enabled ? { gid: access.owner.gid, name: config.greengrass.group } : undefined;
  const info = await assertPrivateKeyFile('deviceKey', keyField, keyPath, reader);
  if (reader && (info.gid !== reader.gid || (info.mode & 0o040) === 0)) {
    log(`warning: ${keyField} ${keyPath}: group ${config.greengrass.group} cannot read it; Greengrass lite needs root:${config.greengrass.group} 0640`);
  }
  const pem = await readConfiguredFile('deviceKey', keyField, keyPath);
  const key = parsePrivateKey('deviceKey', keyField, keyPath, pem);
  if (!config.key.csrPath) return { privateKeyPem: pem, csrPem: createCsr(key, deviceId) };
  const csrPath = config.key.csrPath;
  const csrPem = await readConfiguredFile('deviceKey', 'key.csrPath', csrPath);
  let matches: boolean;
  try {
    const inCsr = csrPublicKey(csrPem).export({ type: 'spki', format: 'der' });
    matches = inCsr.equals(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  } catch {
    throw new Fault('deviceKey', `key.csrPath ${csrPath}: is not a PEM certificate signing request`);
  }
  if (!matches) throw new Fault('deviceKey', `key.csrPath ${csrPath}: was not made for key.devicePrivateKeyPath ${keyPath}`);
  return { privateKeyPem: pem, csrPem };
}
