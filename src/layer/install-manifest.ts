// What the layer's recipes put on the target, file by file: the same list do_install and the
// systemd class produce. Pure data, so that an image (or a test root) can be assembled exactly as
// the recipes would, without bitbake.
import { GREENGRASS_GROUP, UNITS } from '../shared/device-paths.ts';
import type { RecipeValues } from './config-yaml.ts';
import { TPM_DROP_IN_NAME, TPM_OPENSSL_CONF, tpmDropIn, tpmOpensslConf } from './greengrass-tpm.ts';
import { GREENGRASS_UNITS_LOADING_KEY, LAYER_PATHS, OUTPUT_DIR_MODES, PATHS, RECIPES, UNIT_MODEL, type RecipeKey } from './model.ts';

/** Where a file's bytes come from. */
export type ManifestSource =
  /** The fp-agent bundle (dist/fp-agent): what FLEETPROV_AGENT_DIR points at. */
  | { kind: 'bundle' }
  /** A file of the rendered layer, by its path inside meta-fleetprovisioning/. */
  | { kind: 'layer'; path: string }
  /** config.yaml as the config recipe generates it from the FLEETPROV_* values. */
  | { kind: 'config' }
  /** A file of the claim directory (FLEETPROV_CLAIM_DIR). */
  | { kind: 'claim'; file: string }
  /** Text the recipe writes itself, from the same function (src/layer/greengrass-tpm.ts). */
  | { kind: 'generated'; contents: string };

interface EntryBase {
  /** Absolute path on the target. */
  path: string;
  recipe: (typeof RECIPES)[RecipeKey];
  /** `do_install` of the recipe, or `image`: the systemd class enabling SYSTEMD_SERVICE at rootfs time. */
  stage: 'do_install' | 'image';
}

/** Owners by name, as do_install gives them (pseudo resolves them in the recipe's sysroot). */
interface Owned {
  mode: number;
  owner: 'root';
  /** `root`, or the Greengrass group (FLEETPROV_GREENGRASS_GROUP) that the config recipe creates. */
  group: string;
}

export type ManifestEntry =
  | (EntryBase & Owned & { type: 'dir' })
  | (EntryBase & Owned & { type: 'file'; source: ManifestSource })
  /** Made at image time by the systemd class (`systemctl enable` of SYSTEMD_SERVICE). */
  | (EntryBase & { type: 'symlink'; target: string });

const root = { owner: 'root', group: 'root' } as const;
const dir = (path: string, mode: number, recipe: EntryBase['recipe'], stage: EntryBase['stage'] = 'do_install', group = 'root'): ManifestEntry => ({
  type: 'dir',
  path,
  mode,
  recipe,
  stage,
  ...root,
  group,
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
 * Every directory, file and enablement symlink the recipes install with these FLEETPROV_* values
 * (unset ones take the recipes' defaults), parents before children. Only FLEETPROV_GREENGRASS (or
 * FLEETPROV_HANDOFF) and FLEETPROV_GREENGRASS_GROUP change it (the output directory's group and
 * mode), FLEETPROV_PROXY_URL (config.yaml is 0600 when it holds credentials), and
 * FLEETPROV_KEY_STORE = "tpm" with Greengrass: then the config recipe adds Greengrass lite's OpenSSL
 * configuration and its services' drop-ins (src/layer/greengrass-tpm.ts), with FLEETPROV_TPM_TCTI.
 * Units go to /usr/lib/systemd/system (`${systemd_system_unitdir}` with usrmerge; /lib/systemd/system
 * without it, which systemd also reads).
 */
export function installManifest(values: RecipeValues = {}): ManifestEntry[] {
  const { agent, claim, config } = RECIPES;
  // As the bbclass's FLEETPROV_GREENGRASS_ENABLED and FLEETPROV_CONFIG_MODE read them.
  const greengrass = (values.FLEETPROV_GREENGRASS ?? '').trim() === '1' || (values.FLEETPROV_HANDOFF ?? '').trim() === 'greengrass';
  const configMode = (values.FLEETPROV_PROXY_URL ?? '').includes('@') ? 0o600 : 0o644;
  const group = (values.FLEETPROV_GREENGRASS_GROUP ?? '').trim() || GREENGRASS_GROUP;
  const unitDir = PATHS.unitDir;
  const wantsDir = `/etc/systemd/system/${UNIT_MODEL.wantedBy}.wants`;
  const units = (Object.keys(UNITS) as (keyof typeof UNITS)[]).map((key) => ({ key, name: UNITS[key] }));
  const tpmKey = (values.FLEETPROV_KEY_STORE ?? '').trim() === 'tpm';
  // The config recipe's fleetprov_install_greengrass_tpm, added to do_install in that case only.
  const greengrassTpm = (): ManifestEntry[] => [
    file(TPM_OPENSSL_CONF, 0o644, config, { kind: 'generated', contents: tpmOpensslConf() }),
    ...GREENGRASS_UNITS_LOADING_KEY.flatMap((unit) => [
      dir(`${unitDir}/${unit}.d`, 0o755, config),
      file(`${unitDir}/${unit}.d/${TPM_DROP_IN_NAME}`, 0o644, config, { kind: 'generated', contents: tpmDropIn(values.FLEETPROV_TPM_TCTI) }),
    ]),
  ];
  const claimFile = (name: string, mode: number): ManifestEntry =>
    file(`${PATHS.claimDir}/${name}`, mode, claim, { kind: 'claim', file: name });

  return [
    dir(parent(PATHS.agentBin), 0o755, agent),
    file(PATHS.agentBin, 0o755, agent, { kind: 'bundle' }),
    dir(unitDir, 0o755, agent),
    ...units.map(({ key, name }) => file(`${unitDir}/${name}`, 0o644, agent, { kind: 'layer', path: LAYER_PATHS.unit(key) })),
    dir(wantsDir, 0o755, agent, 'image'),
    ...units.map(
      ({ name }): ManifestEntry => ({ type: 'symlink', path: `${wantsDir}/${name}`, target: `${unitDir}/${name}`, recipe: agent, stage: 'image' }),
    ),
    dir(PATHS.configDir, 0o755, config),
    file(PATHS.configFile, configMode, config, { kind: 'config' }),
    greengrass
      ? dir(PATHS.outputDir, OUTPUT_DIR_MODES.greengrass, config, 'do_install', group)
      : dir(PATHS.outputDir, OUTPUT_DIR_MODES.standalone, config),
    ...(greengrass && tpmKey ? greengrassTpm() : []),
    dir(PATHS.claimDir, 0o700, claim),
    claimFile(PATHS.claimFiles.cert, 0o644),
    claimFile(PATHS.claimFiles.key, 0o600),
    claimFile(PATHS.claimFiles.rootCa, 0o644),
  ];
}
