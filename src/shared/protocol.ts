// The AWS IoT Core fleet-provisioning MQTT API (DESIGN.md "Wire protocol"), shared by the
// emulator (server side) and the agent (client side).

export const TOPICS = {
  createFromCsr: '$aws/certificates/create-from-csr/json',
  createKeys: '$aws/certificates/create/json',
  registerThing: (templateName: string) => `$aws/provisioning-templates/${templateName}/provision/json`,
} as const;

export const accepted = (topic: string): string => `${topic}/accepted`;
export const rejected = (topic: string): string => `${topic}/rejected`;

/** The ALPN protocol that lets MQTT with client certificates run on port 443. */
export const MQTT_ALPN = 'x-amzn-mqtt-ca';

/** An ownership token is valid for this long; an unregistered certificate is deleted after it. */
export const OWNERSHIP_TOKEN_TTL_MS = 60 * 60 * 1000;

/** The pre-provisioning hook must answer within this time or provisioning is rejected. */
export const HOOK_TIMEOUT_MS = 5_000;

export interface CreateCertificateFromCsrRequest {
  certificateSigningRequest: string;
}

export interface CreateCertificateResponse {
  certificateId: string;
  certificatePem: string;
  certificateOwnershipToken: string;
  /** Only for CreateKeysAndCertificate. */
  privateKey?: string;
}

export interface RegisterThingRequest {
  certificateOwnershipToken: string;
  parameters?: Record<string, string>;
}

export interface RegisterThingResponse {
  thingName: string;
  deviceConfiguration: Record<string, string>;
}

export interface RejectedResponse {
  statusCode: number;
  errorCode: string;
  errorMessage: string;
}

/** Input of the pre-provisioning hook Lambda, as AWS IoT sends it. */
export interface HookEvent {
  claimCertificateId: string;
  certificateId: string;
  certificatePem: string;
  templateArn: string;
  clientId: string;
  parameters: Record<string, string>;
}

export interface HookResult {
  allowProvisioning: boolean;
  parameterOverrides?: Record<string, string>;
}

/**
 * The build host as a device under QEMU's user-mode (slirp) network sees it: runqemu's default
 * and `fp-yocto qemu-test`. The emulator's server certificate always names it, and `init --local`
 * writes it as the endpoint devices connect to.
 */
export const QEMU_HOST_ADDRESS = '10.0.2.2';
