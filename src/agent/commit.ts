// The end of `fp-agent provision`, and the one switch between identities. The new identity's
// files are written under names nothing uses yet; the Greengrass drop-in is pointed at them and
// Greengrass restarted; then state.json, the one commit point, names them; only then are the
// files of the identity it replaced removed, and may the claim key go.
//
// Every crash point leaves a consistent pair: state.json names a complete identity (the old one
// until the commit), the drop-in names files that exist and belong together (old or new), and a
// rerun repairs the drop-in from state.json (settle) and removes what neither names.
import type { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AgentConfig } from '../shared/config.ts';
import type { RegisterThingResponse } from '../shared/protocol.ts';
import { ConfigError } from '../shared/errors.ts';
import { proxyAddress } from '../shared/proxy-url.ts';
import { removeDurable, renameDurable, writeFileAtomic } from '../shared/atomic-file.ts';
import { applyAccess, type AccessPlan } from './file-access.ts';
import { expectedDropIn, readDropIn, restartGreengrass, writeGreengrassDropIn, type GreengrassIdentity } from './greengrass.ts';
import { chooseIdentityFiles, filesInUse, pendingKeyPath, removeUnusedIdentityFiles } from './identity-files.ts';
import { log } from './log.ts';
import { deviceClientUpToDate, writeDeviceClientConfig, type DeviceClientIdentity } from './handoff/device-client.ts';
import { deviceClientProxyConfig, deviceClientProxyFile, renderProxyConfig, writeDeviceClientProxyConfig } from './handoff/device-client-proxy.ts';
import { restartClient } from './handoff/restart.ts';
import { proxyRoute, type ProxyRoute } from './proxy/route.ts';
import { carriedProxy, carriesCredentials } from './proxy/greengrass.ts';
import { identityPaths, writeState, type IdentityFiles, type ProvisioningState } from './state.ts';
import { pauseAt } from './test-hooks.ts';
import { isHandleUri, releaseUnusedTpmKeys } from './tpm/key-store.ts';
import { tpmAccess } from './tpm/tools.ts';

export interface Outcome {
  deviceId: string;
  certificateId: string;
  certificatePem: string;
  registered: RegisterThingResponse;
  cert: X509Certificate;
  caPem: string;
  /** The identity this one replaces (provision --force). */
  previous?: ProvisioningState;
  /** key.store tpm: the key's `handle:0x...` (no key file is written). */
  keyUri?: string;
}

const greengrassIdentity = (thingName: string, files: IdentityFiles): GreengrassIdentity => ({
  thingName,
  certificateFilePath: files.certificatePath,
  privateKeyPath: files.privateKeyPath,
  rootCaPath: files.rootCaPath,
});

async function handOverToGreengrass(config: AgentConfig, identity: GreengrassIdentity, plan: AccessPlan): Promise<void> {
  // A proxy password in it: readable by root and the Greengrass group only, like the key.
  const secret = carriesCredentials(carriedProxy(config));
  await writeGreengrassDropIn(config, identity, secret ? plan.key.owner : plan.state.owner, secret ? 0o640 : 0o644);
  log(`wrote the Greengrass lite drop-in ${config.greengrass.configDropIn}`);
  await pauseAt('greengrass-written');
  const failure = await restartGreengrass(config, (line) => log(`warning: ${line}`));
  // The identity is valid either way; Greengrass picks it up at its next start.
  if (failure) log(`warning: systemctl restart ${config.greengrass.restartTarget} failed: ${failure}`);
  else log(`restarted ${config.greengrass.restartTarget}`);
}

async function handOverToDeviceClient(config: AgentConfig, identity: DeviceClientIdentity, plan: AccessPlan): Promise<void> {
  await writeDeviceClientConfig(config, identity, plan.state.owner);
  log(`wrote the AWS IoT Device Client config ${config.deviceClient.configFile}`);
  await handOverProxyToDeviceClient(config, plan);
  const failure = await restartClient(config.deviceClient.unit, (line) => log(`warning: ${line}`));
  // The identity is valid either way; the Device Client picks it up at its next start.
  if (failure) log(`warning: systemctl restart ${config.deviceClient.unit} failed: ${failure}`);
  else log(`restarted ${config.deviceClient.unit}`);
}

/**
 * This run's route to the endpoint. A malformed https_proxy ends a provisioning run before
 * anything is minted (provision.ts); on a provisioned device it only means nothing to carry on.
 */
