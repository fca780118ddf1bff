// Licence compliance of the agent bundle: what `npm run build` ships beside dist/fp-agent (the
// licence texts and fp-agent.json, from esbuild's metafile of the real bundle), and what the agent
// recipe's LICENSE and LIC_FILES_CHKSUM are rendered from.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { AGENT_FACTS_FILE, combinedLicense, readAgentFacts, spdxToOe } from '../../src/layer/agent-bundle.ts';
import { RECIPES } from '../../src/layer/model.ts';
import { renderProjectLayer } from '../../src/layer/render.ts';
import { bundledPackageDirs, writeAgentLicenses } from '../../scripts/licenses.ts';
import { ROOT } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';

const md5 = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

describe('spdxToOe', () => {
  it.each([
    ['MIT', 'MIT'],
    ['(MIT OR Apache-2.0)', 'MIT | Apache-2.0'],
    ['MIT AND ISC', 'MIT & ISC'],
    ['(MIT OR (ISC AND BSD-3-Clause))', 'MIT | (ISC & BSD-3-Clause)'],
  ])('reads %s as %s', (spdx, oe) => expect(spdxToOe(spdx)).toBe(oe));

  it('refuses a licence nobody has reviewed for the bundle, naming it', () => {
    expect(() => spdxToOe('GPL-3.0-only')).toThrow(/licence "GPL-3\.0-only" is not one the agent bundle may contain \(accepted: /);
    expect(() => spdxToOe('(MIT OR WTFPL)')).toThrow(/"WTFPL"/);
    expect(() => spdxToOe('MIT, ISC')).toThrow(/cannot read the licence expression/);
  });

  it('combines expressions into every licence named, once, sorted', () => {
    expect(combinedLicense(['MIT', 'Apache-2.0', 'MIT | ISC'])).toBe('Apache-2.0 & ISC & MIT');
  });
});

/** A project with its own code and node_modules, bundled by esbuild for real. */
async function project(deps: Record<string, { license?: string; files?: Record<string, string>; used?: boolean }>) {
  const root = await tmpDir('fp-licenses-');
  await writeFile(path.join(root, 'package.json'), JSON.stringify({ name: 'fp-yocto', version: '1.2.3', license: 'Apache-2.0' }));
  const lines: string[] = [];
  for (const [name, dep] of Object.entries(deps)) {
    const dir = path.join(root, 'node_modules', name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name, version: '2.0.0', license: dep.license, sideEffects: false, module: 'index.mjs' }));
    await writeFile(path.join(dir, 'index.mjs'), `export const value = ${JSON.stringify(name)};\nexport const unused = 1;\n`);
    for (const [f, text] of Object.entries(dep.files ?? {})) await writeFile(path.join(dir, f), text);
    const id = `v${lines.length}`;
    lines.push(`import { ${dep.used === false ? 'unused' : 'value'} as ${id} } from '${name}';`, dep.used === false ? '' : `console.log(${id});`);
  }
  await mkdir(path.join(root, 'src'), { recursive: true });
  await writeFile(path.join(root, 'src', 'main.mjs'), `${lines.join('\n')}\nconsole.log('own code');\n`);
  const outDir = path.join(root, 'out');
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['src/main.mjs'],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outfile: path.join(outDir, 'fp-agent'),
    metafile: true,
    logLevel: 'silent',
  });
  return { root, outDir, run: () => writeAgentLicenses({ root, metafile: result.metafile, outfile: 'out/fp-agent', outDir }) };
}

