import { describe, expect, it } from 'vitest';
import { toBitbakePath } from '../../src/layer/bitbake.ts';
import { installManifest } from '../../src/layer/install-manifest.ts';
import { PATHS, RECIPES } from '../../src/layer/model.ts';
import { renderProjectLayer } from '../../src/layer/render.ts';
import { AGENT_BIN, CLAIM_DIR, CLAIM_FILES, CONFIG_FILE, OUTPUT_DIR, UNITS } from '../../src/shared/device-paths.ts';

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
  ])('matches what each recipe installs (path, mode, group): %s', (_, values: Record<string, string>) => {
    for (const entry of installManifest(values)) {
      if (entry.stage === 'image' || entry.type === 'symlink') continue; // the systemd class enables the units in the rootfs
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

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
