// Which faults are worth retrying. Transient: the network, the server or the clock may be fine
// later (DNS, TCP, TLS time checks, throttling, 5xx, timeouts). Permanent: retrying cannot help
// (bad config, missing or unsafe files, 4xx rejections such as a hook denial or unknown template).
import { EXIT, UserError } from '../shared/errors.ts';
import type { RejectedResponse } from '../shared/protocol.ts';

/** A fault that retrying cannot fix: exits 78 with its message as the one line. */
export class PermanentError extends UserError {
  constructor(message: string) {
    super(message, EXIT.config);
    this.name = 'PermanentError';
  }
}

/** A fault worth retrying; when the retry deadline passes, exits 75 with its message. */
export class TransientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransientError';
  }
}

/** A step could not start or finish before the run's deadline: the retry loop reports the cause before it. */
export class NoTimeLeftError extends TransientError {
  constructor(what: string) {
    super(`${what}: no time left before the deadline`);
    this.name = 'NoTimeLeftError';
  }
}

/** The device clock is before a certificate's notBefore: NTP has probably not synced yet. */
export class ClockError extends TransientError {
  constructor(what: string, notBefore: Date, now: Date) {
    super(`time not synced: the clock (${now.toISOString()}) is before the ${what}'s notBefore (${notBefore.toISOString()})`);
    this.name = 'ClockError';
  }
}

/** The server answered on a /rejected topic. */
export class RejectedError extends Error {
  constructor(
    readonly operation: string,
    readonly response: RejectedResponse,
  ) {
    super(`${operation} rejected: ${response.statusCode} ${response.errorCode}: ${response.errorMessage}`);
    this.name = 'RejectedError';
  }
}

const TRANSIENT_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** TLS verification results that mean "the clock is wrong", not "the certificate is wrong". */
const CLOCK_CODES = new Set(['CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'CRL_NOT_YET_VALID']);

/** TLS verification results that a retry cannot fix: wrong root CA or wrong endpoint name. */
const TLS_PERMANENT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export type Classified =
  | { kind: 'transient'; message: string }
  | { kind: 'permanent'; message: string; exitCode: number };

const codeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : typeof code === 'number' ? String(code) : undefined;
};

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Sorts any error into transient or permanent, with the one line to show for it. */
export function classify(error: unknown): Classified {
  if (error instanceof TransientError) return { kind: 'transient', message: error.message };
  if (error instanceof UserError) return { kind: 'permanent', message: error.message, exitCode: error.exitCode };
  if (error instanceof RejectedError) {
    const { statusCode, errorCode, errorMessage } = error.response;
    if (statusCode === 429 || statusCode >= 500) return { kind: 'transient', message: error.message };
    if (statusCode === 403 && /hook|denied/i.test(`${errorCode} ${errorMessage}`)) {
      return {
        kind: 'permanent',
        message: `provisioning denied by the pre-provisioning hook (${statusCode} ${errorCode}: ${errorMessage})`,
        exitCode: EXIT.config,
      };
    }
    return { kind: 'permanent', message: error.message, exitCode: EXIT.config };
  }
  // A bug, not a fault of the world: retrying would only hide it.
  if (error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError) {
    return { kind: 'permanent', message: `internal error: ${error.message}`, exitCode: EXIT.failure };
  }
  const code = codeOf(error);
  const message = messageOf(error);
  if (code && CLOCK_CODES.has(code)) return { kind: 'transient', message: `time not synced: TLS says ${code}` };
  if (code && TLS_PERMANENT_CODES.has(code)) {
    return { kind: 'permanent', message: `cannot verify the server: ${code} (check rootCaPath and iotDataEndpoint)`, exitCode: EXIT.config };
  }
  // CONNACK return codes 4 (bad user name or password) and 5 (not authorised): the claim
  // policy does not allow this client. 1-3 (protocol, identifier, server unavailable) may pass.
  if (code === '4' || code === '5' || code === '134' || code === '135') {
    return { kind: 'permanent', message: `the server refused the connection: ${message}`, exitCode: EXIT.config };
  }
  if (code && TRANSIENT_CODES.has(code)) return { kind: 'transient', message: `${code}: ${message}` };
  // Anything unexpected is retried: the deadline bounds it and systemd restarts the unit.
  return { kind: 'transient', message };
}
