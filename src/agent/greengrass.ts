// Hands the new identity to Greengrass nucleus lite: a config.d drop-in, then a restart of its
// target, because iotcored reads certificate, key and thing name only when it starts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import type { AgentConfig } from '../shared/config.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';

export interface GreengrassIdentity {
  thingName: string;
  certificateFilePath: string;
  privateKeyPath: string;
  rootCaPath: string;
}

/** The drop-in's document: `system` plus the NucleusLite keys we know (unset ones left out). */
export function greengrassDropIn(config: AgentConfig, identity: GreengrassIdentity): Record<string, unknown> {
  const nucleus: Record<string, string> = {};
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
    services: { 'aws.greengrass.NucleusLite': { configuration: nucleus } },
  };
}

export async function writeGreengrassDropIn(config: AgentConfig, identity: GreengrassIdentity): Promise<void> {
  const text = `# Written by fp-agent after fleet provisioning; rewritten on re-provisioning.\n${stringify(greengrassDropIn(config, identity))}`;
  await writeFileAtomic(config.greengrass.configDropIn, text, 0o644);
}

/**
 * `systemctl --no-block restart <target>`; resolves to an error message instead of throwing.
 * --no-block because our unit is ordered Before= the Greengrass services: a blocking restart
 * from inside it waits for itself until systemd's job timeout (seen at first boot under QEMU).
 */
export async function restartGreengrass(config: AgentConfig): Promise<string | undefined> {
  try {
    await promisify(execFile)('systemctl', ['--no-block', 'restart', config.greengrass.restartTarget], { timeout: 90_000 });
    return undefined;
  } catch (error) {
    const e = error as { code?: unknown; stderr?: string; message: string };
    return (e.stderr?.trim() || e.message).split('\n')[0];
  }
}
