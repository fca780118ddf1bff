// Restarting the client the identity was handed to (Greengrass lite's target, or the AWS IoT
// Device Client's service), so that it reads the new identity.
//
// First `systemctl reset-failed` on the unit and on the units that are PartOf= it (a target's
// ConsistsOf=): Greengrass lite's services have Restart=always with StartLimitBurst=10 in
// StartLimitInterval=20 (aws-greengrass-lite modules/*/unit/ggl.core.*.service.in), so one that
// kept failing before the device was provisioned is left "failed (start-limit-hit)", and a
// restart of the target does not start it again until its failed state is cleared
// (systemctl(1) reset-failed; systemd.unit(5) StartLimitBurst=).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const systemctl = (args: string[]) => promisify(execFile)('systemctl', args, { timeout: 90_000 });

const firstLine = (error: unknown): string => {
  const e = error as { stderr?: string; message: string };
  return (e.stderr?.trim() || e.message).split('\n')[0]!;
};

/** The units PartOf= `unit` (systemd's ConsistsOf=), as loaded now. */
async function members(unit: string): Promise<string[]> {
  const { stdout } = await systemctl(['show', '--property=ConsistsOf', '--value', unit]);
  return stdout.split(/\s+/).filter(Boolean).sort();
}

/**
 * Clears failed states, then `systemctl --no-block restart <unit>`; resolves to an error message
 * instead of throwing (the identity is valid either way). --no-block because our unit is ordered
 * Before= the clients' units: a blocking restart from inside it waits for itself until systemd's
 * job timeout (seen at first boot under QEMU). `onWarning` hears a reset-failed that failed.
 */
export async function restartClient(unit: string, onWarning: (line: string) => void): Promise<string | undefined> {
  try {
    await systemctl(['reset-failed', unit, ...(await members(unit))]);
  } catch (error) {
    onWarning(`systemctl reset-failed for ${unit} failed: ${firstLine(error)}`);
  }
  try {
    await systemctl(['--no-block', 'restart', unit]);
    return undefined;
  } catch (error) {
    return firstLine(error);
  }
}
