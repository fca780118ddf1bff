// Installs the manifest into a directory, as the recipes' do_install and the systemd class would
// into an image: for tests and for assembling a QEMU image without bitbake.
import { chmod, copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../shared/errors.ts';
import type { ManifestEntry, ManifestSource } from './install-manifest.ts';
import type { RenderedLayer } from './render.ts';

export interface InstallInputs {
  /** The fp-agent bundle file (dist/fp-agent). */
  bundle: string;
  /** The rendered layer (renderLayer's output). */
  layer: RenderedLayer;
  /** config.yaml text, as the config recipe generates it. */
  configYaml: string;
  /** The claim directory holding CLAIM_FILES. */
  claimDir: string;
}

async function bytesOf(source: ManifestSource, inputs: InstallInputs): Promise<Buffer> {
  switch (source.kind) {
    case 'bundle':
      return readFile(inputs.bundle);
    case 'config':
      return Buffer.from(inputs.configYaml, 'utf8');
    case 'claim':
      return readFile(path.join(inputs.claimDir, source.file));
    case 'generated':
      return Buffer.from(source.contents, 'utf8');
    case 'layer': {
      const bytes = inputs.layer.get(source.path);
      if (!bytes) throw new UserError(`the rendered layer has no ${source.path}`);
      return bytes;
    }
  }
}

/** Installs every entry under `rootDir` (ownership is left to the caller: root in an image). */
export async function installToRoot(rootDir: string, manifest: readonly ManifestEntry[], inputs: InstallInputs): Promise<void> {
  for (const entry of manifest) {
    const target = path.join(rootDir, entry.path);
    switch (entry.type) {
      case 'dir':
        await mkdir(target, { recursive: true });
        await chmod(target, entry.mode);
        break;
      case 'file':
        await mkdir(path.dirname(target), { recursive: true });
        if (entry.source.kind === 'bundle') await copyFile(inputs.bundle, target);
        else await writeFile(target, await bytesOf(entry.source, inputs));
        await chmod(target, entry.mode);
        break;
      case 'symlink':
        await mkdir(path.dirname(target), { recursive: true });
        await symlink(entry.target, target);
        break;
    }
  }
}
