// Hands the new identity to Greengrass nucleus lite: a config.d drop-in, then a restart of its
// target, because iotcored reads certificate, key and thing name only when it starts.
//
// ggconfigd loads /etc/greengrass/config.yaml, then every regular file of config.d, hidden ones
// included, in readdir order, at every start (aws-greengrass-lite modules/ggconfigd/src/
// config_load.c, ggconfig_load_dir). So nothing but the finished drop-in may ever be in config.d:
// its temp file is staged in config.d's parent, which ggconfigd does not scan (it reads only the
// one file config.yaml there), and renamed into place.
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import type { AgentConfig } from '../shared/config.ts';
import { parseSimpleYaml, stringifySimpleYaml } from '../shared/simple-yaml.ts';
import { makeDirs, PROBE_NAME, removeStaleTemps, writeFileAtomic, type Owner } from '../shared/atomic-file.ts';
import { pauseAt } from './test-hooks.ts';
import { restartClient } from './handoff/restart.ts';
import { carriedProxy, greengrassNetworkProxy } from './proxy/greengrass.ts';

export interface GreengrassIdentity {
  thingName: string;
  certificateFilePath: string;
  privateKeyPath: string;
  rootCaPath: string;
}

/**
 * The drop-in's document: `system` plus the NucleusLite keys we know (unset ones left out).
 * `networkProxy` defaults to the proxy this run goes by (config, then environment); null: none.
 */
export function greengrassDropIn(
  config: AgentConfig,
  identity: GreengrassIdentity,
  networkProxy: Record<string, unknown> | null = greengrassNetworkProxy(carriedProxy(config)) ?? null,
): Record<string, unknown> {
  const nucleus: Record<string, unknown> = {};
  if (config.awsRegion) nucleus.awsRegion = config.awsRegion;
  if (config.iotCredEndpoint) nucleus.iotCredEndpoint = config.iotCredEndpoint;
  nucleus.iotDataEndpoint = config.iotDataEndpoint;
  if (config.iotRoleAlias) nucleus.iotRoleAlias = config.iotRoleAlias;
  return {
    system: {
      thingName: identity.thingName,
      certificateFilePath: identity.certificateFilePath,
      privateKeyPath: identity.privateKeyPath,
      rootCaPath: identity.rootCaPath,
    },
    services: { 'aws.greengrass.NucleusLite': { configuration: networkProxy ? { ...nucleus, networkProxy } : nucleus } },
  };
}

/** Where the drop-in's temp file is made: the parent of config.d, on the same filesystem. */
export const dropInStageDir = (config: AgentConfig): string => path.dirname(path.dirname(config.greengrass.configDropIn));

/** Removes temp files of the drop-in a crash left behind: in the staging place, and in config.d (older agents). */
export async function removeStaleDropInTemps(config: AgentConfig): Promise<void> {
  const dropIn = config.greengrass.configDropIn;
  await removeStaleTemps(dropInStageDir(config), dropIn);
  // And a crash's leftover of preflight's write test there.
  await removeStaleTemps(dropInStageDir(config), PROBE_NAME);
  await removeStaleTemps(path.dirname(dropIn), dropIn);
}

/** The drop-in's text: deterministic, so a rerun can tell whether it says what state.json says. */
export function renderDropIn(config: AgentConfig, identity: GreengrassIdentity, networkProxy?: Record<string, unknown> | null): string {
  return `# Written by fp-agent after fleet provisioning; rewritten on re-provisioning.\n${stringifySimpleYaml(greengrassDropIn(config, identity, networkProxy))}`;
}

/**
 * The drop-in a later run expects. A proxy from the environment (https_proxy) is the hand-off's:
 * a later run may have another environment (`sudo fp-agent provision` drops https_proxy), and must
 * not take the proxy away from Greengrass, so the drop-in's own networkProxy is kept. A proxy in
 * the config is the config's, on every run.
 */
export function expectedDropIn(config: AgentConfig, identity: GreengrassIdentity, onDisk: string | undefined): string {
  if (config.proxy?.url || onDisk === undefined) return renderDropIn(config, identity);
  return renderDropIn(config, identity, dropInNetworkProxy(onDisk));
}

/** The networkProxy of a drop-in's text, or null. */
function dropInNetworkProxy(text: string): Record<string, unknown> | null {
  try {
    const doc = (parseSimpleYaml(text) ?? parse(text)) as { services?: Record<string, { configuration?: { networkProxy?: Record<string, unknown> } }> } | null;
    return doc?.services?.['aws.greengrass.NucleusLite']?.configuration?.networkProxy ?? null;
  } catch {
    return null;
  }
}

/** The drop-in as it is on disk, or undefined. */
export async function readDropIn(config: AgentConfig): Promise<string | undefined> {
  return readFile(config.greengrass.configDropIn, 'utf8').catch(() => undefined);
}

/** The files the drop-in on disk names (none when it is missing or unreadable). */
export async function readDropInFiles(config: AgentConfig): Promise<string[]> {
  const text = await readDropIn(config);
  if (text === undefined) return [];
  let system: Record<string, unknown> | undefined;
  try {
    // Ours is in the small subset; one edited by hand goes to the full parser.
    const doc = (parseSimpleYaml(text) ?? parse(text)) as { system?: Record<string, unknown> } | null;
    system = doc?.system;
  } catch {
    return [];
  }
  return [system?.certificateFilePath, system?.privateKeyPath, system?.rootCaPath].filter((f): f is string => typeof f === 'string');
}

/**
 * Writes the drop-in root-owned, 0644 (ggconfigd reads it as the Greengrass user); 0640 with
 * `owner` root:<greengrass group> when it holds a proxy password.
 */
export async function writeGreengrassDropIn(config: AgentConfig, identity: GreengrassIdentity, owner: Owner, mode = 0o644): Promise<void> {
  const dropIn = config.greengrass.configDropIn;
  await makeDirs(path.dirname(dropIn), 0o755);
  await writeFileAtomic(dropIn, renderDropIn(config, identity), {
    mode,
    owner,
    stageDir: dropInStageDir(config),
    beforeRename: () => pauseAt('greengrass-staged'),
  });
}

/** Restarts Greengrass lite's target (handoff/restart.ts): iotcored reads the identity only at start. */
export const restartGreengrass = (config: AgentConfig, onWarning: (line: string) => void): Promise<string | undefined> =>
  restartClient(config.greengrass.restartTarget, onWarning);
