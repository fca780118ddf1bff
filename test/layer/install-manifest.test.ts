import { describe, expect, it } from 'vitest';
import { toBitbakePath } from '../../src/layer/bitbake.ts';
import { installManifest } from '../../src/layer/install-manifest.ts';
import { GREENGRASS_UNITS_LOADING_KEY, PATHS, RECIPES } from '../../src/layer/model.ts';
import { TPM_OPENSSL_CONF, systemdWord, tpmDropIn, tpmOpensslConf } from '../../src/layer/greengrass-tpm.ts';
import { renderProjectLayer } from '../../src/layer/render.ts';
import { AGENT_BIN, CLAIM_DIR, CLAIM_FILES, CONFIG_FILE, OUTPUT_DIR, UNITS } from '../../src/shared/device-paths.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { runConfigRecipeInstall } from './recipe-python.ts';

describe('the install manifest', async () => {
  const layer = await renderProjectLayer();
  const recipeText = (name: string): string => {
    const key = [...layer.keys()].find((k) => k.endsWith(`/${name}.bb`) || k.includes(`/${name}_`));
    return layer.get(key!)!.toString('utf8');
  };
  const bbclassText = (): string => layer.get([...layer.keys()].find((k) => k.endsWith('.bbclass'))!)!.toString('utf8');

  it('lists the shared device paths with their modes', () => {
    const byPath = new Map(installManifest().map((e) => [e.path, e]));
    expect(byPath.get(AGENT_BIN)).toMatchObject({ type: 'file', mode: 0o755, source: { kind: 'bundle' } });
    expect(byPath.get(CONFIG_FILE)).toMatchObject({ type: 'file', mode: 0o644, source: { kind: 'config' } });
    expect(byPath.get(`${CLAIM_DIR}/${CLAIM_FILES.key}`)).toMatchObject({ mode: 0o600, source: { kind: 'claim' } });
    expect(byPath.get(CLAIM_DIR)).toMatchObject({ type: 'dir', mode: 0o700 });
    for (const unit of Object.values(UNITS)) {
      expect(byPath.get(`${PATHS.unitDir}/${unit}`)).toMatchObject({ type: 'file', mode: 0o644 });
      expect(byPath.get(`/etc/systemd/system/multi-user.target.wants/${unit}`)).toMatchObject({ type: 'symlink' });
    }
  });

  it('lists parents before children and each path once', () => {
    const paths = installManifest().map((e) => e.path);
    expect(new Set(paths).size).toBe(paths.length);
    paths.forEach((p, i) => {
      const parent = p.slice(0, p.lastIndexOf('/'));
      const at = paths.indexOf(parent);
      if (at !== -1) expect(at, p).toBeLessThan(i);
    });
  });

  it('gives the output directory to the Greengrass group with Greengrass, to root otherwise (the agent keeps it so)', () => {
    const outputDir = (values: Record<string, string>) => installManifest(values).find((e) => e.path === OUTPUT_DIR);
    expect(outputDir({})).toMatchObject({ type: 'dir', mode: 0o700, owner: 'root', group: 'root', recipe: RECIPES.config });
    expect(outputDir({ FLEETPROV_GREENGRASS: '0' })).toMatchObject({ mode: 0o700, group: 'root' });
    expect(outputDir({ FLEETPROV_GREENGRASS: '1' })).toMatchObject({ mode: 0o750, owner: 'root', group: 'ggcore', recipe: RECIPES.config });
    expect(outputDir({ FLEETPROV_GREENGRASS: '1', FLEETPROV_GREENGRASS_GROUP: 'gg_users' })).toMatchObject({ mode: 0o750, group: 'gg_users' });
    // Nothing else depends on the setting, and nothing else belongs to a group but root's.
    const others = (values: Record<string, string>) => installManifest(values).filter((e) => e.path !== OUTPUT_DIR);
    expect(others({ FLEETPROV_GREENGRASS: '1' })).toEqual(others({}));
    for (const e of others({ FLEETPROV_GREENGRASS: '1' })) if (e.type !== 'symlink') expect(e.group, e.path).toBe('root');
  });

  it.each([
    ['standalone', {}],
    ['Greengrass', { FLEETPROV_GREENGRASS: '1', FLEETPROV_GREENGRASS_GROUP: 'gg_users' }],
    ['Greengrass by FLEETPROV_HANDOFF', { FLEETPROV_HANDOFF: 'greengrass', FLEETPROV_GREENGRASS_GROUP: 'gg_users' }],
    ['a proxy URL with credentials (config.yaml root-only)', { FLEETPROV_PROXY_URL: 'http://u:p@proxy:3128' }],
    ['a TPM key with Greengrass', { FLEETPROV_GREENGRASS: '1', FLEETPROV_GREENGRASS_GROUP: 'gg_users', FLEETPROV_KEY_STORE: 'tpm' }],
  ])('matches what each recipe installs (path, mode, group): %s', (_, values: Record<string, string>) => {
    for (const entry of installManifest(values)) {
      if (entry.stage === 'image' || entry.type === 'symlink') continue; // the systemd class enables the units in the rootfs
      if (byRecipePython(entry)) continue; // written by the recipe's Python: the test below runs it
      const recipe = recipeText(entry.recipe);
      const bbPath = entry.path.startsWith(PATHS.unitDir) ? entry.path.replace(PATHS.unitDir, '${systemd_system_unitdir}') : toBitbakePath(entry.path);
      let mode = entry.mode.toString(8).padStart(4, '0');
      // config.yaml's mode is the class's FLEETPROV_CONFIG_MODE: 0600 when the proxy URL holds credentials.
      if (entry.path === PATHS.configFile) {
        expect(mode).toBe((values.FLEETPROV_PROXY_URL ?? '').includes('@') ? '0600' : '0644');
        expect(bbclassText()).toContain(`FLEETPROV_CONFIG_MODE = "\${@'0600' if '@' in (d.getVar('FLEETPROV_PROXY_URL') or '') else '0644'}"`);
        mode = '${FLEETPROV_CONFIG_MODE}';
      }
      // do_install sets a group other than root's from the variable: pseudo resolves it in the sysroot.
      if (entry.group !== 'root') expect(entry.group).toBe(values.FLEETPROV_GREENGRASS_GROUP);
      const group = entry.group === 'root' ? '' : '-g \\$\\{FLEETPROV_GREENGRASS_GROUP\\} ';
      if (entry.type === 'dir') {
        expect(recipe, entry.path).toMatch(new RegExp(`install -d (-m ${escape(mode)} )?${group}\\$\\{D\\}${escape(bbPath)}$`, 'm'));
      } else {
        const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
        expect(recipe, entry.path).toMatch(new RegExp(`install -m ${escape(mode)} \\$\\{[SB]\\}/${escape(name)} \\$\\{D\\}${escape(bbPath.slice(0, bbPath.lastIndexOf('/')))}/`, 'm'));
      }
    }
  });
});

