// The parse-time checks of the layer's class (classes-recipe/fleetprovisioning.bbclass, as
// rendered), run with a stand-in for bitbake's datastore and `bb.parse` against real
// directories: which files they record in the parse cache (bb.parse.mark_dependency), when they
// skip a recipe, and that the packagegroup is skipped whenever a member is. Recording the files
// matters: without it bitbake reused a cached "skipped" after `fp-yocto init` had written the
// claim files (measured with bitbake 2.8, docs/layer.md).
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_FACTS_FILE, AGENT_LICENSE_DIR, type AgentBundleFacts } from '../../src/layer/agent-bundle.ts';
import { RECIPE_CHECKS, RECIPES } from '../../src/layer/model.ts';
import { renderProjectLayer } from '../../src/layer/render.ts';
import { CLAIM_FILES } from '../../src/shared/device-paths.ts';
import { ROOT } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { runClass } from './bbclass.ts';

const DIST = path.join(ROOT, 'dist');
const claimFiles = [CLAIM_FILES.cert, CLAIM_FILES.key, CLAIM_FILES.rootCa];
const ALL_CHECKS = Object.keys(RECIPE_CHECKS).join(' ');

/** A copy of dist/'s bundle, facts and licence texts: what FLEETPROV_AGENT_DIR points at. */
async function agentDir(): Promise<string> {
  const dir = await tmpDir('fp-agent-dir-');
  for (const f of ['fp-agent', AGENT_FACTS_FILE, AGENT_LICENSE_DIR]) await cp(path.join(DIST, f), path.join(dir, f), { recursive: true });
  return dir;
}

async function claimDir(): Promise<string> {
  const dir = await tmpDir('fp-claim-dir-');
  for (const f of claimFiles) await writeFile(path.join(dir, f), 'x');
  return dir;
}

const configured = { FLEETPROV_IOT_DATA_ENDPOINT: 'abc-ats.iot.eu-west-1.amazonaws.com', FLEETPROV_TEMPLATE_NAME: 'tpl' };
const x86 = { TUNE_ARCH: 'x86_64', MACHINEOVERRIDES: 'x86-64:qemuall:qemux86-64', MACHINE: 'qemux86-64', LAYERSERIES_CORENAMES: 'wrynose' };

