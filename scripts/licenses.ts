// Licence compliance for the agent bundle, from its real inputs: esbuild's metafile says which
// files went into dist/fp-agent; each belongs to a package (node_modules/<name>, or fp-yocto's own
// src/); each package's package.json names its licence and its directory holds the text. The texts
// are copied to dist/fp-agent.licenses/ and listed, with their md5, in dist/fp-agent.json, from
// which the layer renders the agent recipe's LICENSE and LIC_FILES_CHKSUM (src/layer/agent-bundle.ts).
// A licence outside ACCEPTED_LICENSES, or a package without a licence text, fails the build.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Metafile } from 'esbuild';
import {
  AGENT_FACTS_FILE,
  AGENT_LICENSE_DIR,
  COMMON_LICENSE_MD5,
  combinedLicense,
  spdxToOe,
  type AgentBundleFacts,
  type LicenseText,
} from '../src/layer/agent-bundle.ts';

/**
 * A package directory (relative to the project root, '' for fp-yocto itself) per bundled input file:
 * of `outfile`, and of every output of `embedded`, the builds whose text a plugin puts into the
 * bundle (scripts/build.ts compiledOnFirstUse: the main metafile only sees a namespace there).
 */
export function bundledPackageDirs(metafile: Metafile, outfile: string, embedded: readonly Metafile[] = []): string[] {
  const output = metafile.outputs[outfile];
  if (!output) throw new Error(`esbuild metafile: no output ${outfile}`);
  const inputs = [output, ...embedded.flatMap((m) => Object.values(m.outputs))].flatMap((o) => Object.entries(o.inputs));
  const dirs = new Set<string>();
  for (const [input, { bytesInOutput }] of inputs) {
    // Tree-shaken to nothing: not in the bundle. A namespace ("(disabled):…") is not a file.
    if (bytesInOutput === 0 || /^[a-z()-]+:/i.test(input)) continue;
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    dirs.add(m ? m[1]! : '');
  }
  return [...dirs].sort();
}

/** The licence files in a package's top directory (LICENSE, LICENCE.md, COPYING, NOTICE, …). */
const LICENSE_FILE = /^(licen[cs]e|copying|notice)([.-][\w.-]*)?$/i;

interface PackageJson {
  name?: unknown;
  version?: unknown;
  license?: unknown;
  licenses?: unknown;
}

function npmLicense(pkg: PackageJson): string | undefined {
  if (typeof pkg.license === 'string') return pkg.license;
  // The old form: "licenses": [{ "type": "MIT" }, …], any of which applies.
  if (Array.isArray(pkg.licenses)) {
    const types = pkg.licenses.map((l: { type?: unknown }) => l?.type).filter((t): t is string => typeof t === 'string');
    if (types.length) return types.length === 1 ? types[0] : `(${types.join(' OR ')})`;
  }
  return undefined;
}

/** Code-point order, not the locale's: the same file on every machine. */
const byKey =
  <T>(key: (item: T) => string) =>
  (a: T, b: T): number =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

const md5 = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

/** A directory name for a package's texts: no `@` or `/`, which read as URL syntax in a file:// */
const textDirName = (name: string): string => name.replace(/^@/, '').replace('/', '__');

/**
 * Copies every bundled package's licence texts into `<outDir>/fp-agent.licenses/` and writes
 * `<outDir>/fp-agent.json`. Returns the facts written.
 */
export async function writeAgentLicenses(opts: {
  root: string;
  metafile: Metafile;
  outfile: string;
  outDir: string;
  /** Metafiles of builds embedded into the bundle as text (see bundledPackageDirs). */
  embedded?: readonly Metafile[];
}): Promise<AgentBundleFacts> {
  const { root, outDir } = opts;
  const packages: (AgentBundleFacts['packages'][number] & { dir: string })[] = [];
  for (const dir of bundledPackageDirs(opts.metafile, opts.outfile, opts.embedded)) {
    const file = path.join(dir || '.', 'package.json');
    const pkg = JSON.parse(await readFile(path.join(root, file), 'utf8')) as PackageJson;
    const license = npmLicense(pkg);
    if (typeof pkg.name !== 'string' || typeof pkg.version !== 'string' || !license) {
      throw new Error(`${file}: the agent bundle includes this package, which names no name, version or license`);
    }
    let oe: string;
    try {
      oe = spdxToOe(license);
    } catch (error) {
      throw new Error(`${file}: ${(error as Error).message}: review it, then add it to ACCEPTED_LICENSES in src/layer/agent-bundle.ts`);
    }
    packages.push({ name: pkg.name, version: pkg.version, license: oe, dir });
  }

  const seen = new Map<string, number>();
  for (const p of packages) seen.set(p.name, (seen.get(p.name) ?? 0) + 1);
  const licenseDir = path.join(outDir, AGENT_LICENSE_DIR);
  await mkdir(licenseDir, { recursive: true });
  const texts: LicenseText[] = [];
  for (const p of packages) {
    const files = (await readdir(path.join(root, p.dir || '.'))).filter((f) => LICENSE_FILE.test(f)).sort();
    if (files.length === 0) {
      // fp-yocto itself: its licence is named in package.json and its text is a common one.
      const common = p.dir === '' && COMMON_LICENSE_MD5[p.license];
      if (!common) throw new Error(`${p.dir}: the agent bundle includes ${p.name}, which ships no licence text (LICENSE, COPYING, NOTICE)`);
      texts.push({ package: p.name, path: `\${COMMON_LICENSE_DIR}/${p.license}`, md5: common });
      continue;
    }
    const sub = (seen.get(p.name) ?? 0) > 1 ? `${textDirName(p.name)}-${p.version}` : textDirName(p.name);
    await mkdir(path.join(licenseDir, sub), { recursive: true });
    for (const f of files) {
      const bytes = await readFile(path.join(root, p.dir, f));
      await copyFile(path.join(root, p.dir, f), path.join(licenseDir, sub, f));
      texts.push({ package: p.name, path: `${AGENT_LICENSE_DIR}/${sub}/${f}`, md5: md5(bytes) });
    }
  }

  const own = packages.find((p) => p.dir === '');
  if (!own) throw new Error('esbuild metafile: the agent bundle holds none of fp-yocto\'s own code');
  const facts: AgentBundleFacts = {
    version: own.version,
    license: combinedLicense(packages.map((p) => p.license)),
    packages: packages.map(({ name, version, license }) => ({ name, version, license })).sort(byKey((p) => `${p.name}@${p.version}`)),
    licenseTexts: texts.sort(byKey((t) => t.path)),
  };
  await writeFile(path.join(outDir, AGENT_FACTS_FILE), `${JSON.stringify(facts, null, 2)}\n`);
  return facts;
}
