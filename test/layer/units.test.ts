// Installs the layer's files into a temporary root exactly as the recipes' do_install (and the
// systemd class's enablement) would, then has systemd check the units there.
import { execa } from 'execa';
import { cp, lstat, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { installManifest } from '../../src/layer/install-manifest.ts';
import { installToRoot } from '../../src/layer/install-root.ts';
import { LAYER_PATHS, PATHS, UNIT_MODEL } from '../../src/layer/model.ts';
import { renderProjectLayer, type RenderedLayer } from '../../src/layer/render.ts';
import { CLAIM_FILES, UNITS } from '../../src/shared/device-paths.ts';
import { AGENT } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';

/** The host's own systemd units (targets our units order against), copied into the root. */
const HOST_UNIT_DIR = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(path.join(d, 'sysinit.target')));

async function systemdVersion(): Promise<number | undefined> {
  const result = await execa('systemd-analyze', ['--version'], { reject: false });
  const match = /systemd (\d+)/.exec(String(result.stdout));
  return match ? Number(match[1]) : undefined;
}
const version = await systemdVersion();

/** Keys our units use that older systemd (Debian 12 has 252) does not know; the targets have 255+. */
const NEWER_KEYS = { RestartSteps: 254, RestartMaxDelaySec: 254 } as const;

async function installRoot(layer: RenderedLayer): Promise<string> {
  const root = await tmpDir('fp-layer-root-');
  await cp(HOST_UNIT_DIR!, path.join(root, PATHS.unitDir), { recursive: true, verbatimSymlinks: true });
  const claimDir = await tmpDir('fp-layer-claim-');
  for (const name of Object.values(CLAIM_FILES)) await writeFile(path.join(claimDir, name), `test ${name}\n`);
  await installToRoot(root, installManifest(), {
    bundle: AGENT,
    layer,
    configYaml: 'iotDataEndpoint: "localhost"\ntemplateName: "t"\n',
    claimDir,
  });
  return root;
}

/** Runs `systemd-analyze verify` in `root`; returns every complaint but the tolerated ones. */
async function verify(root: string, units: string[]): Promise<string[]> {
  const result = await execa('systemd-analyze', ['verify', `--root=${root}`, ...units], { reject: false, env: { SYSTEMD_LOG_COLOR: '0' } });
  const lines = `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.trim() !== '');
  const tolerated = (line: string): boolean =>
    Object.entries(NEWER_KEYS).some(([key, since]) => version! < since && line.includes(`Unknown key '${key}' in section [Service]`)) ||
    // Same message, older wording (systemd < 252).
    Object.entries(NEWER_KEYS).some(([key, since]) => version! < since && line.includes(`Unknown key name '${key}'`));
  const problems = lines.filter((l) => !tolerated(l));
  if (result.exitCode !== 0) problems.push(`systemd-analyze verify exited ${result.exitCode}`);
  return problems;
}

describe.skipIf(version === undefined || !HOST_UNIT_DIR)(`the units under systemd-analyze verify (systemd ${version})`, async () => {
  const layer = await renderProjectLayer();
  const units = Object.values(UNITS);

  it('installs every manifest entry with its mode, and enables both units', async () => {
    const root = await installRoot(layer);
    for (const entry of installManifest()) {
      const p = path.join(root, entry.path);
      if (entry.type === 'symlink') {
        expect((await lstat(p)).isSymbolicLink(), entry.path).toBe(true);
        expect(await readlink(p)).toBe(entry.target);
      } else {
        expect((await stat(p)).mode & 0o7777, entry.path).toBe(entry.mode);
      }
    }
    expect((await stat(path.join(root, PATHS.claimDir, CLAIM_FILES.key))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(root, PATHS.agentBin))).mode & 0o777).toBe(0o755);
  });

  it('passes verify as installed', async () => {
    const root = await installRoot(layer);
    expect(await verify(root, units)).toEqual([]);
  });

  it('fails on a unit with a typo', async () => {
    const root = await installRoot(layer);
    const unit = path.join(root, PATHS.unitDir, UNITS.provision);
    const text = layer.get(LAYER_PATHS.unit('provision'))!.toString('utf8');
    await writeFile(unit, text.replace('Type=oneshot', 'Type=oneshoot'));
    expect((await verify(root, [UNITS.provision])).join('\n')).toMatch(/oneshoot/);
  });

  it('fails when the agent is not installed where ExecStart points', async () => {
    const root = await installRoot(layer);
    await rm(path.join(root, PATHS.agentBin));
    expect((await verify(root, [UNITS.provision])).join('\n')).toMatch(/fp-agent is not executable/);
  });

  it('orders provisioning after the network and time, before Greengrass lite, and skips once provisioned', () => {
    const text = layer.get(LAYER_PATHS.unit('provision'))!.toString('utf8');
    expect(text).toMatch(/^Wants=.*\bnetwork-online\.target\b/m);
    expect(text).toMatch(/^After=.*\bnetwork-online\.target\b.*\btime-sync\.target\b/m);
    // time-sync.target is passive: After= only, never pulled in (systemd.special(7)).
    expect(text).not.toMatch(/^(Wants|Requires|Requisite|BindsTo|Upholds)=.*\btime-sync\.target\b/m);
    expect(text).toMatch(/^Before=.*\bggl\.core\.ggconfigd\.service\b.*\bgreengrass-lite\.target\b/m);
    expect(text).toContain(`ConditionPathExists=!${UNIT_MODEL.provisionedMarker}`);
    expect(text).toMatch(/^Restart=on-failure$/m);
    expect(text).toMatch(/^RestartSteps=\d+$/m);
    expect(text).toMatch(/^RestartMaxDelaySec=\S+$/m);
    expect(text).toMatch(/^StartLimitIntervalSec=0$/m);
  });
});
