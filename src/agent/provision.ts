// `fp-agent provision`: claim connection -> device key and CSR -> CreateCertificateFromCsr (or
// CreateKeysAndCertificate) -> RegisterThing -> verify the new certificate by connecting with it
// -> write results -> Greengrass drop-in and restart -> state.json (the commit) -> optionally
// drop the claim key. A crash before state.json leaves "not provisioned"; a rerun starts over.
import { X509Certificate } from 'node:crypto';
import { expandTemplateParams, type AgentConfig } from '../shared/config.ts';
import { DEVICE_ID_PARAMETER } from '../shared/pre-provisioning-hook.ts';
import { OWNERSHIP_TOKEN_TTL_MS, TOPICS, type CreateCertificateResponse, type RegisterThingResponse } from '../shared/protocol.ts';
import { removeDurable, removeStaleTemps } from '../shared/atomic-file.ts';
import { retryUntilDeadline } from './backoff.ts';
import { ClockError, Fault, RejectedError } from './errors.ts';
import { commit, removeClaimKey, settle } from './commit.ts';
import { filesInUse, pendingKeyPath, removeUnusedIdentityFiles } from './identity-files.ts';
import { accessPlan, type AccessPlan } from './file-access.ts';
import { removeStaleDropInTemps } from './greengrass.ts';
import { identify, readStoredDeviceId, storeDeviceId } from './identify.ts';
import { generatePrivateKey, loadConfiguredKey, privateKeyPem, writePrivateKey } from './keys.ts';
import { loadClaim, type Claim } from './claim.ts';
import { checkDropInPlace, checkOutputDir } from './preflight.ts';
import { createCsr } from './csr.ts';
import { log, withLogSink } from './log.ts';
import { openSession, SubscriptionLostError, type MqttSession, type SessionOptions } from './mqtt-session.ts';
import { proxyRoute, type ProxyRoute } from './proxy/route.ts';
import { readDeviceClientConfig } from './handoff/device-client.ts';
import { proxyAddress } from '../shared/proxy-url.ts';
import { readState } from './state.ts';
import { now, pauseAt, phase } from './test-hooks.ts';
import { handleUri, prepareTpmKey } from './tpm/key-store.ts';
import { assertTpmPresent, assertTpmTlsUsable, tpmAccess } from './tpm/tools.ts';

export interface ProvisionOptions {
  force: boolean;
  protocolVersion: 4 | 5;
  /** Where this run's log lines go instead of stderr (many agents in one process: fp-yocto simulate). */
  log?: (message: string) => void;
  /** Told about every transient fault before its retry, after it is logged. */
  onRetry?: (info: { attempt: number; delayMs: number; cause: string }) => void;
  /**
   * The claim, loaded and checked by the caller (loadClaim), with a TLS context to reuse: many
   * devices sharing one claim in one process (fp-yocto simulate). A device leaves it out and
   * loads its own once per run.
   */
  claim?: Claim;
}

/** Refuses to go on while the clock is before a certificate's notBefore (NTP not synced yet). */
function assertClockAfterNotBefore(cert: X509Certificate, what: string): X509Certificate {
  const notBefore = new Date(cert.validFrom);
  const current = now();
  if (current < notBefore) throw new ClockError(what, notBefore, current);
  return cert;
}

interface Issued {
  certificateId: string;
  certificatePem: string;
  ownershipToken: string;
  /** The private key's PEM: ours, or the one AWS made; none when it is in the TPM. */
  privateKeyPem?: string;
  issuedAt: number;
  /** Whether a RegisterThing with this token was sent already (its reply may have been lost). */
  registerSent: boolean;
  /** certificatePem parsed, on first use (each attempt checks its notBefore). */
  cert?: X509Certificate;
}

const issuedCert = (issued: Issued): X509Certificate => (issued.cert ??= new X509Certificate(issued.certificatePem));

