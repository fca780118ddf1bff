// The TPM is driven through tpm2-tools and OpenSSL's tpm2 provider (tpm2-openssl), as child
// processes with argument arrays (never a shell). Both reach the TPM through the TSS2 TCTI named by
// key.tpmTcti (TPM2TOOLS_TCTI, TPM2OPENSSL_TCTI). Every call is bounded by the step's timeout and
// the run's deadline; stderr is kept for the one line a failure gets (it never holds key material:
// the private key does not leave the TPM).
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { AgentConfig } from '../../shared/config.ts';
import { Fault } from '../errors.ts';

export interface TpmAccess {
  tcti: string;
  /** Epoch ms: no call runs past it. */
  deadline: number;
  /** Limit on one call. */
  timeoutMs: number;
}

/** `deadline`: the run's; by default, retry.deadlineMs from now (steps outside the provisioning exchange). */
export const tpmAccess = (config: AgentConfig, deadline = Date.now() + config.retry.deadlineMs): TpmAccess => ({
  tcti: config.key.tpmTcti,
  deadline,
  timeoutMs: config.retry.attemptTimeoutMs,
});

/** The environment that points tpm2-tools and the tpm2 OpenSSL provider at the TCTI. */
export const tctiEnv = (tcti: string): NodeJS.ProcessEnv => ({ ...process.env, TPM2TOOLS_TCTI: tcti, TPM2OPENSSL_TCTI: tcti });

/** The Debian / meta-tpm package that holds a command, for the message when it is missing. */
const PACKAGE_OF = (command: string): string => (command === 'openssl' ? 'openssl (with tpm2-openssl)' : 'tpm2-tools');

const PROVIDER_MISSING = "OpenSSL's tpm2 provider (tpm2.so) is not installed; the image needs tpm2-openssl";

/**
 * The one reason a tool's stderr gives: "cannot reach the TPM" when the TCTI did not load (with
 * the connect error, if any), else the last error line (tpm2-tools end with a generic "Unable to
 * run ..."), without the TSS's source-file prefixes.
 */
export function stderrReason(stderr: string, tcti?: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^(WARNING|ERROR):[a-z]+:\S+:\d+:\S+\(\)\s*/, '').replace(/^ERROR:\s*/, '').trim())
    .filter(Boolean);
  if (lines.some((l) => /could not load tcti|failed to instantiate tcti/i.test(l))) {
    const detail = lines.find((l) => /failed to connect|refused|no such file|permission denied|cannot connect/i.test(l));
    return `cannot reach the TPM${tcti ? ` through key.tpmTcti ${tcti}` : ''}${detail ? ` (${detail})` : ''}`.slice(0, 300);
  }
  // OpenSSL could not open tpm2.so (and no TCTI failed, above): the provider is not installed.
  if (lines.some((l) => /could not load the shared library/i.test(l)) && lines.some((l) => /load provider tpm2/i.test(l))) return PROVIDER_MISSING;
  const error = lines.filter((l) => !/^Unable to run/i.test(l)).at(-1);
  return (error ?? 'no message').slice(0, 300);
}

/** Runs one tool; resolves to stdout. A missing tool is a config fault (78), a failing one a `tpm` fault. */
export function runTpmTool(access: TpmAccess, command: string, args: string[]): Promise<string> {
  const left = access.deadline - Date.now();
  if (left <= 0) return Promise.reject(new Fault('timeout', `${command}: no time left before the deadline`));
  const timeout = Math.min(access.timeoutMs, left);
  return new Promise((resolve, reject) => {
    execFile(command, args, { env: tctiEnv(access.tcti), timeout, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const e = error as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === 'ENOENT') {
        return reject(new Fault('tpmMissing', `key.store tpm: ${command} is not installed; the image needs ${PACKAGE_OF(command)}`));
      }
      if (e.killed) return reject(new Fault('tpm', `${command} ${args[0] ?? ''}: the TPM did not answer within ${timeout} ms`));
      const reason = stderrReason(stderr, access.tcti);
      reject(new Fault(reason === PROVIDER_MISSING ? 'tpmMissing' : 'tpm', `${command} ${args[0] ?? ''}: ${reason}`));
    });
  });
}

/**
 * The TPM is there: for a `device:` TCTI (the default, the kernel's resource manager
 * /dev/tpmrm0) its character device exists. Other TCTIs (swtpm, tabrmd) are found when used.
 */
