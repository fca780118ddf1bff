// Builds dist/: the fp-yocto CLI (ESM, dependencies left external, one chunk per lazily loaded
// subcommand; `fp-yocto simulate`'s worker thread is a second entry sharing those chunks) and the device agent fp-agent (ONE self-contained CommonJS file, see DESIGN.md).
import { build as esbuild, type BuildOptions, type Metafile, type Plugin } from 'esbuild';
import { createRequire } from 'node:module';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { AGENT_FACTS_FILE, AGENT_LICENSE_DIR } from '../src/layer/agent-bundle.ts';
import { writeAgentLicenses } from './licenses.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const shebang = { js: '#!/usr/bin/env node' };

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: root,
};

/**
 * Bundles `packages` into the agent as source text, compiled on first use: V8 scans a string far
 * faster than it pre-parses the functions in it, and `fp-agent` reads its config without `yaml`
 * when the layer wrote it (src/shared/simple-yaml.ts), so the library costs a start only when a
 * hand-written config needs it. Measured with valgrind: 15 M of the 42 M instructions fp-agent
 * --version took beyond `node -e 0` on Node 20; at `provision`, yaml's load and first parse were
 * ~60 M. Each export becomes a getter that compiles the package the first time it is read.
 * Each inner build's metafile goes into `metafiles`: the bundle's licences must name what it embeds.
 */
export function compiledOnFirstUse(packages: string[], metafiles: Metafile[]): Plugin {
  const filter = new RegExp(`^(${packages.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
  const require = createRequire(import.meta.url);
  return {
    name: 'compiled-on-first-use',
    setup(b) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'compiled-on-first-use' }));
      b.onLoad({ filter: /.*/, namespace: 'compiled-on-first-use' }, async (args) => {
        const inner = await esbuild({ ...common, entryPoints: [require.resolve(args.path)], format: 'cjs', minify: true, write: false, metafile: true });
        metafiles.push(inner.metafile);
        const names = Object.keys(require(args.path) as object).filter((n) => n !== 'default');
        const contents = [
          `let loaded;`,
          `const load = () => loaded ??= (() => { const m = { exports: {} }; new Function('module', 'exports', 'require', ${JSON.stringify(inner.outputFiles[0]!.text)})(m, m.exports, require); return m.exports; })();`,
          `for (const name of ${JSON.stringify(names)}) Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] });`,
        ].join('\n');
        return { contents, loader: 'js' };
      });
    },
  };
}

export async function build({ quiet = false }: { quiet?: boolean } = {}): Promise<void> {
  const { version } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  // Build beside dist/, then move files in one by one with cli.mjs last: a process running from
  // dist/ (another test run, a background emulator) never finds an entry point missing.
  const out = `${dist}.tmp-${process.pid}`;
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  // The agent is CommonJS and extensionless; this keeps Node from reading it as ESM inside
  // our "type": "module" package. The CLI is .mjs so it is ESM regardless.
  await writeFile(path.join(out, 'package.json'), '{ "type": "commonjs" }\n');
  const embedded: Metafile[] = [];
  const [, agent] = await Promise.all([
    esbuild({
      ...common,
      // simulate-worker: src/simulate/spawn-worker.ts starts it from dist/ by this name (BUNDLED_WORKER).
      // emulator-tls-worker: a process of its own (src/emulator/tls-workers.ts forks it).
      entryPoints: { cli: 'src/cli/main.ts', 'simulate-worker': 'src/simulate/worker.ts', 'emulator-tls-worker': 'src/emulator/tls-worker.ts' },
      outdir: out,
      format: 'esm',
      splitting: true,
      packages: 'external',
      outExtension: { '.js': '.mjs' },
      chunkNames: 'chunks/[name]-[hash]',
      banner: shebang,
      define: { 'process.env.FP_YOCTO_VERSION': JSON.stringify(version) },
    }),
    esbuild({
      ...common,
      entryPoints: ['src/agent/main.ts'],
      outfile: path.join(out, 'fp-agent'),
      format: 'cjs',
      minify: true,
      // Which files went into the bundle: the licences shipped beside it (scripts/licenses.ts).
      metafile: true,
      plugins: [compiledOnFirstUse(['yaml'], embedded)],
      banner: shebang,
      define: { 'process.env.FP_AGENT_VERSION': JSON.stringify(version) },
    }),
  ]);
  await chmod(path.join(out, 'cli.mjs'), 0o755);
  await chmod(path.join(out, 'fp-agent'), 0o755);
  await writeAgentLicenses({ root, metafile: agent.metafile, outfile: path.relative(root, path.join(out, 'fp-agent')), outDir: out, embedded });

  await mkdir(path.join(dist, 'chunks'), { recursive: true });
  const chunks = await readdir(path.join(out, 'chunks'));
  // Chunk names carry a content hash, so moving them in first never changes a file in use.
  for (const chunk of chunks) await rename(path.join(out, 'chunks', chunk), path.join(dist, 'chunks', chunk));
  // The bundle's licence texts and facts before the bundle they describe.
  await rm(path.join(dist, AGENT_LICENSE_DIR), { recursive: true, force: true });
  for (const file of ['package.json', AGENT_LICENSE_DIR, AGENT_FACTS_FILE, 'fp-agent', 'simulate-worker.mjs', 'emulator-tls-worker.mjs', 'cli.mjs']) await rename(path.join(out, file), path.join(dist, file));
  await rm(out, { recursive: true, force: true });
  await pruneChunks(new Set(chunks));
  if (!quiet) console.log('built dist/cli.mjs and dist/fp-agent');
}

/** Removes chunks of earlier builds, once no process started before this build can still load them. */
async function pruneChunks(current: Set<string>): Promise<void> {
  const dir = path.join(dist, 'chunks');
  const cutoff = Date.now() - 10 * 60_000;
  for (const chunk of await readdir(dir)) {
    if (current.has(chunk)) continue;
    const file = path.join(dir, chunk);
    if ((await stat(file)).mtimeMs < cutoff) await rm(file, { force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await build();
}
