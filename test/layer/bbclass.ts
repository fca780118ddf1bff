// Runs the Python of the layer's class (classes-recipe/fleetprovisioning.bbclass, as rendered)
// with a stand-in for bitbake's datastore and `bb`: its own assignments (`??=` defaults,
// FLEETPROV_CONFIG_FIELDS, FLEETPROV_NODEJS_UNSUPPORTED, the agent facts) overridden by
// "local.conf" values, as raw strings, which is how bitbake's getVar(name, False) gives them.
import { execFileSync } from 'node:child_process';
import { CLASS_NAME } from '../../src/layer/model.ts';
import type { RenderedLayer } from '../../src/layer/render.ts';

const HARNESS = String.raw`
import json, os, re, sys, types
src = sys.stdin.read()
call, values = sys.argv[1], json.loads(sys.argv[2])
flat = src.replace('\\\n', '')
store = {}
for name, op, value in re.findall(r'^([A-Z][A-Z0-9_]*) (\?\?=|=) "(.*)"$', flat, re.M):
    store[name] = value
store.update(values)
marked = []
class SkipRecipe(Exception):
    pass
class Fatal(Exception):
    pass
def fatal(msg):
    raise Fatal(msg)
bb = types.SimpleNamespace(parse=types.SimpleNamespace(SkipRecipe=SkipRecipe, mark_dependency=lambda d, f: marked.append(f)), fatal=fatal)
class D:
    def getVar(self, name, expand=True):
        return store.get(name)
ns = {'bb': bb, 'os': os}
for fn in re.findall(r'^def fleetprov_\w+\(d\):\n(?:(?:    .*)?\n)+', src, re.M):
    exec(fn, ns)
anon = re.search(r'^python \(\) \{\n(.*?)^\}', src, re.M | re.S).group(1)
exec('def anon(d):\n' + anon, ns)
out = {'result': None, 'skipped': None}
try:
    out['result'] = ns[call](D())
except SkipRecipe as e:
    out['skipped'] = str(e)
out['marked'] = marked
print(json.dumps(out))
`;

export interface ClassRun<T> {
  result: T | null;
  /** The SkipRecipe message, when `anon` skipped the recipe. */
  skipped: string | null;
  /** Files recorded with bb.parse.mark_dependency, in order. */
  marked: string[];
}

/** The rendered class's text. */
export const classText = (layer: RenderedLayer): string => layer.get(`classes-recipe/${CLASS_NAME}.bbclass`)!.toString('utf8');

/**
 * Calls `anon` (the class's anonymous python: skips the recipe or not) or one of its
 * `fleetprov_*` functions with these datastore values.
 */
export function runClass<T = unknown>(layer: RenderedLayer, call: string, values: Record<string, string>): ClassRun<T> {
  return JSON.parse(execFileSync('python3', ['-c', HARNESS, call, JSON.stringify(values)], { input: classText(layer), encoding: 'utf8' })) as ClassRun<T>;
}
