// Real bitbake over openembedded-core + meta-oe + this layer, when a checkout is at hand (the same
// BITBAKE_LIB as bitbake.test.ts, with openembedded-core/ and meta-openembedded/ beside its
// bitbake/): skipped otherwise, as in CI.
//
// 1. Unconfigured (the layer added, no FLEETPROV_* values, systemd on), `bitbake -S none world`
//    must succeed: it is what world builds and yocto-check-layer's test_world and
//    test_world_inherit_class run, and it fails when a recipe of the layer depends on one that is
//    skipped ("Nothing RPROVIDES 'fleetprovisioning-agent'"). `bitbake -p` does not check that.
// 2. For every qemu machine of openembedded-core, the agent recipe is skipped exactly where
//    meta-oe's nodejs recipe is (tinfoil, configuration only, one recipe file at a time).
// 3. The config recipe as bitbake finalises it (tinfoil): with a TPM key and Greengrass its
//    anonymous python adds the Greengrass lite OpenSSL files' postfunc, FILES and RDEPENDS, and
//    with a file key nothing.
//
// bitbake refuses to run as root: as root, the commands run as BITBAKE_USER (default `yocto`),
// which must exist. The build directory stays in the system's temporary directory between runs,
// so that bitbake's parse cache makes the next run cheap (minutes for the first parse of about
// 2000 recipes on two cores; seconds to parse this layer again).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { AGENT_LICENSE_DIR } from '../../src/layer/agent-bundle.ts';
import { TPM_DROP_IN_NAME } from '../../src/layer/greengrass-tpm.ts';
import { GREENGRASS_UNITS_LOADING_KEY, LAYER_NAME, RECIPES } from '../../src/layer/model.ts';
import { ROOT } from '../helpers/run.ts';

const bitbakeLib = process.env.BITBAKE_LIB ?? '';
const tree = path.resolve(bitbakeLib, '..', '..');
const coreMeta = path.join(tree, 'openembedded-core', 'meta');
const metaOe = path.join(tree, 'meta-openembedded', 'meta-oe');
const available = bitbakeLib !== '' && [path.join(bitbakeLib, 'bb'), coreMeta, metaOe].every((p) => existsSync(p));

const layerDir = path.join(ROOT, LAYER_NAME);
const buildDir = path.join(os.tmpdir(), `fp-yocto-bitbake-${createHash('sha256').update(`${tree}\n${ROOT}`).digest('hex').slice(0, 12)}`);
const user = process.getuid?.() === 0 ? (process.env.BITBAKE_USER ?? 'yocto') : undefined;

/** The build directory, its conf written the same way every run (a changed conf means a full parse). */
async function prepareBuildDir(): Promise<void> {
  await mkdir(path.join(buildDir, 'conf'), { recursive: true });
  await writeFile(
    path.join(buildDir, 'conf', 'bblayers.conf'),
    ['BBPATH = "${TOPDIR}"', 'BBFILES ?= ""', `BBLAYERS = "${coreMeta} ${metaOe} ${layerDir}"`, ''].join('\n'),
  );
  await writeFile(
    path.join(buildDir, 'conf', 'local.conf'),
    [
      // MACHINE from the environment when given (the nodejs check), else this one.
      'MACHINE ??= "qemux86-64"',
      'DISTRO = "nodistro"',
      // With systemd the recipes' own checks decide; without it features_check skips them all.
      'INIT_MANAGER = "systemd"',
      'BB_NO_NETWORK = "1"',
      'CONF_VERSION = "2"',
      '',
    ].join('\n'),
  );
  if (user) {
    const { stdout } = await execa('id', ['-u', user], { reject: false });
    if (!/^\d+$/.test(stdout)) throw new Error(`bitbake refuses root, and BITBAKE_USER ${user} does not exist: create it or set BITBAKE_USER`);
    const { stdout: gid } = await execa('id', ['-g', user]);
    for (const p of [buildDir, path.join(buildDir, 'conf'), path.join(buildDir, 'conf', 'bblayers.conf'), path.join(buildDir, 'conf', 'local.conf')]) {
      await chown(p, Number(stdout), Number(gid));
    }
  }
}

/** bitbake wants a UTF-8 locale; en_US.UTF-8 where the host has it. */
const locale = /^en_US\.utf-?8$/im.test((await execa('locale', ['-a'], { reject: false })).stdout ?? '') ? 'en_US.UTF-8' : 'C.UTF-8';

