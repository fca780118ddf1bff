// Runs the config recipe's own Python (as rendered): its anonymous python, which adds the TPM
// files for Greengrass to do_install, FILES and RDEPENDS, and then each function do_install's
// postfuncs name, into a real directory standing for ${D}. The datastore is a stand-in: the
// class's and the recipe's plain assignments (inline ${@...} evaluated), overridden by
// "local.conf" values, and the directory variables of a usrmerge distro.
import { execFileSync } from 'node:child_process';
import { CLASS_NAME, RECIPES } from '../../src/layer/model.ts';
import type { RenderedLayer } from '../../src/layer/render.ts';

const HARNESS = String.raw`
import json, os, re, stat, sys, types
recipe, klass = json.loads(sys.stdin.read())
dest, values = sys.argv[1], json.loads(sys.argv[2])
os.umask(0o022)  # as bitbake runs its tasks (BB_DEFAULT_UMASK)
store = {'D': dest, 'PN': values.pop('PN', 'fleetprovisioning-config'), 'sysconfdir': '/etc',
         'systemd_system_unitdir': '/usr/lib/systemd/system', 'FILES:fleetprovisioning-config': '', 'RDEPENDS:fleetprovisioning-config': ''}
for src in (klass, recipe):
    for name, op, value in re.findall(r'^([A-Z][A-Z0-9_]*) (\?\?=|=) "(.*)"$', src.replace('\\\n', ''), re.M):
        store[name] = value
store.update(values)
flags = {}
class D:
    def getVar(self, name, expand=True):
        v = store.get(name)
        return self.expand(v) if expand and v is not None else v
    def expand(self, v):
        v = re.sub(r'\$\{@(.*?)\}', lambda m: str(eval(m.group(1), {'d': self})), v)
        return re.sub(r'\$\{([A-Za-z0-9_:.-]+)\}', lambda m: self.getVar(m.group(1)) or '', v)
    def appendVar(self, name, value):
        store[name] = (store.get(name) or '') + value
    def appendVarFlag(self, name, flag, value):
        flags[(name, flag)] = flags.get((name, flag), '') + value
d = D()
bb = types.SimpleNamespace(utils=types.SimpleNamespace(mkdirhier=lambda p: os.makedirs(p, exist_ok=True)))
ns = {'bb': bb, 'os': os, 'd': d}
def body(src, header):
    m = re.search('^' + re.escape(header) + r' \{\n(.*?)^\}', src, re.M | re.S)
    return m.group(1) if m else None
exec('def anon(d):\n' + body(recipe, 'python ()'), ns)
ns['anon'](d)
postfuncs = flags.get(('do_install', 'postfuncs'), '').split()
for func in postfuncs:
    exec('def %s(d):\n%s' % (func, body(recipe, 'python %s()' % func)), ns)
    ns[func](d)
tree = []
for root, dirs, files in os.walk(dest):
    for name in sorted(dirs) + sorted(files):
        p = os.path.join(root, name)
        st = os.lstat(p)
        entry = {'path': p[len(dest):], 'type': 'dir' if stat.S_ISDIR(st.st_mode) else 'file', 'mode': stat.S_IMODE(st.st_mode)}
        if entry['type'] == 'file':
            entry['contents'] = open(p).read()
        tree.append(entry)
print(json.dumps({'postfuncs': postfuncs, 'files': store['FILES:fleetprovisioning-config'].split(),
                  'rdepends': store['RDEPENDS:fleetprovisioning-config'].split(), 'tree': tree}))
`;

export interface RecipeInstallRun {
  /** The functions the anonymous python added to do_install[postfuncs]. */
  postfuncs: string[];
  /** What it appended to FILES:${PN} and RDEPENDS:${PN}, unexpanded. */
  files: string[];
  rdepends: string[];
  /** What those functions wrote under ${D}, sorted per directory (paths on the target). */
  tree: { path: string; type: 'dir' | 'file'; mode: number; contents?: string }[];
}

/** Runs the config recipe's anonymous python and do_install's postfuncs with these values into `dest` (empty). */
export function runConfigRecipeInstall(layer: RenderedLayer, dest: string, values: Record<string, string>): RecipeInstallRun {
  const recipeKey = [...layer.keys()].find((k) => k.endsWith(`/${RECIPES.config}.bb`))!;
  const input = JSON.stringify([layer.get(recipeKey)!.toString('utf8'), layer.get(`classes-recipe/${CLASS_NAME}.bbclass`)!.toString('utf8')]);
  return JSON.parse(execFileSync('python3', ['-c', HARNESS, dest, JSON.stringify(values)], { input, encoding: 'utf8' })) as RecipeInstallRun;
}