function deviceClientRoute(config: AgentConfig): ProxyRoute | undefined {
  try {
    return proxyRoute(config, config.iotDataEndpoint, config.port);
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
}

/**
 * The proxy this run goes through to the endpoint, in the Device Client's own file (it has no
 * no_proxy: the agent's route for the endpoint decides). Without one an existing file is left as
 * it is: the image's, or one an earlier run wrote from an https_proxy this run lacks (sudo drops it).
 */
async function handOverProxyToDeviceClient(config: AgentConfig, plan: AccessPlan): Promise<void> {
  const route = deviceClientRoute(config);
  if (!route) return;
  const file = await deviceClientProxyFile(config);
  const wanted = deviceClientProxyConfig(route);
  if ('refused' in wanted) return log(`warning: ${wanted.refused}; ${file} is not written, so the Device Client connects directly`);
  await writeDeviceClientProxyConfig(file, wanted.config, plan.state.owner);
  log(`wrote the AWS IoT Device Client proxy config ${file} (the proxy ${proxyAddress(route.proxy)})`);
}

/** Whether the Device Client's proxy file says what this run's route would write (true when there is nothing to write). */
async function deviceClientProxyUpToDate(config: AgentConfig): Promise<boolean> {
  const route = deviceClientRoute(config);
  const wanted = route && deviceClientProxyConfig(route);
  if (!wanted || 'refused' in wanted) return true;
  const onDisk = await readFile(await deviceClientProxyFile(config), 'utf8').catch(() => undefined);
  return onDisk === renderProxyConfig(wanted.config);
}

export async function commit(config: AgentConfig, outcome: Outcome, plan: AccessPlan): Promise<ProvisioningState> {
  const { registered, previous } = outcome;
  const files = chooseIdentityFiles(config, outcome.certificateId, await filesInUse(config), outcome.keyUri);
  await writeFileAtomic(files.certificatePath, outcome.certificatePem, plan.cert);
  // The pending key was created with the key's final owner and mode.
  if (!config.key.devicePrivateKeyPath && !outcome.keyUri) await renameDurable(pendingKeyPath(config), files.privateKeyPath);
  await writeFileAtomic(files.rootCaPath, outcome.caPem, plan.rootCa);
  log(`wrote ${identityPaths(files).join(', ')}`);
  await pauseAt('results-written');

  if (config.greengrass.enabled) await handOverToGreengrass(config, greengrassIdentity(registered.thingName, files), plan);
  if (config.handoff === 'device-client') await handOverToDeviceClient(config, { thingName: registered.thingName, ...files }, plan);

  const state: ProvisioningState = {
    version: 1,
    thingName: registered.thingName,
    certificateId: outcome.certificateId,
    deviceId: outcome.deviceId,
    templateName: config.templateName,
    endpoint: `${config.iotDataEndpoint}:${config.port}`,
    ...files,
    notAfter: new Date(outcome.cert.validTo).toISOString(),
    provisionedAt: new Date().toISOString(),
    agentVersion: process.env.FP_AGENT_VERSION ?? 'dev',
    deviceConfiguration: registered.deviceConfiguration ?? {},
  };
  await writeState(config, state, plan.state);
  log(`provisioned as thing ${registered.thingName} (certificate ${outcome.certificateId})${previous ? ' (forced)' : ''}`);
  await pauseAt('committed');

  await removeUnusedIdentityFiles(config, new Set(identityPaths(state)));
  // Only now may the key of the identity this one replaced leave the TPM.
  if (isHandleUri(state.privateKeyPath)) await releaseTpmKeysAfterCommit(config, state.privateKeyPath);
  if (previous && previous.certificateId !== state.certificateId) {
    // The device cannot deactivate it (its policy does not allow that): say so, once.
    log(`the previous certificate ${previous.certificateId} is no longer used by this device; it stays ACTIVE in AWS IoT until deactivated there`);
  }
  return state;
}

/**
 * For a committed identity, at every run: its files get their owner and mode, the drop-in says
 * what state.json says (rewritten, and Greengrass restarted, when a crash or an edit left it
 * otherwise), and files nothing names any more are removed.
 */
export async function settle(config: AgentConfig, state: ProvisioningState, plan: AccessPlan): Promise<void> {
  const kinds = [
    [state.certificatePath, plan.cert],
    [state.privateKeyPath, plan.key],
    [state.rootCaPath, plan.rootCa],
  ] as const;
  for (const [file, access] of kinds) if (file !== config.key.devicePrivateKeyPath && !isHandleUri(file)) await applyAccess(file, access);
  if (config.greengrass.enabled) {
    const identity = greengrassIdentity(state.thingName, state);
    const onDisk = await readDropIn(config);
    if (onDisk !== expectedDropIn(config, identity, onDisk)) {
      log(`the Greengrass lite drop-in does not name the committed identity (thing ${state.thingName}); rewriting it`);
      await handOverToGreengrass(config, identity, plan);
    }
  }
  if (config.handoff === 'device-client') {
    const identity = { thingName: state.thingName, certificatePath: state.certificatePath, privateKeyPath: state.privateKeyPath, rootCaPath: state.rootCaPath };
    if (!(await deviceClientUpToDate(config, identity)) || !(await deviceClientProxyUpToDate(config))) {
      log(`the AWS IoT Device Client config does not name the committed identity (thing ${state.thingName}) or this run's proxy; rewriting it`);
      await handOverToDeviceClient(config, identity, plan);
    }
  }
  const removed = await removeUnusedIdentityFiles(config, new Set(identityPaths(state)));
  // A pending TPM key of a run that did not commit, or the key a crash kept from being evicted.
  if (isHandleUri(state.privateKeyPath)) await releaseTpmKeysAfterCommit(config, state.privateKeyPath);
  if (removed.length > 0) log(`removed ${removed.length} file(s) no identity uses: ${removed.join(', ')}`);
}

/** Evicting the key no identity uses is tidying: the identity is committed, and the next run tries again. */
async function releaseTpmKeysAfterCommit(config: AgentConfig, inUse: string): Promise<void> {
  await releaseUnusedTpmKeys(config, tpmAccess(config), inUse).catch((error: unknown) =>
    log(`warning: could not evict the TPM key no identity uses (the next run tries again): ${(error as Error).message}`),
  );
}

export async function removeClaimKey(config: AgentConfig): Promise<void> {
  if (!config.removeClaimKeyAfterSuccess) return;
  if (await removeDurable(config.claimKeyPath)) log(`removed the claim key ${config.claimKeyPath}`);
}
