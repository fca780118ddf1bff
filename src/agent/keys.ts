// The device key pair: made on the device (EC P-256 by default, or RSA-2048), or an existing key
// (and CSR) for secure elements. Private keys only ever go to files created 0600.
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { AgentConfig } from '../shared/config.ts';
import { PRIVATE_KEY_MODE } from '../shared/device-paths.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { createCsr, csrPublicKey } from './csr.ts';
import { PermanentError } from './errors.ts';

const generate = promisify(generateKeyPair);

export async function generatePrivateKey(algorithm: AgentConfig['key']['algorithm']): Promise<KeyObject> {
  const { privateKey } =
    algorithm === 'rsa-2048'
      ? await generate('rsa', { modulusLength: 2048 })
      : await generate('ec', { namedCurve: 'prime256v1' });
  return privateKey;
}

export const privateKeyPem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;

/** Writes a private key PEM, 0600 from the first byte. */
export async function writePrivateKey(file: string, pem: string): Promise<void> {
  await writeFileAtomic(file, pem, PRIVATE_KEY_MODE);
}

/** Refuses a key file that others may read: it is a secret, and a wrong mode means a wrong setup. */
export async function assertPrivateKeyFile(file: string, what: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(file)).mode & 0o777;
  } catch {
    throw new PermanentError(`${what} ${file} does not exist`);
  }
  if ((mode & 0o077) !== 0) {
    throw new PermanentError(`${what} ${file} has mode 0${mode.toString(8)}; expected 0600 or stricter`);
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
export async function loadConfiguredKey(config: AgentConfig, deviceId: string): Promise<DeviceKeyMaterial> {
  const keyPath = config.key.devicePrivateKeyPath!;
  await assertPrivateKeyFile(keyPath, 'device key');
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
