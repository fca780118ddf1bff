// Per-boot disk images: a copy of the cached root filesystem image with an overlay of files
// (what the layer's recipes install) written into it by debugfs, and read back after shutdown the
// same way. Nothing is mounted: no loop devices, no privileges beyond writing the image file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { execa } from 'execa';

interface Common {
  /** Absolute path in the guest. */
  path: string;
}

/**
 * A regular file. `owner` is "user", "user:group" or "uid:gid", `group` a group name or gid
 * (the install manifest's owner/group fields), resolved against the image's /etc/passwd and
 * /etc/group; numeric uid/gid win. Default root:root.
 */
export interface OverlayFile extends Common {
  type?: 'file';
  /** Permission bits, e.g. 0o600. */
  mode: number;
  uid?: number;
  gid?: number;
  owner?: string;
  group?: string;
  contents?: string | Uint8Array;
  sourcePath?: string;
}

export interface OverlayDir extends Common {
  type: 'dir';
  mode: number;
  uid?: number;
  gid?: number;
  owner?: string;
  group?: string;
}

export interface OverlaySymlink extends Common {
  type: 'symlink';
  target: string;
}

export type OverlayEntry = OverlayFile | OverlayDir | OverlaySymlink;

/** The symlink `systemctl enable` would make for a unit with `WantedBy=<wantedBy>`. */
export function enableUnit(
  unit: string,
  wantedBy = 'multi-user.target',
  unitDir = '/usr/lib/systemd/system',
): OverlaySymlink {
  return {
    type: 'symlink',
    path: `/etc/systemd/system/${wantedBy}.wants/${unit}`,
    target: posix.join(unitDir, unit),
  };
}

/**
 * Pure: Debian's root is merged-/usr (/lib, /bin, /sbin are symlinks into /usr), and debugfs
 * creates entries without following a symlinked parent reliably, so overlay paths use the
 * canonical /usr form. A recipe's /lib/systemd/system/x.service lands where systemd reads it.
 */
export function canonicalGuestPath(p: string): string {
  if (!p.startsWith('/')) throw new Error(`overlay path must be absolute: ${p}`);
  const norm = posix.normalize(p).replace(/\/+$/, '') || '/';
  const m = /^\/(lib|lib64|bin|sbin)(\/.*)?$/.exec(norm);
  return m ? `/usr/${m[1]}${m[2] ?? ''}` : norm;
}

function checkPath(p: string): string {
  // debugfs splits its command lines on whitespace; our manifests never need exotic names.
  if (/[\s"'\\]/.test(p)) throw new Error(`unsupported character in guest path: ${JSON.stringify(p)}`);
  return p;
}

/** Pure: parse /etc/passwd or /etc/group text into name → id. */
export function parseIdFile(text: string): Map<string, number> {
  const ids = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] && /^\d+$/.test(f[2] ?? '')) ids.set(f[0], Number(f[2]));
  }
  return ids;
}

/** Pure: resolve an entry's owner to numeric ids (default root:root). */
export function resolveOwner(
  e: { uid?: number; gid?: number; owner?: string; group?: string },
  users: Map<string, number>,
  groups: Map<string, number>,
): { uid: number; gid: number } {
  const look = (name: string, table: Map<string, number>, what: string): number => {
    if (/^\d+$/.test(name)) return Number(name);
    const id = table.get(name);
    if (id === undefined) throw new Error(`unknown ${what} "${name}" in the image`);
    return id;
  };
  let uid = e.uid;
  let gid = e.gid;
  if (gid === undefined && e.group !== undefined) gid = look(e.group, groups, 'group');
  if (e.owner !== undefined) {
    const [u, g] = e.owner.split(':') as [string, string | undefined];
    uid ??= look(u, users, 'user');
    gid ??= look(g ?? u, groups, 'group');
  }
  return { uid: uid ?? 0, gid: gid ?? 0 };
}

const BANNER = /^debugfs \d+\.\d+(\.\d+)? \(.*\)$/;

