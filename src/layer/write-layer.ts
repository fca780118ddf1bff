// Writes a rendered layer to disk and compares one with what is there. The layer directory is
// ours: files in it that the render does not produce are stale and removed, except ignored ones.
import { readFile, readdir, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import type { RenderedLayer } from './render.ts';

/** Not ours to remove or compare: editor and OS litter, and bytecode from running the oeqa case. */
const IGNORED = /(^|\/)(\.DS_Store|__pycache__(\/.*)?|[^/]*\.pyc|[^/]*~|\.[^/]*\.sw[a-p])$/;

async function listFiles(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => !e.isDirectory())
      .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
      .filter((p) => !IGNORED.test(p))
      .sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

export interface LayerDiff {
  /** Rendered but absent on disk. */
  added: string[];
  /** On disk with other bytes. */
  changed: string[];
  /** On disk but no longer rendered. */
  removed: string[];
}

export const isClean = (diff: LayerDiff): boolean =>
  diff.added.length + diff.changed.length + diff.removed.length === 0;

/** What writeLayer(layerDir, layer) would change. */
export async function diffLayer(layerDir: string, layer: RenderedLayer): Promise<LayerDiff> {
  const onDisk = new Set(await listFiles(layerDir));
  const diff: LayerDiff = { added: [], changed: [], removed: [] };
  for (const [rel, bytes] of layer) {
    if (!onDisk.has(rel)) diff.added.push(rel);
    else if (!(await readFile(path.join(layerDir, rel))).equals(bytes)) diff.changed.push(rel);
    onDisk.delete(rel);
  }
  diff.removed = [...onDisk].sort();
  return diff;
}

/**
 * Makes `layerDir` hold exactly the rendered files. Each changed file is written beside its
 * destination and renamed over it, so a reader never sees half a file; unchanged files are not
 * touched (their mtimes stay, and bitbake's parse cache with them). Returns what changed.
 */
export async function writeLayer(layerDir: string, layer: RenderedLayer): Promise<LayerDiff> {
  const diff = await diffLayer(layerDir, layer);
  for (const rel of [...diff.added, ...diff.changed].sort()) {
    await writeFileAtomic(path.join(layerDir, rel), layer.get(rel)!, 0o644);
  }
  for (const rel of diff.removed) {
    await rm(path.join(layerDir, rel), { force: true });
    await removeEmptyParents(layerDir, path.dirname(rel));
  }
  return diff;
}

async function removeEmptyParents(layerDir: string, rel: string): Promise<void> {
  for (let dir = rel; dir !== '.' && dir !== ''; dir = path.dirname(dir)) {
    try {
      await rmdir(path.join(layerDir, dir));
    } catch {
      return; // not empty (or already gone)
    }
  }
}
