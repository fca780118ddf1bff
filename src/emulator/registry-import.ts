// Moves a registry.json (the emulator's store before SQLite) into the database on start, then
// renames it aside to registry.json.migrated. Importing is idempotent (upserts), so a crash
// between the commit and the rename only repeats the import.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { renameDurable } from '../shared/atomic-file.ts';
import type { ProvisioningTemplateInput } from './control-plane.ts';
import type { CertificateRecord, PolicyRecord, Registry } from './registry.ts';

export const LEGACY_REGISTRY_FILE = 'registry.json';

/** The shape registry.json had (version 1). */
interface LegacyState {
  certificates?: Record<string, CertificateRecord & { policies?: string[] }>;
  policies?: Record<string, PolicyRecord>;
  templates?: Record<string, ProvisioningTemplateInput>;
  things?: Record<string, { thingName: string; attributes?: Record<string, string>; thingGroups?: string[]; thingTypeName?: string; principals?: string[] }>;
  thingGroups?: Record<string, { thingGroupName: string }>;
}

/** Imports `<dir>/registry.json` if there is one; returns what it moved, or undefined. */
export async function importLegacyRegistry(registry: Registry, dir: string): Promise<{ things: number; certificates: number } | undefined> {
  const file = path.join(dir, LEGACY_REGISTRY_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file}: cannot read the old emulator registry: ${(error as Error).message}`);
  }
  let state: LegacyState;
  try {
    state = JSON.parse(text) as LegacyState;
  } catch (error) {
    throw new Error(`${file}: the old emulator registry is not valid JSON (${(error as Error).message}); move it away to start with an empty registry`);
  }
  const values = <T>(record: Record<string, T> | undefined): T[] => Object.values(record ?? {});
  const moved = await registry.write((tx) => {
    for (const g of values(state.thingGroups)) tx.putThingGroup(g.thingGroupName);
    for (const p of values(state.policies)) tx.putPolicy(p);
    for (const t of values(state.templates)) tx.putTemplate(t);
    const certificates = values(state.certificates);
    for (const { policies = [], ...c } of certificates) {
      tx.putCertificate(c);
      for (const name of policies) tx.attachPolicy(c.certificateId, name);
    }
    const things = values(state.things);
    for (const t of things)
      tx.putThing({
        thingName: t.thingName,
        attributes: t.attributes ?? {},
        // Keep only references that resolve: the old file did not enforce them.
        thingGroups: (t.thingGroups ?? []).filter((g) => tx.hasThingGroup(g)),
        ...(t.thingTypeName ? { thingTypeName: t.thingTypeName } : {}),
        principals: (t.principals ?? []).filter((id) => tx.getCertificate(id)),
      });
    return { things: things.length, certificates: certificates.length };
  });
  await renameDurable(file, `${file}.migrated`);
  return moved;
}
