// state.json: the one commit point of provisioning. It names the identity's files and is written
// after them, atomically; without it (or with a state.json whose files are gone) the device counts
// as not provisioned. `provision --force` writes the new identity beside the old one and switches
// by rewriting state.json; identity-files.ts removes what neither state.json nor the drop-in names.
import path from 'node:path';
import type { AgentConfig } from '../shared/config.ts';
import { RESULT_FILES } from '../shared/device-paths.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { pathExists, readText } from '../shared/file-calls.ts';
import type { FileAccess } from './file-access.ts';
import { parseHandleUri, persistentHandles } from './tpm/key-store.ts';
import { tpmAccess } from './tpm/tools.ts';

export interface IdentityFiles {
  certificatePath: string;
  privateKeyPath: string;
  rootCaPath: string;
}

export interface ProvisioningState extends IdentityFiles {
  version: 1;
  thingName: string;
  certificateId: string;
  deviceId: string;
  templateName: string;
  endpoint: string;
  /** ISO 8601 expiry of the device certificate. */
  notAfter: string;
  provisionedAt: string;
  agentVersion: string;
  deviceConfiguration: Record<string, string>;
}

export const stateFile = (config: AgentConfig): string => path.join(config.outputDir, RESULT_FILES.state);

export const identityPaths = (files: IdentityFiles): string[] => [files.certificatePath, files.privateKeyPath, files.rootCaPath];

/**
 * A key file exists, or a TPM key (`handle:0x...`) is persistent in the TPM. A TPM that does not
 * answer throws (a `tpm` fault): taking it for "no key" would make a provisioned device look new.
 */
async function keyExists(config: AgentConfig, keyPath: string): Promise<boolean> {
  const handle = parseHandleUri(keyPath);
  if (handle === undefined) return pathExists(keyPath);
  return (await persistentHandles(tpmAccess(config))).has(handle);
}

/** state.json as written, complete or not; undefined when missing or not ours. */
export async function readRawState(config: AgentConfig): Promise<Partial<ProvisioningState> | undefined> {
  try {
    const parsed = JSON.parse(await readText(stateFile(config))) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as Partial<ProvisioningState>) : undefined;
  } catch {
    return undefined;
  }
}

/** The committed state, or undefined when the device is not (completely) provisioned. */
export async function readState(config: AgentConfig): Promise<ProvisioningState | undefined> {
  const parsed = await readRawState(config);
  if (!parsed || parsed.version !== 1 || typeof parsed.thingName !== 'string' || typeof parsed.certificateId !== 'string') return undefined;
  const files = [parsed.certificatePath, parsed.privateKeyPath, parsed.rootCaPath];
  if (!files.every((f) => typeof f === 'string')) return undefined;
  const present = await Promise.all([pathExists(parsed.certificatePath!), keyExists(config, parsed.privateKeyPath!), pathExists(parsed.rootCaPath!)]);
  if (!present.every(Boolean)) return undefined;
  return parsed as ProvisioningState;
}

export async function writeState(config: AgentConfig, state: ProvisioningState, access: FileAccess): Promise<void> {
  await writeFileAtomic(stateFile(config), `${JSON.stringify(state, null, 2)}\n`, access);
}