describe('the class checks', async () => {
  const layer = await renderProjectLayer();
  const anon = (checks: string, values: Record<string, string>, pn: string = RECIPES.packagegroup) =>
    runClass(layer, 'anon', { PN: pn, FLEETPROV_CHECKS: checks, ...x86, ...values });

  it('claim: records each claim file, present or not, so a later `fp-yocto init` is seen', async () => {
    const dir = await tmpDir();
    const empty = anon('claim', { FLEETPROV_CLAIM_DIR: dir }, RECIPES.claim);
    expect(empty.marked).toEqual(claimFiles.map((f) => path.join(dir, f)));
    expect(empty.skipped).toBe(`FLEETPROV_CLAIM_DIR (${dir}) lacks ${claimFiles.join(', ')}: run \`fp-yocto init\` or \`fp-yocto rotate-claim\``);

    for (const f of claimFiles) await writeFile(path.join(dir, f), 'x');
    expect(anon('claim', { FLEETPROV_CLAIM_DIR: dir }, RECIPES.claim)).toEqual({ result: null, skipped: null, marked: claimFiles.map((f) => path.join(dir, f)) });
    expect(anon('claim', {}, RECIPES.claim).skipped).toMatch(/^FLEETPROV_CLAIM_DIR is not set: /);
  });

  it('agent: records the bundle and its facts, present or not, so a later `npm run build` is seen', async () => {
    const dir = await tmpDir();
    const before = anon('agent', { FLEETPROV_AGENT_DIR: dir }, RECIPES.agent);
    expect(before.marked).toEqual([path.join(dir, 'fp-agent'), path.join(dir, AGENT_FACTS_FILE)]);
    expect(before.skipped).toMatch(/has no fp-agent: run `npm run build`/);
    expect(anon('agent', {}, RECIPES.agent).skipped).toMatch(/^FLEETPROV_AGENT_DIR is not set: /);

    const full = await agentDir();
    const ok = anon('agent', { FLEETPROV_AGENT_DIR: full }, RECIPES.agent);
    expect(ok.skipped).toBeNull();
    // Every licence text too, so that one appearing later is seen.
    expect(ok.marked).toContain(path.join(full, AGENT_LICENSE_DIR, 'yaml', 'LICENSE'));
  });

  it('agent: refuses a bundle without facts, of another version, or with other licences, naming the fix', async () => {
    const dir = await agentDir();
    await writeFile(path.join(dir, AGENT_FACTS_FILE), '{');
    expect(anon('agent', { FLEETPROV_AGENT_DIR: dir }, RECIPES.agent).skipped).toMatch(/has no readable fp-agent\.json .*: run `npm run build`/);

    const facts = JSON.parse(await readFile(path.join(DIST, AGENT_FACTS_FILE), 'utf8')) as AgentBundleFacts;
    await writeFile(path.join(dir, AGENT_FACTS_FILE), JSON.stringify({ ...facts, version: '9.9.9' }));
    expect(anon('agent', { FLEETPROV_AGENT_DIR: dir }, RECIPES.agent).skipped).toBe(
      `FLEETPROV_AGENT_DIR (${dir}) holds fp-agent 9.9.9, and this layer was rendered for ${facts.version}: run \`fp-yocto render\` (or \`fp-yocto init\`) with the fp-yocto that built it`,
    );

    // A new dependency under a licence already listed still brings a text the recipe does not list.
    const more = { ...facts, licenseTexts: [...facts.licenseTexts, { package: 'new', path: `${AGENT_LICENSE_DIR}/new/LICENSE`, md5: '0'.repeat(32) }] };
    await writeFile(path.join(dir, AGENT_FACTS_FILE), JSON.stringify(more));
    expect(anon('agent', { FLEETPROV_AGENT_DIR: dir }, RECIPES.agent).skipped).toMatch(/whose licences are not those this layer was rendered for: run `fp-yocto render`/);
  });

  it('nodejs: skips where meta-oe cannot build nodejs, saying so, and nowhere else', () => {
    const nodejs = (values: Record<string, string>) => anon('nodejs', values, RECIPES.agent).skipped;
    expect(nodejs({})).toBeNull();
    expect(nodejs({ TUNE_ARCH: 'aarch64', MACHINEOVERRIDES: 'aarch64:qemuall:qemuarm64', MACHINE: 'qemuarm64' })).toBeNull();
    expect(nodejs({ TUNE_ARCH: 'riscv64', MACHINEOVERRIDES: 'riscv:riscv64:qemuall:qemuriscv64', MACHINE: 'qemuriscv64' })).toBe(
      "fp-agent runs on Node.js, and meta-oe's nodejs recipe cannot be built for riscv64 (MACHINE qemuriscv64)",
    );
    expect(nodejs({ TUNE_ARCH: 'arm', MACHINEOVERRIDES: 'armv4:armv5:qemuall:qemuarmv5', MACHINE: 'qemuarmv5' })).toMatch(/cannot be built for armv4 /);
    // wrynose's nodejs 22 gave up powerpc64le; scarthgap's nodejs 20 builds for it.
    expect(nodejs({ TUNE_ARCH: 'powerpc64le', LAYERSERIES_CORENAMES: 'wrynose' })).toMatch(/powerpc64le/);
    expect(nodejs({ TUNE_ARCH: 'powerpc64le', LAYERSERIES_CORENAMES: 'scarthgap' })).toBeNull();
  });

  it('the packagegroup is skipped whenever a member is, with the member and its reason', async () => {
    const agent = await agentDir();
    const claim = await claimDir();
    const all = { FLEETPROV_AGENT_DIR: agent, FLEETPROV_CLAIM_DIR: claim, ...configured };
    expect(anon(ALL_CHECKS, all).skipped).toBeNull();

    expect(anon(ALL_CHECKS, {}).skipped).toMatch(new RegExp(`^${RECIPES.agent} cannot be built: FLEETPROV_AGENT_DIR is not set`));
    expect(anon(ALL_CHECKS, { ...all, FLEETPROV_CLAIM_DIR: '' }).skipped).toMatch(new RegExp(`^${RECIPES.claim} cannot be built: FLEETPROV_CLAIM_DIR is not set`));
    expect(anon(ALL_CHECKS, { ...all, FLEETPROV_TEMPLATE_NAME: '' }).skipped).toMatch(new RegExp(`^${RECIPES.config} cannot be built: FLEETPROV_TEMPLATE_NAME is not set`));
    expect(anon(ALL_CHECKS, { ...all, FLEETPROV_GREENGRASS_GROUP: 'Bad Group' }).skipped).toMatch(/FLEETPROV_GREENGRASS_GROUP: expected a group name/);
    expect(anon(ALL_CHECKS, { ...all, TUNE_ARCH: 'riscv64', MACHINE: 'qemuriscv64' }).skipped).toMatch(new RegExp(`^${RECIPES.agent} cannot be built: fp-agent runs on Node.js`));
  });

  it('tpm: FLEETPROV_KEY_STORE = "tpm" without meta-tpm skips the config recipe and the packagegroup, saying so in one line', () => {
    const line = 'FLEETPROV_KEY_STORE = "tpm" needs meta-security\'s meta-tpm layer (collection tpm-layer) in BBLAYERS, for tpm2-tools, tpm2-openssl, libtss2-tcti-device, openssl-bin, tpm2-tss; add it, or set FLEETPROV_KEY_STORE = "file"';
    const collections = 'core openembedded-layer fleetprovisioning';
    expect(anon('tpm', { FLEETPROV_KEY_STORE: 'tpm', BBFILE_COLLECTIONS: collections }, RECIPES.config).skipped).toBe(line);
    expect(anon('tpm', { FLEETPROV_KEY_STORE: 'tpm', BBFILE_COLLECTIONS: collections }).skipped).toBe(`${RECIPES.config} cannot be built: ${line}`);
    expect(anon('tpm', { FLEETPROV_KEY_STORE: 'tpm', BBFILE_COLLECTIONS: `${collections} tpm-layer` }, RECIPES.config).skipped).toBeNull();
    // Inert with the file store, meta-tpm or not.
    expect(anon('tpm', { FLEETPROV_KEY_STORE: 'file', BBFILE_COLLECTIONS: collections }, RECIPES.config).skipped).toBeNull();
    expect(anon('tpm', { BBFILE_COLLECTIONS: collections }, RECIPES.config).skipped).toBeNull();
  });

  it('every recipe names only checks the class has, and the packagegroup names them all', () => {
    const recipe = (prefix: string) => {
      const key = [...layer.keys()].find((k) => k.includes(`/${prefix}`) && k.endsWith('.bb'));
      return layer.get(key!)!.toString('utf8');
    };
    const checksOf = (text: string) => /^FLEETPROV_CHECKS = "(.*)"$/m.exec(text)?.[1]?.split(' ');
    expect(checksOf(recipe(`${RECIPES.agent}_`))).toEqual(['nodejs', 'agent']);
    expect(checksOf(recipe(`${RECIPES.claim}.bb`))).toEqual(['claim']);
    expect(checksOf(recipe(`${RECIPES.config}.bb`))).toEqual(['config', 'tpm']);
    expect(checksOf(recipe(`${RECIPES.packagegroup}.bb`))).toEqual(Object.keys(RECIPE_CHECKS));
    for (const [, text] of [...layer].filter(([k]) => k.endsWith('.bb'))) expect(text.toString('utf8')).toMatch(/^inherit .*\bfleetprovisioning$/m);
  });
});
