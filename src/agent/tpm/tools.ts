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
      reject(new Fault('tpm', `${command} ${args[0] ?? ''}: ${stderrReason(stderr, access.tcti)}`));
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
