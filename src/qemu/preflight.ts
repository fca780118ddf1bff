// Host tools the QEMU test needs, and the Debian package that provides each, so a missing one is
// reported as one line saying what to install instead of a spawn ENOENT deep in a boot.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { HOST_PACKAGES } from './rootfs.ts';

export const HOST_TOOLS: readonly { command: string; pkg: (typeof HOST_PACKAGES)[number] }[] = [
  { command: 'qemu-system-x86_64', pkg: 'qemu-system-x86' },
  { command: 'debootstrap', pkg: 'debootstrap' },
  { command: 'mkfs.ext4', pkg: 'e2fsprogs' },
  { command: 'debugfs', pkg: 'e2fsprogs' },
  { command: 'python3', pkg: 'python3' },
];

function onPath(command: string): boolean {
  // sbin is often missing from a non-login PATH while the tools live there.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((d) => {
    try {
      accessSync(join(d, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The Debian packages whose commands are missing on this host (empty when all are there). */
export function missingHostPackages(has: (command: string) => boolean = onPath): string[] {
  return [...new Set(HOST_TOOLS.filter((t) => !has(t.command)).map((t) => t.pkg))];
}

/** One line naming what to install, or undefined. */
export function preflightProblem(has?: (command: string) => boolean): string | undefined {
  const missing = missingHostPackages(has);
  if (!missing.length) return undefined;
  return `the QEMU test needs ${missing.join(', ')} on this host: apt-get install -y ${HOST_PACKAGES.join(' ')} (as root)`;
}