describe('writeAgentLicenses', () => {
  it('ships the texts of every package in the bundle, and names their licences', async () => {
    const p = await project({
      mit: { license: 'MIT', files: { LICENSE: 'MIT text\n' } },
      '@scope/isc': { license: 'ISC', files: { 'LICENSE.md': 'ISC text\n', NOTICE: 'notice\n', 'README.md': 'no' } },
      either: { license: '(MIT OR Apache-2.0)', files: { 'licence.txt': 'either\n' } },
      // Imported but tree-shaken away: not in the bundle, so not in its licences.
      shaken: { license: 'GPL-3.0-only', files: { COPYING: 'gpl\n' }, used: false },
    });
    const facts = await p.run();
    expect(facts.version).toBe('1.2.3');
    expect(facts.license).toBe('Apache-2.0 & ISC & MIT');
    expect(facts.packages.map((x) => `${x.name}@${x.version} ${x.license}`)).toEqual([
      '@scope/isc@2.0.0 ISC',
      'either@2.0.0 MIT | Apache-2.0',
      'fp-yocto@1.2.3 Apache-2.0',
      'mit@2.0.0 MIT',
    ]);
    expect(facts.licenseTexts).toEqual([
      { package: 'fp-yocto', path: '${COMMON_LICENSE_DIR}/Apache-2.0', md5: '89aea4e17d99a7cacdbeed46a0096b10' },
      { package: 'either', path: 'fp-agent.licenses/either/licence.txt', md5: md5(Buffer.from('either\n')) },
      { package: 'mit', path: 'fp-agent.licenses/mit/LICENSE', md5: md5(Buffer.from('MIT text\n')) },
      { package: '@scope/isc', path: 'fp-agent.licenses/scope__isc/LICENSE.md', md5: md5(Buffer.from('ISC text\n')) },
      { package: '@scope/isc', path: 'fp-agent.licenses/scope__isc/NOTICE', md5: md5(Buffer.from('notice\n')) },
    ]);
    for (const t of facts.licenseTexts.filter((x) => !x.path.startsWith('${'))) {
      expect(md5(await readFile(path.join(p.outDir, t.path)))).toBe(t.md5);
    }
    expect(JSON.parse(await readFile(path.join(p.outDir, AGENT_FACTS_FILE), 'utf8'))).toEqual(facts);
  });

  it('fails the build when a new dependency brings a licence nobody has accepted', async () => {
    const p = await project({ mit: { license: 'MIT', files: { LICENSE: 'x' } }, gpl: { license: 'GPL-2.0-only', files: { COPYING: 'gpl' } } });
    await expect(p.run()).rejects.toThrow(
      /^node_modules\/gpl\/package\.json: licence "GPL-2\.0-only" is not one the agent bundle may contain .*: review it, then add it to ACCEPTED_LICENSES/,
    );
  });

  it('fails the build when a bundled package ships no licence text, or names no licence', async () => {
    await expect((await project({ bare: { license: 'MIT' } })).run()).rejects.toThrow(/node_modules\/bare: the agent bundle includes bare, which ships no licence text/);
    await expect((await project({ anon: { files: { LICENSE: 'x' } } })).run()).rejects.toThrow(/node_modules\/anon\/package\.json: .* names no name, version or license/);
  });
});

describe('the real bundle (dist/, as the test setup built it)', async () => {
  const dist = path.join(ROOT, 'dist');
  const facts = await readAgentFacts(dist);
  const layer = await renderProjectLayer();
  const recipe = layer.get(`recipes-iot/fleetprovisioning/${RECIPES.agent}_${facts.version}.bb`)!.toString('utf8');

  it("is described by fp-agent.json: fp-yocto's version, each text beside it with its md5", async () => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(facts.version).toBe(pkg.version);
    expect(facts.license).toBe(combinedLicense(facts.packages.map((p) => p.license)));
    expect(facts.packages.map((p) => p.name)).toContain('fp-yocto');
    for (const t of facts.licenseTexts.filter((x) => !x.path.startsWith('${'))) {
      expect(md5(await readFile(path.join(dist, t.path))), t.path).toBe(t.md5);
    }
  });

  it('gives the agent recipe its PV, LICENSE and a LIC_FILES_CHKSUM entry per text', () => {
    expect(recipe).toMatch(new RegExp(`^LICENSE = "${facts.license}"$`, 'm'));
    for (const t of facts.licenseTexts) expect(recipe).toContain(`    file://${t.path};md5=${t.md5} \\\n`);
    expect(recipe.match(/;md5=/g)).toHaveLength(facts.licenseTexts.length);
  });
});

describe('the built agent bundle', () => {
  it('names every package whose code it carries, the ones a build plugin embeds as text too', async () => {
    // The agent's inputs as plain esbuild sees them, without scripts/build.ts's plugins: a plugin
    // that hides a package from the main metafile (compiledOnFirstUse) must not hide its licence.
    const plain = await build({
      absWorkingDir: ROOT,
      entryPoints: ['src/agent/main.ts'],
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      outfile: 'out/fp-agent',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const names = await Promise.all(
      bundledPackageDirs(plain.metafile, 'out/fp-agent').map(async (dir) => (JSON.parse(await readFile(path.join(ROOT, dir, 'package.json'), 'utf8')) as { name: string }).name),
    );
    const facts = await readAgentFacts(path.join(ROOT, 'dist'));
    expect(facts.packages.map((p) => p.name).sort()).toEqual(names.sort());
    expect(names).toContain('yaml');
  });
});