/** Runs a command in the build directory with bitbake's environment, as BITBAKE_USER when root. */
function inBuildDir(command: string[], extraEnv: Record<string, string> = {}) {
  const env = {
    PATH: `${path.join(tree, 'bitbake', 'bin')}:${path.join(tree, 'openembedded-core', 'scripts')}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
    LANG: locale,
    LC_ALL: locale,
    HOME: buildDir,
    BUILDDIR: buildDir,
    PYTHONPATH: bitbakeLib,
    ...extraEnv,
  };
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const [file, args] = user ? ['runuser', ['-u', user, '--', 'env', '-i', ...envArgs, ...command]] : ['env', ['-i', ...envArgs, ...command]];
  return execa(file, args, { cwd: buildDir, reject: false, all: true });
}

const errors = (output: string): string[] => output.split('\n').filter((l) => /^ERROR:/.test(l));

describe.skipIf(!available)(`bitbake over ${tree} with ${LAYER_NAME}`, () => {
  it(
    'unconfigured: `bitbake -S none world` succeeds, and the packagegroup is skipped with its member',
    async () => {
      await prepareBuildDir();
      const world = await inBuildDir(['bitbake', '-S', 'none', 'world']);
      expect(errors(world.all ?? ''), world.all).toEqual([]);
      expect(world.exitCode, world.all).toBe(0);
      expect(world.all).toMatch(/^Parsing of \d+ \.bb files complete/m);

      // Parsed, and skipped for the member's reason: not merely absent.
      const group = await inBuildDir(['bitbake', '-n', RECIPES.packagegroup]);
      expect(group.exitCode).not.toBe(0);
      expect(group.all).toContain(`${RECIPES.packagegroup} was skipped: ${RECIPES.agent} cannot be built: FLEETPROV_AGENT_DIR is not set`);
    },
    90 * 60_000,
  );

  // One tinfoil per machine: configuration only, then the two recipe files.
  const TINFOIL = String.raw`
import json, os, sys
# Not the build directory (python3 -c puts it first): bitbake's parser generator leaves a
# pyshtables.py there on the first run, and importing it on the next fails ("No module named 'pysh'").
sys.path = [p for p in sys.path if p not in ('', '.')]
import bb.tinfoil
nodejs, agent, agent_dir = sys.argv[1:4]
with bb.tinfoil.Tinfoil() as t:
    t.prepare(config_only=True, quiet=2)
    cd = bb.data.createCopy(t.config_data)
    cd.setVar('FLEETPROV_AGENT_DIR', agent_dir)
    out = {'machine': cd.getVar('MACHINE')}
    for name, fn in (('nodejs', nodejs), ('agent', agent)):
        out[name] = t.parse_recipe_file(fn, appends=True, config_data=cd).getVar('__SKIPPED')
print('RESULT ' + json.dumps(out))
`;

  it(
    "skips the agent on exactly the machines where meta-oe's nodejs is skipped",
    async () => {
      await prepareBuildDir();
      const nodejsDir = path.join(metaOe, 'recipes-devtools', 'nodejs');
      const nodejs = path.join(nodejsDir, readdirSync(nodejsDir).find((f) => /^nodejs_[\d.]+\.bb$/.test(f))!);
      const recipeDir = path.join(layerDir, 'recipes-iot', 'fleetprovisioning');
      const agent = path.join(recipeDir, readdirSync(recipeDir).find((f) => f.startsWith(`${RECIPES.agent}_`))!);
      const agentDir = path.join(ROOT, 'dist');
      expect(existsSync(path.join(agentDir, AGENT_LICENSE_DIR))).toBe(true);
      const machines = readdirSync(path.join(coreMeta, 'conf', 'machine'))
        .filter((f) => f.endsWith('.conf'))
        .map((f) => f.slice(0, -'.conf'.length))
        .sort();
      expect(machines.length).toBeGreaterThan(8);

      const skippedSomewhere: string[] = [];
      for (const machine of machines) {
        const run = await inBuildDir(['python3', '-c', TINFOIL, nodejs, agent, agentDir], { MACHINE: machine, BB_ENV_PASSTHROUGH_ADDITIONS: 'MACHINE' });
        const line = (run.all ?? '').split('\n').find((l) => l.startsWith('RESULT '));
        expect(line, run.all).toBeDefined();
        const result = JSON.parse(line!.slice('RESULT '.length)) as { machine: string; nodejs: string | null; agent: string | null };
        expect(result.machine).toBe(machine);
        if (result.nodejs) {
          skippedSomewhere.push(machine);
          expect(result.agent, machine).toMatch(new RegExp(`^fp-agent runs on Node\\.js, and meta-oe's nodejs recipe cannot be built for \\S+ \\(MACHINE ${machine}\\)$`));
        } else {
          expect(result.agent, machine).toBeNull();
        }
      }
      // Not a vacuous pass: some qemu machine has no nodejs in every supported series.
      expect(skippedSomewhere.length).toBeGreaterThan(0);
    },
    30 * 60_000,
  );

  // One tinfoil, configuration only, then the config recipe once per set of values.
  const CONFIG_TINFOIL = String.raw`
import json, sys
# Not the build directory (python3 -c puts it first): bitbake's parser generator leaves a
# pyshtables.py there on the first run, and importing it on the next fails ("No module named 'pysh'").
sys.path = [p for p in sys.path if p not in ('', '.')]
import bb.tinfoil
recipe, cases = sys.argv[1], json.loads(sys.argv[2])
with bb.tinfoil.Tinfoil() as t:
    t.prepare(config_only=True, quiet=2)
    out = []
    for values in cases:
        cd = bb.data.createCopy(t.config_data)
        for k, v in values.items():
            cd.setVar(k, v)
        # The class's tpm check wants meta-tpm's collection, which this build does not have.
        cd.appendVar('BBFILE_COLLECTIONS', ' tpm-layer')
        rd = t.parse_recipe_file(recipe, appends=True, config_data=cd)
        pn = rd.getVar('PN')
        out.append({'skipped': rd.getVar('__SKIPPED'), 'postfuncs': (rd.getVarFlag('do_install', 'postfuncs') or '').split(),
                    'files': (rd.getVar('FILES:' + pn) or '').split(), 'rdepends': (rd.getVar('RDEPENDS:' + pn) or '').split(),
                    'sysconfdir': rd.getVar('sysconfdir'), 'unitdir': rd.getVar('systemd_system_unitdir')})
print('RESULT ' + json.dumps(out))
`;

  it(
    'adds the Greengrass lite TPM files to the config recipe with a TPM key and Greengrass only',
    async () => {
      await prepareBuildDir();
      const recipe = path.join(layerDir, 'recipes-iot', 'fleetprovisioning', `${RECIPES.config}.bb`);
      const base = { FLEETPROV_IOT_DATA_ENDPOINT: 'abc-ats.iot.eu-west-1.amazonaws.com', FLEETPROV_TEMPLATE_NAME: 'tpl', FLEETPROV_GREENGRASS: '1' };
      const cases = [
        { ...base, FLEETPROV_KEY_STORE: 'file' },
        { ...base, FLEETPROV_KEY_STORE: 'tpm' },
        { ...base, FLEETPROV_KEY_STORE: 'tpm', FLEETPROV_GREENGRASS: '0' },
      ];
      const run = await inBuildDir(['python3', '-c', CONFIG_TINFOIL, recipe, JSON.stringify(cases)]);
      const line = (run.all ?? '').split('\n').find((l) => l.startsWith('RESULT '));
      expect(line, run.all).toBeDefined();
      type Finalised = { skipped: string | null; postfuncs: string[]; files: string[]; rdepends: string[]; sysconfdir: string; unitdir: string };
      const [file, tpm, standalone] = JSON.parse(line!.slice('RESULT '.length)) as Finalised[];
      for (const r of [file!, tpm!, standalone!]) expect(r.skipped).toBeNull();
      expect(file!.postfuncs).not.toContain('fleetprov_install_greengrass_tpm');
      expect(standalone!.postfuncs).not.toContain('fleetprov_install_greengrass_tpm');
      expect(standalone!.files).toEqual(file!.files);
      expect(tpm!.postfuncs).toContain('fleetprov_install_greengrass_tpm');
      expect(tpm!.files).toEqual([
        ...file!.files,
        `${tpm!.sysconfdir}/fleetprovisioning/openssl-tpm2.cnf`,
        ...GREENGRASS_UNITS_LOADING_KEY.map((u) => `${tpm!.unitdir}/${u}.d/${TPM_DROP_IN_NAME}`),
      ]);
      expect(tpm!.rdepends).toEqual([...file!.rdepends, 'tpm2-openssl', 'tpm2-tss']);
      expect(file!.rdepends).not.toContain('tpm2-tss');
    },
    30 * 60_000,
  );
});
