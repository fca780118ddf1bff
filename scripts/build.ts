// Builds dist/: the fp-yocto CLI (ESM, dependencies left external, one chunk per lazily loaded
// subcommand) and the device agent fp-agent (ONE self-contained CommonJS file, see DESIGN.md).
import { build as esbuild, type BuildOptions } from 'esbuild';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

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

export async function build({ quiet = false }: { quiet?: boolean } = {}): Promise<void> {
  const { version } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  // Build beside dist/ and swap it in, so processes already running from dist/ (another test
  // run, a running emulator) never see a half-written tree.
  const out = `${dist}.tmp-${process.pid}`;
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  // The agent is CommonJS and extensionless; this keeps Node from reading it as ESM inside
  // our "type": "module" package. The CLI is .mjs so it is ESM regardless.
  await writeFile(path.join(out, 'package.json'), '{ "type": "commonjs" }\n');
  await Promise.all([
    esbuild({
      ...common,
      entryPoints: { cli: 'src/cli/main.ts' },
      outdir: out,
      format: 'esm',
      splitting: true,
      packages: 'external',
      outExtension: { '.js': '.mjs' },
      chunkNames: 'chunks/[name]-[hash]',
      banner: shebang,
    }),
    esbuild({
      ...common,
      entryPoints: ['src/agent/main.ts'],
      outfile: path.join(out, 'fp-agent'),
      format: 'cjs',
      minify: true,
      banner: shebang,
      define: { 'process.env.FP_AGENT_VERSION': JSON.stringify(version) },
    }),
  ]);
  await chmod(path.join(out, 'cli.mjs'), 0o755);
  await chmod(path.join(out, 'fp-agent'), 0o755);
  const old = `${dist}.old-${process.pid}`;
  await rename(dist, old).catch(() => undefined);
  await rename(out, dist);
  await rm(old, { recursive: true, force: true });
  if (!quiet) console.log('built dist/cli.mjs and dist/fp-agent');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await build();
}
