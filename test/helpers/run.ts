import { execa, type Options, type Result } from 'execa';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Built by test/helpers/global-setup.ts before any test runs. */
export const CLI = path.join(ROOT, 'dist', 'cli.mjs');
export const AGENT = path.join(ROOT, 'dist', 'fp-agent');

/** Runs the built fp-yocto CLI as a user would; never throws on a non-zero exit. */
export function runCli(args: string[], options: Options = {}): Promise<Result> {
  return execa('node', [CLI, ...args], { reject: false, env: { NO_COLOR: '1' }, ...options }) as Promise<Result>;
}

/** Runs the built fp-agent bundle; never throws on a non-zero exit. */
export function runAgent(args: string[], options: Options = {}): Promise<Result> {
  return execa(AGENT, args, { reject: false, env: { NO_COLOR: '1' }, ...options }) as Promise<Result>;
}
