// Host tools the QEMU test needs, and the Debian package that provides each, so a missing one is
// reported as one line saying what to install instead of a spawn ENOENT deep in a boot.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { HOST_PACKAGES } from './rootfs.ts';

export const HOST_TOOLS: readonly { command: string; pkg: (typeof HOST_PACKAGES)[number]; library?: true }[] = [
  { command: 'qemu-system-x86_64', pkg: 'qemu-system-x86' },
  { command: 'debootstrap', pkg: 'debootstrap' },
  { command: 'mkfs.ext4', pkg: 'e2fsprogs' },
  { command: 'debugfs', pkg: 'e2fsprogs' },
  { command: 'python3', pkg: 'python3' },
  { command: 'swtpm', pkg: 'swtpm' },
  { command: 'tpm2_readpublic', pkg: 'tpm2-tools' },
  // A shared library (the TCTI tpm2-tools load for swtpm:), looked for in the library directories.
  { command: 'libtss2-tcti-swtpm.so.0', pkg: 'libtss2-tcti-swtpm0', library: true },
];

const LIBRARY_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib'];

function onPath(command: string): boolean {
  const library = HOST_TOOLS.find((t) => t.command === command)?.library;
  // sbin is often missing from a non-login PATH while the tools live there.
  const dirs = library ? LIBRARY_DIRS : [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((d) => {
    try {
      accessSync(join(d, command), library ? constants.R_OK : constants.X_OK);
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
