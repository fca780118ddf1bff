// The agent and claim recipes' anonymous python (as rendered), run with a stand-in for bitbake's
// datastore and `bb.parse` against real directories: which files it records in the parse cache
// (bb.parse.mark_dependency) and when it skips the recipe. Recording the files matters: without
// it bitbake reused a cached "skipped" after `fp-yocto init` had written the claim files
// (measured with bitbake 2.8, docs/layer.md).
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RECIPES } from '../../src/layer/model.ts';
import { renderProjectLayer } from '../../src/layer/render.ts';
import { CLAIM_FILES } from '../../src/shared/device-paths.ts';
import { tmpDir } from '../helpers/tmp.ts';

const HARNESS = String.raw`
import json, os, re, sys, types
src = sys.stdin.read()
body = re.search(r'^python \(\) \{\n(.*?)^\}', src, re.M | re.S).group(1)
marked = []
class SkipRecipe(Exception):
    pass
bb = types.SimpleNamespace(parse=types.SimpleNamespace(SkipRecipe=SkipRecipe, mark_dependency=lambda d, f: marked.append(f)))
values = json.loads(sys.argv[1])
class D:
    def getVar(self, name, expand=True):
        return values.get(name)
ns = {'bb': bb, 'os': os}
exec('def anon(d):\n' + body, ns)
try:
    ns['anon'](D())
    skipped = None
except SkipRecipe as e:
    skipped = str(e)
print(json.dumps({'marked': marked, 'skipped': skipped}))
`;

describe('the recipes that read build-host files', async () => {
  const layer = await renderProjectLayer();
  const recipeText = (prefix: string) => {
    const key = [...layer.keys()].find((k) => k.startsWith(`recipes-iot/fleetprovisioning/${prefix}`) && k.endsWith('.bb'));
    return layer.get(key!)!.toString('utf8');
  };
  const anon = (recipe: string, values: Record<string, string>): { marked: string[]; skipped: string | null } =>
    JSON.parse(execFileSync('python3', ['-c', HARNESS, JSON.stringify(values)], { input: recipe, encoding: 'utf8' }));
  const claimFiles = [CLAIM_FILES.cert, CLAIM_FILES.key, CLAIM_FILES.rootCa];

  it('claim: records each claim file, present or not, so a later `fp-yocto init` is seen', async () => {
    const dir = await tmpDir();
    const claim = recipeText(`${RECIPES.claim}.bb`);
    const empty = anon(claim, { FLEETPROV_CLAIM_DIR: dir });
    expect(empty.marked).toEqual(claimFiles.map((f) => path.join(dir, f)));
    expect(empty.skipped).toBe(`FLEETPROV_CLAIM_DIR (${dir}) lacks ${claimFiles.join(', ')}: run \`fp-yocto init\` or \`fp-yocto rotate-claim\``);

    for (const f of claimFiles) await writeFile(path.join(dir, f), 'x');
    const full = anon(claim, { FLEETPROV_CLAIM_DIR: dir });
    expect(full).toEqual({ marked: claimFiles.map((f) => path.join(dir, f)), skipped: null });

    expect(anon(claim, {}).skipped).toMatch(/^FLEETPROV_CLAIM_DIR is not set: /);
  });

  it('agent: records the bundle, present or not, so a later `npm run build` is seen', async () => {
    const dir = await tmpDir();
    const agent = recipeText(`${RECIPES.agent}_`);
    const before = anon(agent, { FLEETPROV_AGENT_DIR: dir });
    expect(before.marked).toEqual([path.join(dir, 'fp-agent')]);
    expect(before.skipped).toMatch(/has no fp-agent: run `npm run build`/);

    await writeFile(path.join(dir, 'fp-agent'), '#!/usr/bin/env node\n');
    expect(anon(agent, { FLEETPROV_AGENT_DIR: dir })).toEqual({ marked: [path.join(dir, 'fp-agent')], skipped: null });
    expect(anon(agent, {}).skipped).toMatch(/^FLEETPROV_AGENT_DIR is not set: /);
  });
});