export async function assertTpmPresent(config: AgentConfig): Promise<void> {
  const tcti = config.key.tpmTcti;
  const device = tcti === 'device' ? '/dev/tpmrm0' : tcti.startsWith('device:') ? tcti.slice('device:'.length) || '/dev/tpmrm0' : undefined;
  if (!device) return;
  const info = await stat(device).catch(() => undefined);
  if (!info?.isCharacterDevice()) {
    throw new Fault(
      'tpmMissing',
      `key.store is "tpm" but this device has no TPM at ${device} (key.tpmTcti ${tcti}): enable the kernel's TPM 2.0 driver, or set key.store: file`,
    );
  }
}

/** tpm2-openssl's version, from `openssl list -providers -provider tpm2` ("    version: 1.1.1"). */
export function providerVersion(listing: string): string | undefined {
  return /^\s*version:\s*(\d+\.\d+\.\d+)/m.exec(listing)?.[1];
}

/** [major, minor] of a version text, 0.0 when it has none. */
const majorMinor = (version: string | undefined): [number, number] => {
  const [major = 0, minor = 0] = (version ?? '').split('.').map(Number);
  return [major, minor];
};
const atLeast12 = (version: string | undefined): boolean => {
  const [major, minor] = majorMinor(version);
  return major > 1 || (major === 1 && minor >= 2);
};

/**
 * Pure: the property query of the TLS connection with the TPM key (openssl-tls.ts). tpm2-openssl
 * 1.2.0 made TPM keys non-exportable ("Fixed key export: the private keys are not exportable,
 * which shall fix some TPM-based sign operations", its docs/CHANGELOG.md): from there on OpenSSL
 * signs with the key in its own provider whatever the query, so everything else (hashes, the
 * server's signature, key shares, random bytes) is asked of the default provider and never
 * reaches the TPM. Measured with 1.3.0: through /dev/tpmrm0 in the QEMU guest, with the tpm2
 * provider preferred, the TPM checked the server's CertificateVerify and failed it ("bad
 * signature") at every attempt, and with the default provider preferred the device provisioned
 * (an EC key, TLS 1.3); through tpm2-abrmd on the host, with the default provider preferred, EC
 * and RSA TPM keys connect to EC and RSA servers over TLS 1.3 and 1.2. Before 1.2.0 the default
 * provider would take the key's public half and fail ("missing private key"), so the tpm2
 * provider must be preferred, as its docs/tls.md shows.
 */
export const tlsPropquery = (version: string | undefined): string => (atLeast12(version) ? '?provider=default' : '?provider=tpm2');

/** tpm2-abrmd, the user-space access broker and resource manager. */
const isAbrmd = (tcti: string): boolean => /^tabrmd(:|$)/.test(tcti);

/**
 * Pure: why a TLS handshake with the TPM key cannot succeed with this tpm2-openssl and TCTI, or
 * undefined. Before 1.2.0 the provider serves digests too, and with it preferred (openssl-tls.ts)
 * the handshake's hashes run in the TPM as sequence objects, more at a time than a TPM holds. Only
 * tpm2-abrmd swaps enough of them: measured in the QEMU guest (Debian 12, tpm2-openssl 1.1.1),
 * the kernel's resource manager /dev/tpmrm0 fails every TLS 1.3 handshake with "out of memory for
 * object contexts" (tls13_hkdf_expand: internal error). tpm2-openssl 1.2.0 turned digests off by
 * default ("Symmetric operations are disabled by default", its docs/CHANGELOG.md).
 */
export function tlsDigestProblem(version: string | undefined, tcti: string): string | undefined {
  if (!version || isAbrmd(tcti) || atLeast12(version)) return undefined;
  return (
    `key.store tpm: tpm2-openssl ${version} hashes the TLS handshake inside the TPM, which cannot hold that many objects ` +
    `through key.tpmTcti ${tcti}; run tpm2-abrmd and set key.tpmTcti: tabrmd, or install tpm2-openssl 1.2.0 or later`
  );
}

/**
 * Before anything is minted: OpenSSL's tpm2 provider loads and reaches the TPM, and the TLS
 * handshake that verifies the new certificate can work with it (tlsDigestProblem). Otherwise a
 * device would register a thing and then fail every connection with its key. Resolves to the
 * property query that connection uses (tlsPropquery).
 */
export async function assertTpmTlsUsable(access: TpmAccess): Promise<string> {
  const listing = await runTpmTool(access, 'openssl', ['list', '-providers', '-provider', 'tpm2']);
  const version = providerVersion(listing);
  const problem = tlsDigestProblem(version, access.tcti);
  if (problem) throw new Fault('tpmProvider', problem);
  return tlsPropquery(version);
}
