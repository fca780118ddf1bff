import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOCAL_CONF_VARIABLES } from '../../src/cloud/local-conf.ts';
import type { AgentBundleFacts } from '../../src/layer/agent-bundle.ts';
import { CLASS_NAME, layerFiles, layerModel, RECIPES, CONFIG_FIELDS, LAYER_NAME, VARIABLES } from '../../src/layer/model.ts';
import { loadTemplates, renderLayer, renderProjectLayer, TEMPLATE_DIR } from '../../src/layer/render.ts';
import { diffLayer } from '../../src/layer/write-layer.ts';
import { UNITS } from '../../src/shared/device-paths.ts';
import { ROOT } from '../helpers/run.ts';

/** The facts of a bundle of this version: fp-yocto's own code and one MIT package. */
const facts = (version: string): AgentBundleFacts => ({
  version,
  license: 'Apache-2.0 & MIT',
  packages: [
    { name: 'fp-yocto', version, license: 'Apache-2.0' },
    { name: 'dep', version: '1.0.0', license: 'MIT' },
  ],
  licenseTexts: [
    { package: 'fp-yocto', path: '${COMMON_LICENSE_DIR}/Apache-2.0', md5: '89aea4e17d99a7cacdbeed46a0096b10' },
    { package: 'dep', path: 'fp-agent.licenses/dep/LICENSE', md5: '0123456789abcdef0123456789abcdef' },
  ],
});
const model = (version: string) => layerModel(version, facts(version));

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
    expect(() => renderLayer(model('1.0.0'), new Map(layerFiles('1.0.0').map((f) => [f.template, '<%= layerName %>'])))).toThrow(
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
    const base = model('1.0.0');
    const tricky = '{"Note": "a & b <c>", "DeviceId": "${deviceId}"}';
    const out = renderLayer({ ...base, sampleValues: { ...base.sampleValues, FLEETPROV_TEMPLATE_PARAMS: tricky } }, await loadTemplates());
    expect(text(out, 'conf/fleetprovisioning.conf.sample')).toContain(`FLEETPROV_TEMPLATE_PARAMS = '${tricky}'\n`);
    const spaced = renderLayer(
      { ...base, sampleValues: { ...base.sampleValues, FLEETPROV_CLAIM_DIR: '/home/me/my claim "dir"' } },
      await loadTemplates(),
    );
    expect(text(spaced, 'conf/fleetprovisioning.conf.sample')).toContain(`FLEETPROV_CLAIM_DIR = '/home/me/my claim "dir"'\n`);
  });

  it('names the agent recipe after the version and refuses a bad version', async () => {
    const out = renderLayer(model('2.3.4'), await loadTemplates());
    expect(out.has(`recipes-iot/fleetprovisioning/${RECIPES.agent}_2.3.4.bb`)).toBe(true);
    expect(() => model('latest')).toThrow(/version/);
    // PV is the bundle's version: a layer is never rendered for another bundle.
    expect(() => layerModel('2.3.4', facts('2.3.5'))).toThrow(/fp-agent\.json is for fp-agent 2\.3\.5, not 2\.3\.4: run `npm run build`/);
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

  it('agent recipe: allarch, the bundle from FLEETPROV_AGENT_DIR, both units, nodejs, guarded by the class', () => {
    const recipe = [...layer.keys()].find((k) => k.startsWith(`recipes-iot/fleetprovisioning/${RECIPES.agent}_`));
    const bb = text(layer, recipe!);
    expect(bb).toMatch(new RegExp(`^inherit allarch systemd ${CLASS_NAME}$`, 'm'));
    expect(bb).toContain('FLEETPROV_CHECKS = "nodejs agent"');
    expect(bb).toContain('RDEPENDS:${PN} = "nodejs"');
    expect(bb).toContain('file://fp-agent');
    expect(bb).toContain(`SYSTEMD_SERVICE:\${PN} = "${UNITS.identify} ${UNITS.provision}"`);
    expect(bb).not.toMatch(/^inherit .*\bnpm\b/m);
  });

  it('agent recipe: LICENSE and LIC_FILES_CHKSUM are the bundle facts, each text fetched from FLEETPROV_AGENT_DIR', async () => {
    const out = renderLayer(model('2.3.4'), await loadTemplates());
    const bb = text(out, `recipes-iot/fleetprovisioning/${RECIPES.agent}_2.3.4.bb`);
    const flat = bb.replace(/ \\\n\s*/g, ' ');
    expect(flat).toMatch(/^LICENSE = "Apache-2\.0 & MIT"$/m);
    expect(flat).toMatch(/^LIC_FILES_CHKSUM = " file:\/\/\$\{COMMON_LICENSE_DIR\}\/Apache-2\.0;md5=89aea4e17d99a7cacdbeed46a0096b10 file:\/\/fp-agent\.licenses\/dep\/LICENSE;md5=0123456789abcdef0123456789abcdef "$/m);
    expect(flat).toMatch(/^SRC_URI = " file:\/\/fp-agent file:\/\/fp-agent\.licenses\/dep\/LICENSE file:\/\//m);
    // The class compares the bundle in FLEETPROV_AGENT_DIR with the same facts.
    const cls = text(out, `classes-recipe/${CLASS_NAME}.bbclass`).replace(/ \\\n\s*/g, ' ');
    expect(cls).toContain('FLEETPROV_AGENT_VERSION = "2.3.4"');
    expect(cls).toContain('FLEETPROV_AGENT_LICENSE = "Apache-2.0 & MIT"');
    expect(cls).toContain(
      'FLEETPROV_AGENT_LICENSE_TEXTS = " ${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 fp-agent.licenses/dep/LICENSE;md5=0123456789abcdef0123456789abcdef "',
    );
  });

  it('claim recipe: files from FLEETPROV_CLAIM_DIR, guarded by the class, key 0600', () => {
    const bb = text(layer, `recipes-iot/fleetprovisioning/${RECIPES.claim}.bb`);
    expect(bb).toContain("FILESEXTRAPATHS:prepend := \"${@'${FLEETPROV_CLAIM_DIR}:'");
    expect(bb).toContain('FLEETPROV_CHECKS = "claim"');
    expect(bb).toMatch(/install -m 0600 \$\{S\}\/claim\.key\.pem /);
  });

  it('the systemd gate is the same for every recipe: the class holds it, no recipe sets its own', () => {
    const cls = text(layer, `classes-recipe/${CLASS_NAME}.bbclass`);
    expect(cls).toMatch(/^inherit features_check$/m);
    expect(cls).toMatch(/^REQUIRED_DISTRO_FEATURES \+= "systemd"$/m);
    const recipes = [...layer.keys()].filter((k) => k.endsWith('.bb') || k.endsWith('.bbappend'));
    expect(recipes.length).toBe(8);
    for (const k of recipes) {
      expect(text(layer, k), k).not.toContain('REQUIRED_DISTRO_FEATURES');
      if (k.endsWith('.bb')) expect(text(layer, k), k).toMatch(new RegExp(`^inherit .*\\b${CLASS_NAME}$`, 'm'));
    }
  });

  it('the meta-tpm bbappend adds the TPM tools to the packagegroup only with FLEETPROV_KEY_STORE = "tpm"', () => {
    const append = text(layer, `dynamic-layers/meta-tpm/recipes-iot/packagegroups/${RECIPES.packagegroup}.bbappend`);
    const expression = /^RDEPENDS:\$\{PN\} \+= "\$\{@(.*)\}"$/m.exec(append)![1]!;
    // bitbake evaluates ${@...} with `d`, the datastore: a stand-in that answers getVar.
    const evaluate = (store: string | null) =>
      execFileSync('python3', ['-c', `import sys\nclass D:\n  def getVar(self, n): return ${store === null ? 'None' : JSON.stringify(store)}\nd = D()\nprint(${expression})`], { encoding: 'utf8' }).trim();
    expect(evaluate('tpm')).toBe('tpm2-tools tpm2-openssl libtss2-tcti-device openssl-bin tpm2-tss');
    expect(evaluate(' tpm ')).toBe('tpm2-tools tpm2-openssl libtss2-tcti-device openssl-bin tpm2-tss');
    expect(evaluate('file')).toBe('');
    expect(evaluate(null)).toBe('');
    expect(text(layer, 'conf/layer.conf')).toContain('tpm-layer:${LAYERDIR}/dynamic-layers/meta-tpm/recipes-*/*/*.bbappend');
  });

  it('the meta-tpm bbappend adds tpm2-abrmd only with FLEETPROV_KEY_STORE = "tpm" and FLEETPROV_TPM_TCTI = "tabrmd[:...]"', () => {
    const append = text(layer, `dynamic-layers/meta-tpm/recipes-iot/packagegroups/${RECIPES.packagegroup}.bbappend`);
    const expressions = [...append.matchAll(/^RDEPENDS:\$\{PN\} \+= "\$\{@(.*)\}"$/gm)].map((m) => m[1]!);
    expect(expressions).toHaveLength(2);
    const evaluate = (store: string | null, tcti: string | null) =>
      execFileSync(
        'python3',
        ['-c', `class D:\n  def getVar(self, n): return ${JSON.stringify({ FLEETPROV_KEY_STORE: store, FLEETPROV_TPM_TCTI: tcti }).replace(/null/g, 'None')}.get(n)\nd = D()\nprint(${expressions[1]})`],
        { encoding: 'utf8' },
      ).trim();
    expect(evaluate('tpm', 'tabrmd')).toBe('tpm2-abrmd');
    expect(evaluate('tpm', 'tabrmd:bus_type=system')).toBe('tpm2-abrmd');
    expect(evaluate('tpm', null)).toBe('');
    expect(evaluate('tpm', 'device:/dev/tpmrm0')).toBe('');
    expect(evaluate('file', 'tabrmd')).toBe('');
    expect(evaluate(null, null)).toBe('');
  });

  it('the kas fragment: header version 12, and the site conf required, not included', () => {
    const kas = text(layer, 'kas/fleetprovisioning.yml');
    expect(kas).toMatch(/^header:\n {2}version: 12$/m);
    expect(kas).toMatch(/^ {4}require conf\/fleetprovisioning\.conf$/m);
    expect(kas).not.toMatch(/^\s*include conf\//m);
  });


  it("the Greengrass lite bbappend turns off meta-aws's fleetprovisioning PACKAGECONFIG at parse time, whatever FLEETPROV_GREENGRASS says", () => {
    const append = text(layer, 'dynamic-layers/meta-aws/recipes-iot/aws-iot-greengrass/greengrass-lite_%.bbappend');
    const code = append.split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '');
    // A plain :remove: applied whenever PACKAGECONFIG is read, base.bbclass's flag expansion included.
    expect(code[0]).toBe('PACKAGECONFIG:remove = "fleetprovisioning"');
    // The anonymous python only warns; it changes nothing after the fact.
    expect(code.slice(1)).toEqual([
      'python () {',
      '    asked = bb.data.createCopy(d)',
      "    asked.delVarFlag('PACKAGECONFIG', ':remove')",
      "    if 'fleetprovisioning' in (asked.getVar('PACKAGECONFIG') or '').split():",
      expect.stringMatching(/^        bb\.warn\("meta-fleetprovisioning: PACKAGECONFIG fleetprovisioning of %s is turned off: /),
      '}',
    ]);
    expect(code.join('\n')).not.toMatch(/FLEETPROV_GREENGRASS/);
    expect(code.join('\n')).not.toMatch(/setVar|appendVar/);
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

  it('the config recipe reads every field the model defines, and rebuilds when one changes', () => {
    const cls = text(layer, `classes-recipe/${CLASS_NAME}.bbclass`);
    const bb = text(layer, `recipes-iot/fleetprovisioning/${RECIPES.config}.bb`);
    for (const f of CONFIG_FIELDS) {
      expect(cls).toContain(`    ${f.variable},${f.key.join('.')},${f.type},`);
      expect(bb).toMatch(new RegExp(`^do_compile\\[vardeps\\] \\+= ".*\\b${f.variable}\\b`, 'm'));
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
