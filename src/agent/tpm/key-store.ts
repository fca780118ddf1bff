// The device key in a TPM 2.0 (key.store: tpm). The key is made inside the TPM as a child of a
// transient primary key of the owner hierarchy and made persistent at a handle, the way Greengrass
// lite's docs/TPM_SUPPORT.md ("Generate Persistent TPM Keys") does it by hand: tpm2_createprimary,
// tpm2_create, tpm2_load, tpm2_evictcontrol. It never exists outside the TPM: the files made on
// the way (contexts, the TPM-wrapped private part) are useless without this TPM and are removed.
// Greengrass lite and OpenSSL name it `handle:0x81000002` (the tpm2 provider's store URI).
//
// Two handles are the agent's: key.tpmHandle and the next one. A `provision --force` makes the new
// key at the handle the committed identity does not use; state.json (the one commit point) then
// names it and the old key is evicted after the commit, so the working identity stays usable until
// the new one is committed (issue 13's rule, as commit.ts keeps it for files).
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AgentConfig, KeyAlgorithm } from '../../shared/config.ts';
import { csrPublicKey } from '../csr.ts';
import { Fault } from '../errors.ts';
import { log } from '../log.ts';
import { runTpmTool, type TpmAccess } from './tools.ts';

const HANDLE_URI = /^handle:(0x[0-9a-fA-F]{8})$/;

export const hex = (handle: number): string => `0x${handle.toString(16).padStart(8, '0')}`;

/** How OpenSSL's tpm2 provider and Greengrass lite name a persistent key. */
export const handleUri = (handle: number): string => `handle:${hex(handle)}`;

/** The handle a `handle:0x...` key path names, or undefined for a file path. */
export function parseHandleUri(keyPath: string): number | undefined {
  const match = HANDLE_URI.exec(keyPath);
  return match ? Number(match[1]) : undefined;
}

export const isHandleUri = (keyPath: string): boolean => HANDLE_URI.test(keyPath);

/** The two handles the agent may use: key.tpmHandle, and the next one for a pending key. */
export const agentHandles = (config: AgentConfig): [number, number] => [config.key.tpmHandle, config.key.tpmHandle + 1];

/** The persistent handles in use in the TPM (`tpm2_getcap handles-persistent`: "- 0x81000002" lines). */
export async function persistentHandles(access: TpmAccess): Promise<Set<number>> {
  const out = await runTpmTool(access, 'tpm2_getcap', ['handles-persistent']);
  return new Set([...out.matchAll(/0x[0-9a-fA-F]{8}/g)].map((m) => Number(m[0])));
}

