// state.json: the one commit point of provisioning. It is written last, atomically; without it
// (or with a state.json whose files are gone) the device counts as not provisioned.
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../shared/config.ts';
import { RESULT_FILES } from '../shared/device-paths.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import type { FileAccess } from './file-access.ts';

export interface ProvisioningState {
  version: 1;
  thingName: string;
  certificateId: string;
  deviceId: string;
  templateName: string;
  endpoint: string;
  certificatePath: string;
  privateKeyPath: string;
  rootCaPath: string;
  /** ISO 8601 expiry of the device certificate. */
  notAfter: string;
  provisionedAt: string;
  agentVersion: string;
  deviceConfiguration: Record<string, string>;
}

export const stateFile = (config: AgentConfig): string => path.join(config.outputDir, RESULT_FILES.state);

export interface ResultPaths {
  certificatePath: string;
  privateKeyPath: string;
  rootCaPath: string;
  pendingKeyPath: string;
}

/** Where the results go; a configured device key (secure element) stays where it is. */
export function resultPaths(config: AgentConfig): ResultPaths {
  const out = (name: string) => path.join(config.outputDir, name);
  return {
    certificatePath: out(RESULT_FILES.cert),
    privateKeyPath: config.key.devicePrivateKeyPath ?? out(RESULT_FILES.key),
    rootCaPath: out(RESULT_FILES.rootCa),
    // A generated key waits here until the certificate for it is verified.
    pendingKeyPath: out(`${RESULT_FILES.key}.pending`),
  };
}

const exists = (file: string) => access(file).then(() => true, () => false);

/** The committed state, or undefined when the device is not (completely) provisioned. */
export async function readState(config: AgentConfig): Promise<ProvisioningState | undefined> {
  let parsed: Partial<ProvisioningState>;
  try {
    parsed = JSON.parse(await readFile(stateFile(config), 'utf8')) as Partial<ProvisioningState>;
  } catch {
    return undefined;
  }
  if (parsed.version !== 1 || typeof parsed.thingName !== 'string' || typeof parsed.certificateId !== 'string') return undefined;
  const files = [parsed.certificatePath, parsed.privateKeyPath, parsed.rootCaPath];
  if (!files.every((f) => typeof f === 'string')) return undefined;
  if (!(await Promise.all(files.map((f) => exists(f!)))).every(Boolean)) return undefined;
  return parsed as ProvisioningState;
}

export async function writeState(config: AgentConfig, state: ProvisioningState, access: FileAccess): Promise<void> {
  await writeFileAtomic(stateFile(config), `${JSON.stringify(state, null, 2)}\n`, access);
}
