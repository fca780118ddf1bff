// Every fault the agent knows, and how it ends a run (sysexits): 78 = fix the configuration (or
// the cloud side: retrying cannot help), 75 = try again later (transient faults are retried with
// backoff until retry.deadlineMs first; systemd restarts the unit), 64 = usage, 1 = a bug.
// Every error the agent raises names one of these kinds, classify() (errors.ts) maps everything
// else onto them, test/agent/fault-table.test.ts walks the table (a kind without a case fails
// the type check) and docs/agent.md lists it: a new fault cannot be added unclassified.
import { EXIT } from '../shared/errors.ts';

export type FaultClass = 'config' | 'transient' | 'usage' | 'bug';

export const EXIT_OF: Record<FaultClass, number> = {
  config: EXIT.config,
  transient: EXIT.tempFail,
  usage: EXIT.usage,
  bug: EXIT.failure,
};

export interface FaultSpec {
  class: FaultClass;
  /** What the one line says, for docs/agent.md. */
  about: string;
}

export const FAULTS = {
  usage: { class: 'usage', about: 'bad command line' },
  configFile: { class: 'config', about: 'the config file is unreadable, not YAML, or a value is not what is expected (names the field)' },
  claimFiles: {
    class: 'config',
    about: 'claimCertPath, claimKeyPath or rootCaPath: missing, unreadable, empty, not PEM, a key others may read, or a key that does not belong to the certificate',
  },
  deviceKey: { class: 'config', about: 'key.devicePrivateKeyPath or key.csrPath: missing, not PEM, too open, or not a pair' },
  deviceIdSource: { class: 'config', about: 'deviceId: the source is missing, a directory, empty, a placeholder, or does not answer' },
  outputDir: { class: 'config', about: 'outputDir: not a directory, on a pseudo filesystem such as /proc, or not writable' },
  greengrassDropIn: {
    class: 'config',
    about: "greengrass.configDropIn: a directory, a parent that is not a directory, not writable, or not on its parent's filesystem",
  },
  tpmMissing: {
    class: 'config',
    about: 'key.store tpm: no TPM at the key.tpmTcti device (/dev/tpmrm0), or tpm2-tools, openssl or tpm2-openssl missing',
  },
  tpmProvider: {
    class: 'config',
    about: 'key.store tpm: tpm2-openssl older than 1.2.0 (it hashes TLS in the TPM) through a TCTI other than tpm2-abrmd (tabrmd)',
  },
  tpm: { class: 'config', about: 'key.store tpm: a TPM command failed (names the command and what the TPM said)' },
  deviceClientConfig: { class: 'config', about: 'deviceClient.configFile: unreadable, or not the JSON object the AWS IoT Device Client reads' },
  greengrassGroup: { class: 'config', about: 'greengrass.group: no such group on the device' },
  serverUntrusted: { class: 'config', about: 'TLS: rootCaPath does not vouch for iotDataEndpoint' },
  notAuthorized: { class: 'config', about: 'the server refused the connection (CONNACK 4/5): claim certificate inactive or claim policy' },
  claimPolicy: { class: 'config', about: 'the claim policy does not allow the template topics (subscriptions refused or cut off 3 times)' },
  hookDenied: { class: 'config', about: 'the pre-provisioning hook denied the device (names templateParams when it lacks the device id)' },
  rejected: { class: 'config', about: 'a 4xx rejection: unknown template, missing parameter, bad CSR' },
  badReply: { class: 'config', about: 'an accepted reply without the fields AWS documents (e.g. a template without a thing)' },
  proxyAuth: { class: 'config', about: 'the HTTP proxy wants credentials or refused them (407): proxy.url / proxy.username / proxy.password or https_proxy' },
  proxyRefused: { class: 'config', about: 'the HTTP proxy refused CONNECT to the endpoint (403 and other 4xx): its rules must allow the port' },
  network: { class: 'transient', about: 'DNS, TCP, TLS handshake, connection refused or lost; a proxy unreachable, dropping the tunnel, or answering 5xx' },
  timeout: { class: 'transient', about: 'no answer within retry.attemptTimeoutMs, or no time left before retry.deadlineMs' },
  throttled: { class: 'transient', about: 'throttling (429) or a server error (5xx)' },
  clock: { class: 'transient', about: "time not synced: the clock is before a certificate's notBefore" },
  noDeviceId: { class: 'transient', about: 'no network interface with a usable MAC address yet' },
  filesystem: { class: 'transient', about: 'a filesystem step failed (disk full, I/O error, a directory gone) after the local checks passed' },
  deadline: { class: 'transient', about: 'transient faults outlived retry.deadlineMs; the line names the last one' },
  unexpected: { class: 'transient', about: 'anything not recognised: retried, bounded by retry.deadlineMs' },
  bug: { class: 'bug', about: 'internal error (a bug in fp-agent)' },
} as const satisfies Record<string, FaultSpec>;

export type FaultKind = keyof typeof FAULTS;

export const isTransient = (kind: FaultKind): boolean => FAULTS[kind].class === 'transient';
export const exitCodeOf = (kind: FaultKind): number => EXIT_OF[FAULTS[kind].class];
