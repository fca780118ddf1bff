// Where an identity's files go, and which ones may go away. The committed identity (named by
// state.json) and the one the Greengrass drop-in names are never touched; a new identity takes
// names neither uses, so `provision --force` never overwrites a working identity before the
// commit; anything else of ours in the output dir is left over from a crash and is removed.
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AgentConfig } from '../shared/config.ts';
import { identityFileNames, RESULT_FILES } from '../shared/device-paths.ts';
import { removeDurable } from '../shared/atomic-file.ts';
import { listDir } from '../shared/file-calls.ts';
import { readDropInFiles } from './greengrass.ts';
import { identityPaths, readRawState, type IdentityFiles } from './state.ts';

/** A generated key waits here until the certificate for it is verified and committed. */
export const pendingKeyPath = (config: AgentConfig): string => path.join(config.outputDir, `${RESULT_FILES.key}.pending`);

/** Names the agent writes into the output dir (identityFileNames, plain or with a generation, and the pending key). */
const OURS = /^(?:device(?:\.[0-9a-f]{12})?\.(?:cert|key)\.pem|root-ca(?:\.[0-9a-f]{12})?\.pem|device\.key\.pem\.pending)$/;

/** Every identity file that state.json (committed or not) or the drop-in names. */
export async function filesInUse(config: AgentConfig): Promise<Set<string>> {
  const inUse = new Set<string>();
  const state = await readRawState(config);
  for (const f of [state?.certificatePath, state?.privateKeyPath, state?.rootCaPath]) if (typeof f === 'string') inUse.add(f);
  if (config.greengrass.enabled) for (const f of await readDropInFiles(config)) inUse.add(f);
  return inUse;
}

/**
 * Paths for a new identity: the plain names when nothing uses them, else names carrying the first
 * 12 hex digits of the certificate id (random ones if the server's id is not hex).
 */
export function chooseIdentityFiles(config: AgentConfig, certificateId: string, inUse: Set<string>, keyUri?: string): IdentityFiles {
  // A key that is not ours to name: a configured file, or a TPM handle (`handle:0x...`).
  const fixedKey = keyUri ?? config.key.devicePrivateKeyPath;
  const at = (names: ReturnType<typeof identityFileNames>): IdentityFiles => ({
    certificatePath: path.join(config.outputDir, names.cert),
    privateKeyPath: fixedKey ?? path.join(config.outputDir, names.key),
    rootCaPath: path.join(config.outputDir, names.rootCa),
  });
  const plain = at(identityFileNames());
  if (!identityPaths(plain).some((f) => inUse.has(f) && f !== fixedKey)) return plain;
  const id = certificateId.slice(0, 12).toLowerCase();
  const generation = /^[0-9a-f]{12}$/.test(id) ? id : randomBytes(6).toString('hex');
  return at(identityFileNames(generation));
}

/** Removes our files in the output dir that nothing names: a crash's leftovers, or a replaced identity. */
export async function removeUnusedIdentityFiles(config: AgentConfig, inUse: Set<string>): Promise<string[]> {
  const keep = new Set([...inUse, config.key.devicePrivateKeyPath, config.key.csrPath]);
  const names = await listDir(config.outputDir).catch(() => [] as string[]);
  const unused = names.map((n) => path.join(config.outputDir, n)).filter((f) => OURS.test(path.basename(f)) && !keep.has(f));
  for (const file of unused) await removeDurable(file);
  return unused;
}
