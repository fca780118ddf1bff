// Command line, config errors and status without a server.
import { chmod, copyFile, readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { AGENT } from '../helpers/run.ts';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.ts';
import { agent, writeConfig } from './fixtures.ts';

describe('fp-agent command line', () => {
  it('prints its version and help', async () => {
    const version = await agent(['--version']);
    expect(version.exitCode).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);
    const help = await agent(['--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('provision');
    expect(help.stdout).toContain('--force');
  });

  it('is one self-contained CommonJS file with a shebang: runs alone, away from node_modules', async () => {
    const text = await readFile(AGENT, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(text).not.toMatch(/\brequire\("(mqtt|yaml|@peculiar\/[^"]+)"\)/);
    const dir = await tmpDir('fp-agent-alone-');
    const alone = path.join(dir, 'fp-agent');
    await copyFile(AGENT, alone);
    await chmod(alone, 0o755);
    const config = await writeConfig(dir);
    const r = await execa(alone, ['status', '--json', '--config', config], { reject: false, cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ provisioned: false });
  });

  it('exits 64 on usage errors', async () => {
    for (const args of [[], ['frobnicate'], ['status', '--bogus'], ['provision', '--mqtt-version', '3']]) {
      const r = await agent(args);
      expect(r.exitCode).toBe(64);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('exits 78 with one line naming the file and line on bad YAML', async () => {
    const dir = await tmpDir('fp-agent-cli-');
    const file = path.join(dir, 'config.yaml');
    await writeFile(file, 'iotDataEndpoint: x\ntemplateName: [unclosed\n');
    const r = await agent(['provision', '--config', file]);
    expect(r.exitCode).toBe(78);
    expect(r.stderr.trim()).toMatch(new RegExp(`^fp-agent: ${file}: line \\d+: expected valid YAML \\(.+\\)$`));
  });

  it('exits 78 naming a missing config file', async () => {
    const r = await agent(['provision', '--config', '/nonexistent/config.yaml']);
    expect(r.exitCode).toBe(78);
    expect(r.stderr.trim()).toBe('fp-agent: /nonexistent/config.yaml: cannot read the config file (ENOENT)');
  });

  it('exits 78 on malformed templateParams', async () => {
    const dir = await tmpDir('fp-agent-cli-');
    const file = await writeConfig(dir, { templateParams: { DeviceId: { nested: true } } });
    const r = await agent(['provision', '--config', file]);
    expect(r.exitCode).toBe(78);
    expect(r.stderr.trim()).toBe(`fp-agent: ${file}: templateParams.DeviceId: expected a string value`);
  });

  it('reports "not provisioned" as text and JSON', async () => {
    const dir = await tmpDir('fp-agent-cli-');
    const file = await writeConfig(dir);
    const text = await agent(['status', '--config', file]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/^provisioned:\s+no$/m);
    const json = await agent(['status', '--json', '--config', file]);
    expect(JSON.parse(json.stdout)).toEqual({ provisioned: false });
  });
});
