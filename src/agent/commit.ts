// The end of `fp-agent provision`: results written atomically, the Greengrass lite hand-over, and
// state.json last, the one commit point. Only then may the claim key go.
import type { X509Certificate } from 'node:crypto';
import type { AgentConfig } from '../shared/config.ts';
import type { RegisterThingResponse } from '../shared/protocol.ts';
import { removeDurable, renameDurable, writeFileAtomic } from '../shared/atomic-file.ts';
import type { AccessPlan } from './file-access.ts';
import { restartGreengrass, writeGreengrassDropIn } from './greengrass.ts';
import { log } from './log.ts';
import { resultPaths, writeState, type ProvisioningState } from './state.ts';
import { pauseAt } from './test-hooks.ts';

export interface Outcome {
  deviceId: string;
  certificateId: string;
  certificatePem: string;
  registered: RegisterThingResponse;
  cert: X509Certificate;
  caPem: string;
  forced: boolean;
}

export async function commit(config: AgentConfig, outcome: Outcome, plan: AccessPlan): Promise<void> {
  const paths = resultPaths(config);
  const { registered } = outcome;
  await writeFileAtomic(paths.certificatePath, outcome.certificatePem, plan.cert);
  // The pending key was created with the key's final owner and mode.
  if (!config.key.devicePrivateKeyPath) await renameDurable(paths.pendingKeyPath, paths.privateKeyPath);
  await writeFileAtomic(paths.rootCaPath, outcome.caPem, plan.rootCa);
  log(`wrote ${paths.certificatePath}, ${paths.privateKeyPath} and ${paths.rootCaPath}`);
  await pauseAt('results-written');

  if (config.greengrass.enabled) {
    await writeGreengrassDropIn(config, {
      thingName: registered.thingName,
      certificateFilePath: paths.certificatePath,
      privateKeyPath: paths.privateKeyPath,
      rootCaPath: paths.rootCaPath,
    }, plan.state.owner);
    log(`wrote the Greengrass lite drop-in ${config.greengrass.configDropIn}`);
    await pauseAt('greengrass-written');
    const failure = await restartGreengrass(config);
    // The identity is valid either way; Greengrass picks it up at its next start.
    if (failure) log(`warning: systemctl restart ${config.greengrass.restartTarget} failed: ${failure}`);
    else log(`restarted ${config.greengrass.restartTarget}`);
  }

  const state: ProvisioningState = {
    version: 1,
    thingName: registered.thingName,
    certificateId: outcome.certificateId,
    deviceId: outcome.deviceId,
    templateName: config.templateName,
    endpoint: `${config.iotDataEndpoint}:${config.port}`,
    certificatePath: paths.certificatePath,
    privateKeyPath: paths.privateKeyPath,
    rootCaPath: paths.rootCaPath,
    notAfter: new Date(outcome.cert.validTo).toISOString(),
    provisionedAt: new Date().toISOString(),
    agentVersion: process.env.FP_AGENT_VERSION ?? 'dev',
    deviceConfiguration: registered.deviceConfiguration ?? {},
  };
  await writeState(config, state, plan.state);
  log(`provisioned as thing ${registered.thingName} (certificate ${outcome.certificateId})${outcome.forced ? ' (forced)' : ''}`);
  await pauseAt('committed');
}

export async function removeClaimKey(config: AgentConfig): Promise<void> {
  if (!config.removeClaimKeyAfterSuccess) return;
  if (await removeDurable(config.claimKeyPath)) log(`removed the claim key ${config.claimKeyPath}`);
}
