// The QEMU tests need root (debootstrap, chown in the image staging dir) and three Debian packages.
// A developer without them gets the rest of `npm test` and one line saying what was skipped and
// why; CI (CI=true) must have them, so there a missing one fails the run instead.
import { preflightProblem } from '../../src/qemu/preflight.ts';

function unavailable(): string | undefined {
  const problem = preflightProblem() ?? (process.getuid?.() === 0 ? undefined : 'the QEMU test builds its root filesystem as root');
  if (!problem) return undefined;
  if (process.env.CI) throw new Error(`${problem} (required when CI is set; see .ci/run)`);
  console.warn(`[qemu] skipped: ${problem}`);
  return problem;
}

/** Why the QEMU tests cannot run on this host (they are then skipped), or undefined. */
export const qemuSkipReason = unavailable();
