// The project directory every command works on:
//   meta-fleetprovisioning/            the layer (fp-yocto render)
//   claim/{claim.cert.pem, claim.key.pem (0600), root-ca.pem}
//   conf/fleetprovisioning.conf.sample FLEETPROV_* for local.conf
//   .fp-yocto/state.json               what init created, so destroy removes exactly that
//   .fp-yocto/emulator/                the local emulator's state (--local)
//   .gitignore                         keeps claim/ and .fp-yocto/ out of git
import { mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { CLAIM_FILES, PRIVATE_KEY_MODE } from '../shared/device-paths.ts';
import { UserError } from '../shared/errors.ts';
import type { StackOptions } from './stack.ts';

export interface ProjectPaths {
  dir: string;
  layer: string;
  claimDir: string;
  claimCert: string;
  claimKey: string;
  rootCa: string;
  confSample: string;
  stateDir: string;
  stateFile: string;
  emulatorDir: string;
  gitignore: string;
}

export function projectPaths(dir: string): ProjectPaths {
  const root = path.resolve(dir);
  const claimDir = path.join(root, 'claim');
  const stateDir = path.join(root, '.fp-yocto');
  return {
    dir: root,
    layer: path.join(root, 'meta-fleetprovisioning'),
    claimDir,
    claimCert: path.join(claimDir, CLAIM_FILES.cert),
    claimKey: path.join(claimDir, CLAIM_FILES.key),
    rootCa: path.join(claimDir, CLAIM_FILES.rootCa),
    confSample: path.join(root, 'conf', 'fleetprovisioning.conf.sample'),
    stateDir,
    stateFile: path.join(stateDir, 'state.json'),
    emulatorDir: path.join(stateDir, 'emulator'),
    gitignore: path.join(root, '.gitignore'),
  };
}

export interface CertificateRecord {
  certificateId: string;
  certificateArn: string;
  createdAt: string;
  /** ISO time after which rotate-claim or status deactivates it; set when it was rotated out. */
  deactivateAfter?: string;
  /** The EventBridge Scheduler schedule that deactivates it at deactivateAfter (AWS). */
  deactivationSchedule?: string;
  deactivatedAt?: string;
}

export interface ResourceNames {
  templateName: string;
  thingGroupName: string;
  claimPolicy: string;
  devicePolicy: string;
  roleAlias: string;
  /** AWS: where rotate-claim schedules the deactivation of a retired claim certificate, and with which role. */
  claimRetirementScheduleGroup?: string;
  claimRetirementRoleArn?: string;
  /** The device table: allow-list and approved certificates (`fp-yocto devices`). */
  deviceTable?: string;
}

export interface ProjectState {
  version: 1;
  provider: 'aws' | 'local';
  stackName: string;
  region: string;
  profile?: string;
  /** --local: the emulator's MQTT port. */
  port?: number;
  /** What the stack was built from, so a re-run of init rebuilds the same stack. */
  settings: StackOptions;
  names: ResourceNames;
  endpoints: { data: string; credentials: string; port: number };
  /** Every claim certificate init or rotate-claim created; the last one is current. */
  certificates: CertificateRecord[];
  createdAt: string;
  updatedAt: string;
}

export async function readState(paths: ProjectPaths): Promise<ProjectState | undefined> {
  let text: string;
  try {
    text = await readFile(paths.stateFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const state = JSON.parse(text) as ProjectState;
    if (state.version !== 1 || !Array.isArray(state.certificates)) throw new Error('unknown layout');
    return state;
  } catch {
    throw new UserError(`${paths.stateFile}: not a state file written by fp-yocto (fix or remove it)`);
  }
}

/** Like readState, for commands that need init to have run. */
export async function requireState(paths: ProjectPaths): Promise<ProjectState> {
  const state = await readState(paths);
  if (!state) throw new UserError(`${paths.dir}: no fp-yocto project here (run \`fp-yocto init\` first, or pass --dir)`);
  return state;
}

export async function writeState(paths: ProjectPaths, state: ProjectState): Promise<void> {
  await writeFileAtomic(paths.stateFile, `${JSON.stringify({ ...state, updatedAt: new Date().toISOString() }, null, 2)}\n`);
}

export async function writeClaimFiles(paths: ProjectPaths, files: { certPem: string; keyPem: string; rootCaPem: string }): Promise<void> {
  await mkdir(paths.claimDir, { recursive: true, mode: 0o700 });
  // Key first, certificate last: a cert on disk always has its key beside it.
  await writeFileAtomic(paths.claimKey, files.keyPem, PRIVATE_KEY_MODE);
  await writeFileAtomic(paths.rootCa, files.rootCaPem);
  await writeFileAtomic(paths.claimCert, files.certPem);
}

/** Removes the three files init wrote, and the claim dir only if nothing else is in it. */
export async function removeClaimFiles(paths: ProjectPaths): Promise<void> {
  await Promise.all([paths.claimCert, paths.claimKey, paths.rootCa].map((f) => rm(f, { force: true })));
  await rmdir(paths.claimDir).catch(() => undefined);
}

const IGNORED = ['claim/', '.fp-yocto/'];

/** Adds claim/ and .fp-yocto/ to .gitignore, keeping whatever else it says. */
export async function ensureGitignore(paths: ProjectPaths): Promise<boolean> {
  const current = await readFile(paths.gitignore, 'utf8').catch(() => '');
  const lines = current.split('\n').map((l) => l.trim());
  const missing = IGNORED.filter((entry) => !lines.includes(entry) && !lines.includes(`/${entry}`));
  if (missing.length === 0) return false;
  const prefix = current === '' || current.endsWith('\n') ? current : `${current}\n`;
  const comment = '# fp-yocto: the claim private key and local state never go into git';
  await writeFileAtomic(paths.gitignore, `${prefix}${comment}\n${missing.join('\n')}\n`);
  return true;
}