/** After this many subscriptions in a row ended by a disconnect, blame the claim policy, not the network. */
const SUBSCRIPTION_STRIKES = 3;

/** Keeps ownership tokens we would still trust for a retry of RegisterThing (they live 1 h). */
const TOKEN_REUSE_MS = OWNERSHIP_TOKEN_TTL_MS - 10 * 60_000;

/**
 * A hook denial when templateParams does not pass the device id: the cause is the config, and AWS
 * does not say the hook's reason, so name the parameter the fp-yocto hook checks.
 */
function blameTemplateParams(config: AgentConfig, error: unknown): unknown {
  if (!(error instanceof RejectedError) || error.response.statusCode !== 403) return error;
  if (DEVICE_ID_PARAMETER in config.templateParams) return error;
  return new Fault(
    'hookDenied',
    `templateParams.${DEVICE_ID_PARAMETER} is missing, and the pre-provisioning hook denied the device ` +
      `(${error.response.statusCode} ${error.response.errorCode}); the fp-yocto hook needs ${DEVICE_ID_PARAMETER}: "\${deviceId}"`,
  );
}

export async function provision(config: AgentConfig, options: ProvisionOptions): Promise<void> {
  if (options.log) {
    const { log: sink, ...rest } = options;
    return withLogSink(sink, () => provision(config, rest));
  }
  phase('start');
  // The whole run, identification and every retry included, ends by this time.
  const deadline = Date.now() + config.retry.deadlineMs;
  // Checked before anything else: a device that cannot store the result must not mint one.
  const plan = await accessPlan(config);
  await checkOutputDir(config, plan);
  if (config.greengrass.enabled) await checkDropInPlace(config, plan.state.owner);
  let tpmPropquery: string | undefined;
  if (config.key.store === 'tpm') {
    await assertTpmPresent(config);
    tpmPropquery = await assertTpmTlsUsable(tpmAccess(config, deadline));
  }
  // A Device Client config we could not keep the image's settings of: before anything is minted.
  if (config.handoff === 'device-client') await readDeviceClientConfig(config);
  await removeStaleTemps(config.outputDir);
  if (config.greengrass.enabled) await removeStaleDropInTemps(config);
  const pendingKey = pendingKeyPath(config);

  const previous = await readState(config);
  if (previous) {
    await settle(config, previous, plan);
    if (!options.force) {
      log(`already provisioned as thing ${previous.thingName} (certificate ${previous.certificateId}); nothing to do`);
      await removeClaimKey(config);
      return;
    }
    // Nothing of the current identity changes until the new one is committed (commit.ts).
    log(`--force: re-provisioning; thing ${previous.thingName} (certificate ${previous.certificateId}) stays in use until the new identity is committed`);
  } else {
    await removeUnusedIdentityFiles(config, await filesInUse(config));
  }

  const claim = options.claim ?? (await loadClaim(config));
  // Settled once per run, before anything is minted: a malformed https_proxy is a local check.
  const proxy = proxyRoute(config, config.iotDataEndpoint, config.port);
  const via = proxy ? ` through the proxy ${proxyAddress(proxy.proxy)} (${proxy.source})` : '';
  const deviceId = await resolveDeviceId(config, deadline, plan);
  await pauseAt('identified');
  const parameters = expandTemplateParams(config.templateParams, deviceId);

  // The device key is on disk (pending, with its final owner and mode) before its CSR leaves the device.
  let csrPem: string | undefined;
  let ownKeyPem: string | undefined;
  /** key.store tpm: the handle of this run's key (it never leaves the TPM). */
  let tpmHandle: number | undefined;
  if (config.key.store === 'tpm') {
    ({ handle: tpmHandle, csrPem } = await prepareTpmKey(config, tpmAccess(config, deadline), deviceId, previous?.privateKeyPath));
  } else if (config.key.devicePrivateKeyPath) {
    ({ csrPem, privateKeyPem: ownKeyPem } = await loadConfiguredKey(config, deviceId, plan.key));
    log(`using the configured device key ${config.key.devicePrivateKeyPath}`);
  } else if (!config.key.createKeysAndCertificate) {
    const key = await generatePrivateKey(config.key.algorithm);
    ownKeyPem = privateKeyPem(key);
    await writePrivateKey(pendingKey, ownKeyPem, plan.key);
    csrPem = createCsr(key, deviceId);
    log(`made a ${config.key.algorithm} key pair and CSR`);
  }
  await pauseAt('key-written');

  let issued: Issued | undefined;
  let registered: RegisterThingResponse | undefined;
  let verifiedCert: X509Certificate | undefined;
  let lostSubscriptions = 0;

  // One attempt: the claim exchange unless done already, then the check of the new certificate.
  const attemptOnce = async () => {
    const timeoutMs = config.retry.attemptTimeoutMs;
    if (!registered) {
      assertClockAfterNotBefore(claim.cert, 'claim certificate');
      // No point in connecting while a certificate we already hold is not valid yet.
      if (issued) assertClockAfterNotBefore(issuedCert(issued), 'device certificate');
      const clientId = `${config.clientIdPrefix}${deviceId}`;
      log(`connecting to ${config.iotDataEndpoint}:${config.port}${via} as ${clientId}`);
      const session = await openSession({
        host: config.iotDataEndpoint,
        port: config.port,
        clientId,
        certPem: claim.certPem,
        keyPem: claim.keyPem,
        caPem: claim.caPem,
        secureContext: claim.secureContext,
        timeoutMs,
        deadline,
        protocolVersion: options.protocolVersion,
        proxy,
      });
      try {
        await pauseAt('connected');
        if (!issued || Date.now() - issued.issuedAt > TOKEN_REUSE_MS) {
          issued = await requestCertificate(session, config, csrPem, ownKeyPem, pendingKey, plan);
          log(`certificate ${issued.certificateId} issued`);
          await pauseAt('certificate-issued');
        }
        assertClockAfterNotBefore(issuedCert(issued), 'device certificate');
        log(`registering the thing with template ${config.templateName}`);
        const retried = issued.registerSent;
        issued.registerSent = true;
        try {
          registered = await session.request<RegisterThingResponse>('RegisterThing', TOPICS.registerThing(config.templateName), {
            certificateOwnershipToken: issued.ownershipToken,
            parameters,
          });
        } catch (error) {
          // A reply lost after the server used the token makes the token invalid: start over.
          if (retried && error instanceof RejectedError && /OwnershipToken/i.test(error.response.errorCode)) {
            issued = undefined;
            throw new Fault('network', 'the ownership token was used by an earlier attempt; requesting a new certificate');
          }
          throw blameTemplateParams(config, error);
        }
        if (typeof registered?.thingName !== 'string' || registered.thingName === '') {
          registered = undefined;
          throw new Fault('badReply', 'RegisterThing accepted without a thing name: does the template create an AWS::IoT::Thing?');
        }
        log(`registered thing ${registered.thingName}`);
        await pauseAt('thing-registered');
      } finally {
        await session.close();
      }
    }
    const key = tpmHandle === undefined ? { keyPem: issued!.privateKeyPem! } : { keyPem: '', tpmKey: { handle: tpmHandle, tcti: config.key.tpmTcti, propquery: tpmPropquery! } };
    verifiedCert = await verifyCertificate(config, registered.thingName, issued!, key, claim.caPem, { timeoutMs, deadline, proxy }, options.protocolVersion);
    await pauseAt('verified');
  };

  const attempt = async () => {
    try {
      await attemptOnce();
      lostSubscriptions = 0;
    } catch (error) {
      if (!(error instanceof SubscriptionLostError)) lostSubscriptions = 0;
      else if (++lostSubscriptions >= SUBSCRIPTION_STRIKES) {
        throw new Fault(
          'claimPolicy',
          `the server closed the connection ${lostSubscriptions} times when subscribing to ${error.topics.join(', ')}: ` +
            `does the claim policy allow template ${config.templateName}?`,
        );
      }
      throw error;
    }
  };

  try {
    await retryUntilDeadline(attempt, {
      ...config.retry,
      deadlineMs: Math.max(1, deadline - Date.now()),
      onRetry: (info) => {
        log(`attempt ${info.attempt} failed: ${info.cause}; retrying in ${info.delayMs} ms`);
        options.onRetry?.(info);
      },
    });
  } catch (error) {
    // Not provisioned: a key for a certificate we will never use has no reason to stay.
    await removeDurable(pendingKey).catch(() => undefined);
    throw error;
  }

  await commit(config, {
    deviceId,
    certificateId: issued!.certificateId,
    certificatePem: issued!.certificatePem,
    registered: registered!,
    cert: verifiedCert!,
    caPem: claim.caPem,
    previous,
    ...(tpmHandle === undefined ? {} : { keyUri: handleUri(tpmHandle) }),
  }, plan);
  await removeClaimKey(config);
}

