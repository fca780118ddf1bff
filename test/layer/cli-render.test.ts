import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAYER_NAME } from '../../src/layer/model.ts';
import { runCli, ROOT } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';

const listFiles = async (dir: string): Promise<string[]> =>
  (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();

describe('fp-yocto render', () => {
  it('writes the layer into --dir, identical to the committed one, and --check passes', async () => {
    const dir = await tmpDir();
    const first = await runCli(['render', '--dir', dir]);
    expect(first.exitCode, String(first.stderr)).toBe(0);
    const layerDir = path.join(dir, LAYER_NAME);
    const committed = path.join(ROOT, LAYER_NAME);
    const files = await listFiles(layerDir);
    expect(files).toEqual(await listFiles(committed));
    for (const f of files) expect((await readFile(path.join(layerDir, f))).equals(await readFile(path.join(committed, f))), f).toBe(true);

    const check = await runCli(['render', '--dir', dir, '--check']);
    expect(check.exitCode).toBe(0);
    expect(String(check.stdout)).toMatch(/up to date/);

    const again = await runCli(['render', '--dir', dir]);
    expect(String(again.stdout)).toMatch(/already up to date/);
  });

  it('--check exits 1 and lists changed, missing and stale files, changing nothing', async () => {
    const dir = await tmpDir();
    await runCli(['render', '--dir', dir]);
    const layerDir = path.join(dir, LAYER_NAME);
    await writeFile(path.join(layerDir, 'conf/layer.conf'), '# edited by hand\n', { flag: 'a' });
    await writeFile(path.join(layerDir, 'recipes-iot/stale.bb'), 'old\n');
    await rm(path.join(layerDir, 'SECURITY.md'));

    const check = await runCli(['render', '--dir', dir, '--check']);
    expect(check.exitCode).toBe(1);
    const err = String(check.stderr);
    expect(err).toMatch(/changed\s+conf\/layer\.conf/);
    expect(err).toMatch(/added\s+SECURITY\.md/);
    expect(err).toMatch(/removed\s+recipes-iot\/stale\.bb/);
    expect(err).not.toMatch(/\n\s+at /); // no stack trace
    expect(await readFile(path.join(layerDir, 'recipes-iot/stale.bb'), 'utf8')).toBe('old\n');

    const fix = await runCli(['render', '--dir', dir]);
    expect(fix.exitCode).toBe(0);
    expect((await runCli(['render', '--dir', dir, '--check'])).exitCode).toBe(0);
    expect(await listFiles(layerDir)).not.toContain(path.join('recipes-iot', 'stale.bb'));
  });

  it('refuses a --dir that does not exist, and a meta-fleetprovisioning it did not render', async () => {
    const missing = await runCli(['render', '--dir', '/nonexistent/fp-yocto']);
    expect(missing.exitCode).toBe(1);
    expect(String(missing.stderr).trim()).toBe('error: --dir /nonexistent/fp-yocto: expected an existing directory');

    const dir = await tmpDir();
    await mkdir(path.join(dir, LAYER_NAME, 'conf'), { recursive: true });
    await writeFile(path.join(dir, LAYER_NAME, 'conf/layer.conf'), 'BBPATH .= ":${LAYERDIR}"\n');
    const foreign = await runCli(['render', '--dir', dir]);
    expect(foreign.exitCode).toBe(1);
    expect(String(foreign.stderr)).toMatch(/is not a layer rendered by fp-yocto/);
    expect(await readFile(path.join(dir, LAYER_NAME, 'conf/layer.conf'), 'utf8')).toBe('BBPATH .= ":${LAYERDIR}"\n');
  });

  it('--help explains the command', async () => {
    const help = await runCli(['render', '--help']);
    expect(help.exitCode).toBe(0);
    expect(String(help.stdout)).toMatch(/--check/);
    expect(String(help.stdout)).toMatch(/recipes-templates/);
  });
});
