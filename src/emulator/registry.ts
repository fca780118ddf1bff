// The emulator's registry: certificates, policies, templates, things and thing groups, kept in
// memory and written as one JSON file (atomically) after every change so it survives a restart.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CertificateStatus, ProvisioningTemplateInput } from './control-plane.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';

export interface CertificateRecord {
  certificateId: string;
  certificatePem: string;
  status: CertificateStatus;
  creationDate: string;
  notAfter: string;
  claimCertificateId?: string;
  policies: string[];
  /** Pending fleet-provisioning registration: the SHA-256 of the ownership token, never the token. */
  ownership?: { tokenSha256: string; expiresAt: number };
}

export interface ThingRecord {
  thingName: string;
  attributes: Record<string, string>;
  thingGroups: string[];
  thingTypeName?: string;
  /** Certificate ids attached to the thing. */
  principals: string[];
}

export interface RegistryState {
  version: 1;
  certificates: Record<string, CertificateRecord>;
  policies: Record<string, { policyName: string; policyDocument: string }>;
  templates: Record<string, ProvisioningTemplateInput>;
  things: Record<string, ThingRecord>;
  thingGroups: Record<string, { thingGroupName: string }>;
}

const empty = (): RegistryState => ({ version: 1, certificates: {}, policies: {}, templates: {}, things: {}, thingGroups: {} });

export class Registry {
  #writing: Promise<void> = Promise.resolve();
  #queued: Promise<void> | undefined;

  private constructor(
    readonly file: string,
    readonly state: RegistryState,
  ) {}

  static async open(dir: string): Promise<Registry> {
    const file = path.join(dir, 'registry.json');
    let state = empty();
    try {
      state = { ...empty(), ...(JSON.parse(await readFile(file, 'utf8')) as Partial<RegistryState>) } as RegistryState;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: cannot read the emulator registry: ${(error as Error).message}`);
    }
    return new Registry(file, state);
  }

  /**
   * Persists the current state; resolves once a write that includes every change made before the
   * call is on disk. Calls made while a write runs share the one write queued after it.
   */
  save(): Promise<void> {
    if (this.#queued) return this.#queued;
    const next = this.#writing.then(() => {
      this.#queued = undefined;
      return writeFileAtomic(this.file, `${JSON.stringify(this.state, null, 2)}\n`, 0o600);
    });
    this.#queued = next;
    this.#writing = next.catch(() => undefined);
    return next;
  }

  /** Thing names whose principals include the certificate. */
  thingsOf(certificateId: string): string[] {
    return Object.values(this.state.things)
      .filter((t) => t.principals.includes(certificateId))
      .map((t) => t.thingName);
  }
}