/** Runs a debugfs script; throws on any error line (debugfs itself always exits 0). */
async function debugfsScript(image: string, lines: string[], write: boolean): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fp-debugfs-'));
  try {
    const script = join(dir, 'script');
    await writeFile(script, lines.join('\n') + '\n');
    const r = await execa('debugfs', [...(write ? ['-w'] : []), '-f', script, image], { reject: false });
    const errors = r.stderr.split('\n').filter((l) => l.trim() && !BANNER.test(l.trim()));
    if (r.exitCode !== 0 || errors.length) {
      throw new Error(`debugfs on ${image} failed: ${errors.join('; ') || `exit ${r.exitCode}`}`);
    }
    return r.stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface GuestStat {
  type: 'regular' | 'directory' | 'symlink' | string;
  /** Permission bits only (e.g. 0o600). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

/** Pure: parse `debugfs -R stat` output. */
export function parseStat(out: string): GuestStat {
  const head = /Type:\s*(\S+)\s+Mode:\s*([0-7]+)/.exec(out);
  const owner = /User:\s*(\d+)\s+Group:\s*(\d+)/.exec(out);
  const size = /Size:\s*(\d+)/.exec(out.slice(owner?.index ?? 0));
  if (!head || !owner || !size) throw new Error(`cannot parse debugfs stat output: ${out.slice(0, 200)}`);
  return {
    type: head[1]!,
    mode: parseInt(head[2]!, 8) & 0o7777,
    uid: Number(owner[1]),
    gid: Number(owner[2]),
    size: Number(size[1]),
  };
}

/** Stat of a guest path in an image (not running), or undefined when absent. */
export async function statInImage(image: string, path: string): Promise<GuestStat | undefined> {
  const p = checkPath(canonicalGuestPath(path));
  const r = await execa('debugfs', ['-R', `stat ${p}`, image], { reject: false });
  if (/File not found by ext2_lookup/.test(r.stderr)) return undefined;
  if (r.exitCode !== 0 || !/Inode:/.test(r.stdout)) throw new Error(`debugfs stat ${p}: ${r.stderr.trim()}`);
  return parseStat(r.stdout);
}

/** Contents of a guest file in an image (not running), or undefined when absent. */
export async function readFromImage(image: string, path: string): Promise<Buffer | undefined> {
  const p = checkPath(canonicalGuestPath(path));
  if (!(await statInImage(image, p))) return undefined;
  const r = await execa('debugfs', ['-R', `cat ${p}`, image], { encoding: 'buffer', reject: false });
  if (r.exitCode !== 0) throw new Error(`debugfs cat ${p}: exit ${r.exitCode}`);
  return Buffer.from(r.stdout);
}

/** Names in a guest directory, or undefined when absent. */
export async function listInImage(image: string, path: string): Promise<string[] | undefined> {
  const p = checkPath(canonicalGuestPath(path));
  if (!(await statInImage(image, p))) return undefined;
  const r = await execa('debugfs', ['-R', `ls ${p}`, image]);
  // `ls` prints "inode (reclen) name" groups; names follow the closing parenthesis.
  return [...r.stdout.matchAll(/\(\d+\)\s+(\S+)/g)]
    .map((m) => m[1]!)
    .filter((n) => n !== '.' && n !== '..');
}

export interface MakeImageOptions {
  /** The cached root filesystem image (Rootfs.image). Never modified. */
  base: string;
  /** Where to write the per-boot image. */
  out: string;
  overlay?: readonly OverlayEntry[];
}

/** Copies the base image and writes the overlay into the copy. Returns `out`. */
export async function makeImage(opts: MakeImageOptions): Promise<string> {
  // Sparse copy: the 2 GiB image holds well under half of that in data.
  await execa('cp', ['--sparse=always', '--reflink=auto', opts.base, opts.out]);
  if (opts.overlay?.length) await applyOverlay(opts.out, opts.overlay);
  return opts.out;
}

/** Writes overlay entries into an ext4 image (parents created root:root 0755 as needed). */
export async function applyOverlay(image: string, overlay: readonly OverlayEntry[]): Promise<void> {
  const text = async (p: string) => (await readFromImage(image, p))?.toString('utf8') ?? '';
  const users = parseIdFile(await text('/etc/passwd'));
  const groups = parseIdFile(await text('/etc/group'));
  const entries = overlay.map((e) => ({ ...e, path: checkPath(canonicalGuestPath(e.path)) }));

  // Which parents exist already: one stat per distinct ancestor.
  const ancestors = new Set<string>();
  for (const e of entries) {
    for (let d = posix.dirname(e.path); d !== '/'; d = posix.dirname(d)) ancestors.add(d);
  }
  const explicitDirs = new Set(entries.filter((e) => e.type === 'dir').map((e) => e.path));
  const missing: string[] = [];
  for (const d of [...ancestors].sort()) {
    if (!explicitDirs.has(d) && !(await statInImage(image, d))) missing.push(d);
  }
  const existing = new Map<string, GuestStat | undefined>();
  for (const e of entries) existing.set(e.path, await statInImage(image, e.path));

  const tmp = await mkdtemp(join(tmpdir(), 'fp-overlay-'));
  try {
    const lines: string[] = [];
    // Directories, shallowest first, so that parents precede children.
    const dirs = [
      ...missing.map((path) => ({ path, mode: 0o755, uid: 0, gid: 0, type: 'dir' as const })),
      ...entries.filter((e): e is OverlayDir & { path: string } => e.type === 'dir'),
    ].sort((a, b) => a.path.split('/').length - b.path.split('/').length);
    for (const d of dirs) {
      const { uid, gid } = resolveOwner(d, users, groups);
      if (!existing.get(d.path)) lines.push(`mkdir ${d.path}`);
      lines.push(`sif ${d.path} mode 0${(0o040000 | d.mode).toString(8)}`);
      lines.push(`sif ${d.path} uid ${uid}`, `sif ${d.path} gid ${gid}`);
    }
    let n = 0;
    for (const e of entries) {
      if (e.type === 'dir') continue;
      if (existing.get(e.path)) lines.push(`rm ${e.path}`);
      if (e.type === 'symlink') {
        lines.push(`symlink ${e.path} ${checkPath(e.target)}`);
        continue;
      }
      let src = e.sourcePath;
      if (src === undefined) {
        if (e.contents === undefined) throw new Error(`overlay file ${e.path} has neither contents nor sourcePath`);
        src = join(tmp, `f${n++}`);
        await writeFile(src, e.contents);
      }
      checkPath(src);
      const { uid, gid } = resolveOwner(e, users, groups);
      lines.push(`write ${src} ${e.path}`);
      lines.push(`sif ${e.path} mode 0${(0o100000 | e.mode).toString(8)}`);
      lines.push(`sif ${e.path} uid ${uid}`, `sif ${e.path} gid ${gid}`);
    }
    await debugfsScript(image, lines, true);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  // Check what we wrote: debugfs reports some failures only as output text.
  for (const e of entries) {
    const st = await statInImage(image, e.path);
    const want = e.type === 'symlink' ? 'symlink' : e.type === 'dir' ? 'directory' : 'regular';
    if (!st || st.type !== want) throw new Error(`overlay: ${e.path} is ${st?.type ?? 'absent'} after writing, want ${want}`);
    if (e.type !== 'symlink' && st.mode !== e.mode) {
      throw new Error(`overlay: ${e.path} has mode ${st.mode.toString(8)}, want ${e.mode.toString(8)}`);
    }
  }
}