/** What the config recipe's fleetprov_install_greengrass_tpm writes (not install(1) lines). */
const byRecipePython = (e: ReturnType<typeof installManifest>[number]): boolean =>
  (e.type === 'file' && e.source.kind === 'generated') || (e.type === 'dir' && e.path.endsWith('.service.d'));

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('the TPM key files for Greengrass lite (config recipe)', async () => {
  const layer = await renderProjectLayer();
  const generated = (values: Record<string, string>) => installManifest(values).filter(byRecipePython);
  const dropInPaths = GREENGRASS_UNITS_LOADING_KEY.map((u) => `${PATHS.unitDir}/${u}.d/50-fleetprovisioning-tpm.conf`);

  it('are installed only with FLEETPROV_KEY_STORE = "tpm" and the Greengrass hand-off', () => {
    expect(generated({ FLEETPROV_KEY_STORE: 'tpm' })).toEqual([]);
    expect(generated({ FLEETPROV_GREENGRASS: '1' })).toEqual([]);
    expect(generated({ FLEETPROV_HANDOFF: 'none', FLEETPROV_KEY_STORE: 'tpm' })).toEqual([]);
    // A key store other than tpm leaves the manifest exactly as it was.
    expect(installManifest({ FLEETPROV_GREENGRASS: '1', FLEETPROV_KEY_STORE: 'file' })).toEqual(installManifest({ FLEETPROV_GREENGRASS: '1' }));
    const tpmGreengrass: Record<string, string>[] = [
      { FLEETPROV_GREENGRASS: '1', FLEETPROV_KEY_STORE: 'tpm' },
      { FLEETPROV_HANDOFF: 'greengrass', FLEETPROV_KEY_STORE: ' tpm ' },
    ];
    for (const values of tpmGreengrass) {
      expect(generated(values).map((e) => [e.path, e.type, e.type === 'symlink' ? null : e.mode, e.recipe])).toEqual([
        [TPM_OPENSSL_CONF, 'file', 0o644, RECIPES.config],
        ...GREENGRASS_UNITS_LOADING_KEY.flatMap((u, i) => [
          [`${PATHS.unitDir}/${u}.d`, 'dir', 0o755, RECIPES.config],
          [dropInPaths[i], 'file', 0o644, RECIPES.config],
        ]),
      ]);
    }
  });

  it('name the three Greengrass lite services that load privateKeyPath with OpenSSL', () => {
    expect([...GREENGRASS_UNITS_LOADING_KEY]).toEqual(['ggl.core.iotcored.service', 'ggl.core.tesd.service', 'ggl.core.ggdeploymentd.service']);
  });

  it.each<[string, Record<string, string>]>([
    ['the default TCTI', { FLEETPROV_GREENGRASS: '1', FLEETPROV_KEY_STORE: 'tpm' }],
    ['tabrmd by FLEETPROV_HANDOFF', { FLEETPROV_HANDOFF: 'greengrass', FLEETPROV_KEY_STORE: 'tpm', FLEETPROV_TPM_TCTI: ' tabrmd:bus_type=system ' }],
    ['a TCTI systemd must quote', { FLEETPROV_GREENGRASS: '1', FLEETPROV_KEY_STORE: 'tpm', FLEETPROV_TPM_TCTI: `mssim:host="a\\b",x=50%'y'` }],
    ['Greengrass with a file key', { FLEETPROV_GREENGRASS: '1', FLEETPROV_KEY_STORE: 'file' }],
    ['a TPM key without Greengrass', { FLEETPROV_KEY_STORE: 'tpm' }],
    ['the defaults', {}],
  ])('are what the recipe writes, byte for byte, with its FILES and RDEPENDS: %s', async (_, values) => {
    const run = runConfigRecipeInstall(layer, await tmpDir('fp-recipe-d-'), values);
    const expected = generated(values);
    if (expected.length === 0) {
      expect(run).toEqual({ postfuncs: [], files: [], rdepends: [], tree: [] });
      return;
    }
    expect(run.postfuncs).toEqual(['fleetprov_install_greengrass_tpm']);
    expect(run.rdepends).toEqual(['tpm2-openssl', 'tpm2-tss']);
    const bbPath = (p: string) => (p.startsWith(PATHS.unitDir) ? p.replace(PATHS.unitDir, '${systemd_system_unitdir}') : toBitbakePath(p));
    expect(run.files).toEqual(expected.filter((e) => e.type === 'file').map((e) => bbPath(e.path)));
    const written = new Map(run.tree.map((e) => [e.path, e]));
    for (const e of expected) {
      if (e.type === 'symlink') throw new Error(`unexpected symlink ${e.path}`);
      expect(written.get(e.path), e.path).toEqual(
        e.type === 'file' && e.source.kind === 'generated'
          ? { path: e.path, type: 'file', mode: e.mode, contents: e.source.contents }
          : { path: e.path, type: e.type, mode: e.mode },
      );
    }
    // Nothing else but the parents of those.
    const files = run.tree.filter((e) => e.type === 'file').map((e) => e.path);
    expect(files.sort()).toEqual(expected.filter((e) => e.type === 'file').map((e) => e.path).sort());
  });

  it('give Greengrass lite an OpenSSL configuration activating the default and tpm2 providers, as TPM_SUPPORT.md does', () => {
    const conf = tpmOpensslConf();
    expect(conf).toMatch(/^openssl_conf = openssl_init$/m);
    expect(conf).toContain('[openssl_init]\nproviders = provider_sect\n');
    expect(conf).toContain('[provider_sect]\ndefault = default_sect\ntpm2 = tpm2_sect\n');
    expect(conf).toContain('[default_sect]\nactivate = 1\n');
    expect(conf).toContain('[tpm2_sect]\nidentity = tpm2\nactivate = 1\n');
    expect(conf).not.toMatch(/default_properties|^module/m);
    expect(TPM_OPENSSL_CONF).not.toBe('/etc/ssl/openssl.cnf');
  });

  it('give each service the configuration, the TCTI and the tss group in a drop-in', () => {
    expect(tpmDropIn().split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([
      '[Service]',
      `Environment=OPENSSL_CONF=${TPM_OPENSSL_CONF}`,
      'Environment=TPM2OPENSSL_TCTI=device:/dev/tpmrm0',
      'SupplementaryGroups=tss',
    ]);
    expect(tpmDropIn('  ')).toContain('Environment=TPM2OPENSSL_TCTI=device:/dev/tpmrm0\n');
    expect(tpmDropIn('tabrmd:bus_type=system')).toContain('Environment=TPM2OPENSSL_TCTI=tabrmd:bus_type=system\n');
  });

  it('write a TCTI as one systemd Environment= word, specifiers and quotes escaped', () => {
    expect(systemdWord('A=device:/dev/tpmrm0')).toBe('A=device:/dev/tpmrm0');
    expect(systemdWord('A=x,y=50%')).toBe('A=x,y=50%%');
    expect(systemdWord(`A=host="a\\b",n='c'`)).toBe(`"A=host=\\"a\\\\b\\",n='c'"`);
  });
});
