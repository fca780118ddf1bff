// What the layer's recipes put on the target, file by file: the same list do_install and the
// systemd class produce. Pure data, so that an image (or a test root) can be assembled exactly as
// the recipes would, without bitbake.
import { UNITS } from '../shared/device-paths.ts';
import { LAYER_PATHS, PATHS, RECIPES, UNIT_MODEL, type RecipeKey } from './model.ts';

/** Where a file's bytes come from. */
export type ManifestSource =
  /** The fp-agent bundle (dist/fp-agent): what FLEETPROV_AGENT_DIR points at. */
  | { kind: 'bundle' }
  /** A file of the rendered layer, by its path inside meta-fleetprovisioning/. */
  | { kind: 'layer'; path: string }
  /** config.yaml as the config recipe generates it from the FLEETPROV_* values. */
  | { kind: 'config' }
  /** A file of the claim directory (FLEETPROV_CLAIM_DIR). */
  | { kind: 'claim'; file: string };

interface EntryBase {
  /** Absolute path on the target. */
  path: string;
  recipe: (typeof RECIPES)[RecipeKey];
  /** `do_install` of the recipe, or `image`: the systemd class enabling SYSTEMD_SERVICE at rootfs time. */
  stage: 'do_install' | 'image';
}

export type ManifestEntry =
  | (EntryBase & { type: 'dir'; mode: number; owner: 'root'; group: 'root' })
  | (EntryBase & { type: 'file'; mode: number; owner: 'root'; group: 'root'; source: ManifestSource })
  /** Made at image time by the systemd class (`systemctl enable` of SYSTEMD_SERVICE). */
  | (EntryBase & { type: 'symlink'; target: string });

const root = { owner: 'root', group: 'root' } as const;
const dir = (path: string, mode: number, recipe: EntryBase['recipe'], stage: EntryBase['stage'] = 'do_install'): ManifestEntry => ({
  type: 'dir',
  path,
  mode,
  recipe,
  stage,
  ...root,
});
const file = (path: string, mode: number, recipe: EntryBase['recipe'], source: ManifestSource): ManifestEntry => ({
  type: 'file',
  path,
  mode,
  recipe,
  source,
  stage: 'do_install',
  ...root,
});

const parent = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';

/**
 * Every directory, file and enablement symlink the recipes install, parents before children.
 * Units go to /usr/lib/systemd/system (`${systemd_system_unitdir}` with usrmerge; /lib/systemd/system
 * without it, which systemd also reads).
 */
export function installManifest(): ManifestEntry[] {
  const { agent, claim, config } = RECIPES;
  const unitDir = PATHS.unitDir;
  const wantsDir = `/etc/systemd/system/${UNIT_MODEL.wantedBy}.wants`;
  const units = (Object.keys(UNITS) as (keyof typeof UNITS)[]).map((key) => ({ key, name: UNITS[key] }));
  const claimFile = (name: string, mode: number): ManifestEntry =>
    file(`${PATHS.claimDir}/${name}`, mode, claim, { kind: 'claim', file: name });

  return [
    dir(parent(PATHS.agentBin), 0o755, agent),
    file(PATHS.agentBin, 0o755, agent, { kind: 'bundle' }),
    dir(unitDir, 0o755, agent),
    ...units.map(({ key, name }) => file(`${unitDir}/${name}`, 0o644, agent, { kind: 'layer', path: LAYER_PATHS.unit(key) })),
    dir(PATHS.outputDir, 0o700, agent),
    dir(wantsDir, 0o755, agent, 'image'),
    ...units.map(
      ({ name }): ManifestEntry => ({ type: 'symlink', path: `${wantsDir}/${name}`, target: `${unitDir}/${name}`, recipe: agent, stage: 'image' }),
    ),
    dir(PATHS.configDir, 0o755, config),
    file(PATHS.configFile, 0o644, config, { kind: 'config' }),
    dir(PATHS.claimDir, 0o700, claim),
    claimFile(PATHS.claimFiles.cert, 0o644),
    claimFile(PATHS.claimFiles.key, 0o600),
    claimFile(PATHS.claimFiles.rootCa, 0o644),
  ];
}
