// Turns the layer's install manifest (src/layer/install-manifest.ts: what the recipes install) into
// the overlay that image.ts writes, so the QEMU image holds exactly the recipes' files, modes,
// owners and enablement symlinks. Pure; typed structurally so this part does not depend on the
// layer's module, only on the shape of its entries.
import type { OverlayEntry } from './image.ts';

export interface ManifestLikeEntry<S> {
  type: 'dir' | 'file' | 'symlink';
  path: string;
  mode?: number;
  owner?: string;
  group?: string;
  target?: string;
  source?: S;
}

/** Where a manifest file's bytes come from on the host (the bundle, the rendered layer, …). */
export type SourceResolver<S> = (
  source: S,
  entry: ManifestLikeEntry<S>,
) => { contents: string | Uint8Array } | { sourcePath: string };

export function overlayFromManifest<S>(
  entries: readonly ManifestLikeEntry<S>[],
  resolve: SourceResolver<S>,
): OverlayEntry[] {
  return entries.map((e): OverlayEntry => {
    switch (e.type) {
      case 'symlink':
        if (!e.target) throw new Error(`manifest symlink ${e.path} has no target`);
        return { type: 'symlink', path: e.path, target: e.target };
      case 'dir':
        if (e.mode === undefined) throw new Error(`manifest dir ${e.path} has no mode`);
        return { type: 'dir', path: e.path, mode: e.mode, owner: e.owner, group: e.group };
      case 'file': {
        if (e.mode === undefined) throw new Error(`manifest file ${e.path} has no mode`);
        if (e.source === undefined) throw new Error(`manifest file ${e.path} has no source`);
        return { type: 'file', path: e.path, mode: e.mode, owner: e.owner, group: e.group, ...resolve(e.source, e) };
      }
    }
  });
}