async function resolveDeviceId(config: AgentConfig, deadline: number, plan: AccessPlan): Promise<string> {
  const stored = await readStoredDeviceId(config);
  if (stored) {
    log(`device id ${stored} (from ${config.outputDir})`);
    return stored;
  }
  const { deviceId, origin } = await identify(config, deadline);
  await storeDeviceId(config, deviceId, plan.deviceId);
  log(`device id ${deviceId} (${origin})`);
  return deviceId;
}

async function requestCertificate(
  session: MqttSession,
  config: AgentConfig,
  csrPem: string | undefined,
  ownKeyPem: string | undefined,
  pendingKeyPath: string,
  plan: AccessPlan,
): Promise<Issued> {
  let reply: CreateCertificateResponse;
  if (csrPem) {
    log('requesting a certificate for the CSR (CreateCertificateFromCsr)');
    reply = await session.request('CreateCertificateFromCsr', TOPICS.createFromCsr, { certificateSigningRequest: csrPem });
  } else {
    log('requesting keys and a certificate (CreateKeysAndCertificate)');
    reply = await session.request('CreateKeysAndCertificate', TOPICS.createKeys, {});
  }
  if (!reply?.certificateId || !reply.certificatePem || !reply.certificateOwnershipToken) {
    throw new Fault('badReply', 'the certificate reply lacks certificateId, certificatePem or certificateOwnershipToken');
  }
  let privateKeyPem = ownKeyPem;
  if (!csrPem) {
    if (!reply.privateKey) throw new Fault('badReply', 'CreateKeysAndCertificate replied without a private key');
    privateKeyPem = reply.privateKey;
    await writePrivateKey(pendingKeyPath, privateKeyPem, plan.key);
  }
  return {
    certificateId: reply.certificateId,
    certificatePem: reply.certificatePem,
    ownershipToken: reply.certificateOwnershipToken,
    privateKeyPem,
    issuedAt: Date.now(),
    registerSent: false,
  };
}

/** Connects with the new certificate as the thing: proves it is active and allowed before we commit to it. */
async function verifyCertificate(
  config: AgentConfig,
  thingName: string,
  issued: Issued,
  key: Pick<SessionOptions, 'keyPem' | 'tpmKey'>,
  caPem: string,
  limits: { timeoutMs: number; deadline: number; proxy?: ProxyRoute },
  protocolVersion: 4 | 5,
): Promise<X509Certificate> {
  const cert = assertClockAfterNotBefore(issuedCert(issued), 'device certificate');
  log(`verifying the new certificate: connecting as ${thingName}`);
  const session = await openSession({
    host: config.iotDataEndpoint,
    port: config.port,
    clientId: thingName,
    certPem: issued.certificatePem,
    ...key,
    caPem,
    ...limits,
    protocolVersion,
  });
  await session.close();
  log('the new certificate works');
  return cert;
}
