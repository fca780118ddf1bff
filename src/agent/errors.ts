// The agent's errors and their classification. Every error the agent raises is a Fault of a kind
// from the table in faults.ts; classify() maps everything else (socket and TLS codes, MQTT
// refusals, /rejected replies, filesystem errno, bugs) onto the same kinds. The kind decides:
// transient ones are retried until the deadline (then exit 75), the others end the run at once.
import { ConfigError, UserError } from '../shared/errors.ts';
import type { RejectedResponse } from '../shared/protocol.ts';
import { exitCodeOf, isTransient, type FaultKind } from './faults.ts';
import { oneLine } from './log.ts';


export class Fault extends UserError {
  constructor(
    readonly kind: FaultKind,
    message: string,
  ) {
    super(oneLine(message), exitCodeOf(kind));
    this.name = 'Fault';
  }
}

/** A step could not start or finish before the run's deadline: the retry loop reports the cause before it. */
export class NoTimeLeftError extends Fault {
  constructor(what: string) {
    super('timeout', `${what}: no time left before the deadline`);
    this.name = 'NoTimeLeftError';
  }
}

/** The device clock is before a certificate's notBefore: NTP has probably not synced yet. */
export class ClockError extends Fault {
  constructor(what: string, notBefore: Date, now: Date) {
    super('clock', `time not synced: the clock (${now.toISOString()}) is before the ${what}'s notBefore (${notBefore.toISOString()})`);
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

const NETWORK_CODES = new Set([
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
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** TLS verification results that mean "the clock is wrong", not "the certificate is wrong". */
const CLOCK_CODES = new Set(['CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'CRL_NOT_YET_VALID']);

/** TLS verification results that a retry cannot fix: wrong root CA or wrong endpoint name. */
const TLS_UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Filesystem errno after the local checks passed: storage may come back (systemd retries; the checks then name it). */
const FILESYSTEM_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM', 'ENOTDIR', 'EISDIR', 'ENOENT', 'EEXIST', 'EMFILE', 'ENFILE', 'EBUSY', 'EXDEV']);

/** CONNACK refusals that mean "this client may not connect" (3.1.1: 4, 5; MQTT 5: 0x86, 0x87). */
const NOT_AUTHORIZED_CONNACK = new Set([4, 5, 0x86, 0x87]);

export interface Classified {
  kind: 'transient' | 'permanent';
  fault: FaultKind;
  message: string;
  exitCode: number;
}

const codeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : typeof code === 'number' ? String(code) : undefined;
};

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const as = (fault: FaultKind, message: string): Classified => ({
  kind: isTransient(fault) ? 'transient' : 'permanent',
  fault,
  message: oneLine(message),
  exitCode: exitCodeOf(fault),
});

/** Sorts any error into a fault kind of the table, with the one line to show for it. */
export function classify(error: unknown): Classified {
  if (error instanceof Fault) return as(error.kind, error.message);
  if (error instanceof ConfigError) return as('configFile', error.message);
  if (error instanceof RejectedError) {
    const { statusCode, errorCode, errorMessage } = error.response;
    if (statusCode === 429 || statusCode >= 500) return as('throttled', error.message);
    if (statusCode === 403 && /hook|denied/i.test(`${errorCode} ${errorMessage}`)) {
      return as('hookDenied', `provisioning denied by the pre-provisioning hook (${statusCode} ${errorCode}: ${errorMessage})`);
    }
    return as('rejected', error.message);
  }
  // A bug, not a fault of the world: retrying would only hide it.
  if (error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError) {
    return as('bug', `internal error: ${error.message}`);
  }
  const code = codeOf(error);
  const message = messageOf(error);
  // By name: importing the MQTT client here would load node:tls at every start (cold start).
  if (error instanceof Error && error.name === 'ConnackError') {
    return NOT_AUTHORIZED_CONNACK.has(Number(code)) ? as('notAuthorized', message) : as('network', message);
  }
  if (code && CLOCK_CODES.has(code)) return as('clock', `time not synced: TLS says ${code}`);
  if (code && TLS_UNTRUSTED_CODES.has(code)) return as('serverUntrusted', `cannot verify the server: ${code} (check rootCaPath and iotDataEndpoint)`);
  if (code && NETWORK_CODES.has(code)) return as('network', `${code}: ${message}`);
  if (code && FILESYSTEM_CODES.has(code)) return as('filesystem', message);
  // Anything unexpected is retried: the deadline bounds it and systemd restarts the unit.
  return as('unexpected', message);
}