async function withScratchDir<T>(step: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fp-agent-tpm-'));
  try {
    return await step(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** tpm2-tools key algorithms: a signing key with a null scheme, so OpenSSL may pick ECDSA, RSA-PSS or PKCS#1. */
const KEY_ALGORITHM: Record<KeyAlgorithm, string> = { 'ec-p256': 'ecc256', 'rsa-2048': 'rsa2048' };
const KEY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign';

/**
 * Makes a new signing key in the TPM and persists it at `handle` (which must be free). Transient
 * objects are flushed after every step: without a resource manager (/dev/tpm0, a simulator) they
 * would stay loaded and fill the TPM's few object slots.
 */
export async function createKey(access: TpmAccess, handle: number, algorithm: KeyAlgorithm): Promise<void> {
  const flush = () => runTpmTool(access, 'tpm2_flushcontext', ['-t']);
  await withScratchDir(async (dir) => {
    const file = (name: string) => path.join(dir, name);
    await runTpmTool(access, 'tpm2_createprimary', ['-Q', '-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb', '-c', file('primary.ctx')]);
    await flush();
    await runTpmTool(access, 'tpm2_create', [
      '-Q', '-C', file('primary.ctx'), '-g', 'sha256', '-G', KEY_ALGORITHM[algorithm], '-a', KEY_ATTRIBUTES, '-u', file('key.pub'), '-r', file('key.priv'),
    ]);
    await flush();
    await runTpmTool(access, 'tpm2_load', ['-Q', '-C', file('primary.ctx'), '-u', file('key.pub'), '-r', file('key.priv'), '-c', file('key.ctx')]);
    await flush();
    await runTpmTool(access, 'tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', file('key.ctx'), hex(handle)]);
    await flush();
  });
}

/** Removes the persistent key at `handle` from the TPM. */
/**
 * Evicts the key at `handle`, only when it has exactly the attributes of the keys fp-agent makes:
 * eviction cannot be undone, and the agent's second handle may hold someone else's object (a
 * storage root key is often persisted at 0x81000001, next to a key.tpmHandle of 0x81000000).
 */
export async function evictKey(access: TpmAccess, handle: number): Promise<void> {
  const attributes = /^attributes:\s*\n\s+value:\s*(\S+)/m.exec(await runTpmTool(access, 'tpm2_readpublic', ['-c', hex(handle)]))?.[1];
  const ours = new Set(KEY_ATTRIBUTES.split('|'));
  const theirs = new Set((attributes ?? '').split('|'));
  if (theirs.size !== ours.size || ![...ours].every((a) => theirs.has(a))) {
    throw new Fault(
      'tpm',
      `the persistent object at ${hex(handle)} is not a key fp-agent made (attributes ${attributes ?? 'unknown'}); not evicted: key.tpmHandle and the handle after it must be free for fp-agent`,
    );
  }
  await runTpmTool(access, 'tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', hex(handle)]);
}

/** The public key of the persistent key at `handle`. */
export async function readPublicKey(access: TpmAccess, handle: number): Promise<KeyObject> {
  return withScratchDir(async (dir) => {
    const file = path.join(dir, 'public.pem');
    await runTpmTool(access, 'tpm2_readpublic', ['-Q', '-c', hex(handle), '-f', 'pem', '-o', file]);
    return createPublicKey(await readFile(file, 'utf8'));
  });
}

/** `-subj` escapes: a backslash before the characters that separate its parts. */
const subjectValue = (value: string): string => value.replace(/[\\/+=,]/g, (c) => `\\${c}`);

/**
 * A PEM CSR for the key at `handle`, subject CN=commonName, signed inside the TPM by OpenSSL's
 * tpm2 provider (`openssl req -provider tpm2 -key handle:...`, as docs/TPM_SUPPORT.md makes it).
 * `-config /dev/null`: no extensions from the system's openssl.cnf; AWS IoT takes only the public key.
 */
export async function tpmCsr(access: TpmAccess, handle: number, commonName: string): Promise<string> {
  const csrPem = await runTpmTool(access, 'openssl', [
    'req', '-new', '-provider', 'tpm2', '-provider', 'default', '-config', '/dev/null',
    '-key', handleUri(handle), '-subj', `/CN=${subjectValue(commonName)}`, '-outform', 'PEM',
  ]);
  const expected = (await readPublicKey(access, handle)).export({ type: 'spki', format: 'der' });
  let signedFor: Buffer | undefined;
  try {
    signedFor = csrPublicKey(csrPem).export({ type: 'spki', format: 'der' });
  } catch {
    signedFor = undefined;
  }
  if (!signedFor?.equals(expected)) throw new Fault('tpm', `openssl req: did not make a CSR for the key at ${hex(handle)}`);
  return csrPem;
}

export interface TpmDeviceKey {
  handle: number;
  csrPem: string;
}

/**
 * The key for this run and its CSR. Not provisioned: the key at key.tpmHandle, reused when one is
 * there (made at manufacturing, or by a run that did not commit), else made. `--force` on a
 * provisioned device: a new key at the agent's handle the committed identity does not use; what is
 * there is no identity's (commit.ts evicts the old key only after the commit), so it is replaced.
 */
export async function prepareTpmKey(
  config: AgentConfig,
  access: TpmAccess,
  deviceId: string,
  committedKeyPath: string | undefined,
): Promise<TpmDeviceKey> {
  const committed = committedKeyPath === undefined ? undefined : parseHandleUri(committedKeyPath);
  const present = await persistentHandles(access);
  let handle: number;
  if (committedKeyPath === undefined) {
    handle = config.key.tpmHandle;
    if (present.has(handle)) log(`using the existing TPM key at ${handleUri(handle)} (key.tpmHandle)`);
  } else {
    handle = agentHandles(config).find((h) => h !== committed)!;
    if (present.has(handle)) {
      log(`--force: evicting the TPM key at ${handleUri(handle)}, which no committed identity uses`);
      await evictKey(access, handle);
      present.delete(handle);
    }
  }
  if (!present.has(handle)) {
    await createKey(access, handle, config.key.algorithm);
    log(`made a ${config.key.algorithm} key in the TPM at ${handleUri(handle)}`);
  }
  const csrPem = await tpmCsr(access, handle, deviceId);
  log('made a CSR signed by the TPM');
  return { handle, csrPem };
}

/**
 * After a commit, and at every run: evicts the agent's other handle when the committed identity
 * does not use it (the key replaced by `--force`, or a pending key of a run that did not commit).
 */
export async function releaseUnusedTpmKeys(config: AgentConfig, access: TpmAccess, committedKeyPath: string): Promise<void> {
  const committed = parseHandleUri(committedKeyPath);
  if (committed === undefined || !agentHandles(config).includes(committed)) return;
  const other = agentHandles(config).find((h) => h !== committed)!;
  if (!(await persistentHandles(access)).has(other)) return;
  await evictKey(access, other);
  log(`evicted the TPM key at ${handleUri(other)}, which no identity uses`);
}
