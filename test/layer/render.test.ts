import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOCAL_CONF_VARIABLES } from '../../src/cloud/local-conf.ts';
import { layerFiles, layerModel, RECIPES, CONFIG_FIELDS, LAYER_NAME, VARIABLES } from '../../src/layer/model.ts';
import { loadTemplates, renderLayer, renderProjectLayer, TEMPLATE_DIR } from '../../src/layer/render.ts';
import { diffLayer } from '../../src/layer/write-layer.ts';
import { UNITS } from '../../src/shared/device-paths.ts';
import { ROOT } from '../helpers/run.ts';

const text = (layer: ReadonlyMap<string, Buffer>, rel: string): string => {
  const bytes = layer.get(rel);
  if (!bytes) throw new Error(`not rendered: ${rel}`);
  return bytes.toString('utf8');
};

describe('the rendered layer', async () => {
  const layer = await renderProjectLayer();

  it('is byte-stable: two renders are identical, in sorted order', async () => {
    const again = await renderProjectLayer();
    expect([...again.keys()]).toEqual([...layer.keys()]);
    for (const [rel, bytes] of layer) expect(again.get(rel)!.equals(bytes), rel).toBe(true);
    expect([...layer.keys()]).toEqual([...layer.keys()].sort());
  });

  it('is what is committed at meta-fleetprovisioning/ (run `fp-yocto render` after editing a template)', async () => {
    const diff = await diffLayer(path.join(ROOT, LAYER_NAME), layer);
    expect(diff).toEqual({ added: [], changed: [], removed: [] });
  });

  it('uses every template, and only templates that exist', async () => {
    const templates = await loadTemplates();
    expect([...templates.keys()].sort()).toEqual(layerFiles('1.0.0').map((f) => f.template).sort());
  });

  it('never uses `<%=` (it HTML-escapes) in a template', async () => {
    for (const [name, source] of await loadTemplates()) expect(source, name).not.toMatch(/<%=/);
    const model = layerModel('1.0.0');
    expect(() => renderLayer(model, new Map(layerFiles('1.0.0').map((f) => [f.template, '<%= layerName %>'])))).toThrow(
      /`<%=` is not allowed/,
    );
  });

  it('holds no host path, date or HTML entity', () => {
    for (const [rel, bytes] of layer) {
      const s = bytes.toString('utf8');
      expect(s, rel).not.toContain(ROOT);
      expect(s, rel).not.toMatch(/&#\d+;|&quot;|&amp;/);
      expect(s, rel).not.toMatch(/\b20\d\d-\d\d-\d\d\b/);
      expect(s.endsWith('\n') && !s.endsWith('\n\n'), rel).toBe(true);
    }
  });

  it('writes values with quotes, & and ${ unescaped (ejs <%- and bbQuote)', async () => {
    const model = layerModel('1.0.0');
    const tricky = '{"Note": "a & b <c>", "DeviceId": "${deviceId}"}';
    const out = renderLayer({ ...model, sampleValues: { ...model.sampleValues, FLEETPROV_TEMPLATE_PARAMS: tricky } }, await loadTemplates());
    expect(text(out, 'conf/fleetprovisioning.conf.sample')).toContain(`FLEETPROV_TEMPLATE_PARAMS = '${tricky}'\n`);
    const spaced = renderLayer(
      { ...model, sampleValues: { ...model.sampleValues, FLEETPROV_CLAIM_DIR: '/home/me/my claim "dir"' } },
      await loadTemplates(),
    );
    expect(text(spaced, 'conf/fleetprovisioning.conf.sample')).toContain(`FLEETPROV_CLAIM_DIR = '/home/me/my claim "dir"'\n`);
  });

  it('names the agent recipe after the version and refuses a bad version', async () => {
    const out = renderLayer(layerModel('2.3.4'), await loadTemplates());
    expect(out.has(`recipes-iot/fleetprovisioning/${RECIPES.agent}_2.3.4.bb`)).toBe(true);
    expect(() => layerModel('latest')).toThrow(/version/);
  });

  it('lists in the conf sample and README every variable `init` writes, and the agent dir', () => {
    const sample = text(layer, 'conf/fleetprovisioning.conf.sample');
    const readme = text(layer, 'README.md');
    for (const name of [...Object.keys(LOCAL_CONF_VARIABLES), 'FLEETPROV_AGENT_DIR']) {
      expect(sample).toMatch(new RegExp(`^${name} = `, 'm'));
      expect(readme).toContain(`\`${name}\``);
    }
    expect(Object.keys(VARIABLES).every((n) => n.startsWith('FLEETPROV_'))).toBe(true);
    expect(sample).toMatch(/^INIT_MANAGER = "systemd"$/m);
  });

  it('layer.conf: series, dependencies, dynamic layer and the nodejs exclusion', () => {
    const conf = text(layer, 'conf/layer.conf');
    expect(conf).toContain('LAYERSERIES_COMPAT_fleetprovisioning = "scarthgap wrynose"');
    expect(conf).toContain('LAYERDEPENDS_fleetprovisioning += "core"');
    expect(conf).toContain('LAYERDEPENDS_fleetprovisioning += "openembedded-layer"');
    expect(conf).toContain('meta-aws:${LAYERDIR}/dynamic-layers/meta-aws/recipes-*/*/*.bbappend');
    expect(conf).toContain(`${RECIPES.agent}->nodejs`);
  });

  it('agent recipe: allarch, the bundle from FLEETPROV_AGENT_DIR, both units, nodejs, systemd', () => {
    const recipe = [...layer.keys()].find((k) => k.startsWith(`recipes-iot/fleetprovisioning/${RECIPES.agent}_`));
    const bb = text(layer, recipe!);
    expect(bb).toMatch(/^inherit allarch systemd features_check$/m);
    expect(bb).toContain('REQUIRED_DISTRO_FEATURES = "systemd"');
    expect(bb).toContain('RDEPENDS:${PN} = "nodejs"');
    expect(bb).toContain('file://fp-agent');
    expect(bb).toContain(`SYSTEMD_SERVICE:\${PN} = "${UNITS.identify} ${UNITS.provision}"`);
    expect(bb).toContain('raise bb.parse.SkipRecipe("FLEETPROV_AGENT_DIR is not set');
    expect(bb).not.toMatch(/^inherit .*\bnpm\b/m);
  });

  it('claim recipe: files from FLEETPROV_CLAIM_DIR, guarded, key 0600', () => {
    const bb = text(layer, `recipes-iot/fleetprovisioning/${RECIPES.claim}.bb`);
    expect(bb).toContain("FILESEXTRAPATHS:prepend := \"${@'${FLEETPROV_CLAIM_DIR}:'");
    expect(bb).toContain('raise bb.parse.SkipRecipe("FLEETPROV_CLAIM_DIR is not set');
    expect(bb).toMatch(/install -m 0600 \$\{S\}\/claim\.key\.pem /);
  });

  it('the Greengrass lite bbappend is inert unless FLEETPROV_GREENGRASS = "1"', () => {
    const append = text(layer, 'dynamic-layers/meta-aws/recipes-iot/aws-iot-greengrass/greengrass-lite_%.bbappend');
    const code = append.split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '');
    expect(code[0]).toBe('python () {');
    expect(code[1]).toContain("d.getVar('FLEETPROV_GREENGRASS') != '1'");
    expect(code[2]?.trim()).toBe('return');
  });

  it("the Greengrass lite bbappend turns off meta-aws's fleetprovisioning PACKAGECONFIG with a real :remove", () => {
    const append = text(layer, 'dynamic-layers/meta-aws/recipes-iot/aws-iot-greengrass/greengrass-lite_%.bbappend');
    const code = append.split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '');
    // Only the anonymous python: a static PACKAGECONFIG:remove would change greengrass-lite's
    // signatures for every meta-aws user, even when it expands to nothing.
    expect(code[0]).toBe('python () {');
    expect(code.at(-1)).toBe('}');
    expect(code.slice(1, -1).every((l) => l.startsWith('    '))).toBe(true);
    expect(code).toEqual([
      'python () {',
      "    if d.getVar('FLEETPROV_GREENGRASS') != '1':",
      '        return',
      "    if bb.utils.contains('PACKAGECONFIG', 'fleetprovisioning', True, False, d):",
      expect.stringMatching(/^        bb\.note\('meta-fleetprovisioning: PACKAGECONFIG fleetprovisioning of %s turned off: /),
      "        d.setVar('PACKAGECONFIG:remove', 'fleetprovisioning')",
      '}',
    ]);
    // d.appendVar('X:remove', v) sets X:remove:append, which bitbake reads as a :remove under an
    // override named "append": it never applies (measured with bitbake 2.18 + meta-aws wrynose).
    expect(code.join('\n')).not.toMatch(/(append|prepend)Var\(\s*'PACKAGECONFIG:remove'/);
  });

  it('README passes yocto-check-layer test_readme for real: maintainer, patch, email, and no word README', () => {
    // test_readme returns early (skipping the three checks) when the file contains "readme" anywhere.
    const readme = text(layer, 'README.md');
    expect(readme).not.toMatch(/readme/i);
    expect(readme.toLowerCase()).toContain('maintainer');
    expect(readme.toLowerCase()).toContain('patch');
    expect(readme).toMatch(/[^@\s]+@[^@\s]+\.[a-z]+/);
    expect(readme.split('\n')[0]).toContain('Generated by `fp-yocto render`');
    expect(text(layer, 'SECURITY.md').length).toBeGreaterThan(0);
  });

  it('the config recipe reads every field the model defines', () => {
    const bb = text(layer, `recipes-iot/fleetprovisioning/${RECIPES.config}.bb`);
    for (const f of CONFIG_FIELDS) {
      expect(bb).toContain(`    ${f.variable},${f.key.join('.')},${f.type},`);
      expect(bb).toMatch(new RegExp(`^do_install\\[vardeps\\] \\+= ".*\\b${f.variable}\\b`, 'm'));
    }
  });

  it(`every template is under ${TEMPLATE_DIR}/ and mirrors the layer's folders`, async () => {
    const files = (await readdir(path.join(ROOT, TEMPLATE_DIR), { recursive: true })).filter((f) => f.endsWith('.ejs'));
    for (const f of layerFiles('1.0.0')) {
      expect(files).toContain(f.template.split('/').join(path.sep));
      expect(path.dirname(f.path).startsWith(path.dirname(f.template)), f.path).toBe(true);
    }
  });
});
