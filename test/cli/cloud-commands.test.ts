// fp-yocto init / status / rotate-claim / destroy as a user runs them: the built CLI, real files,
// and for --local a real emulator in the background (stopped by each test that started it).
import Database from 'better-sqlite3';
import { readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { projectPaths, type ProjectState } from '../../src/cloud/project.ts';
import { TEMPLATE_FILE } from '../../src/cloud/template-yaml.ts';
import { connectEmulator } from '../../src/emulator/index.ts';
import { makeClaimKey } from '../../src/cloud/claim.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { connectMqtt, fleetRequest } from '../helpers/emulator.ts';
import { ROOT, runCli } from '../helpers/run.ts';
import { freePort, stopEmulatorAtEnd } from '../helpers/project.ts';
import { tmpDir } from '../helpers/tmp.ts';

/** The CLI's result with its output as text. */
async function cli(args: string[], options: Parameters<typeof runCli>[1] = {}): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  const r = await runCli(args, options);
  return { exitCode: r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

const readState = async (dir: string): Promise<ProjectState> => JSON.parse(await readFile(projectPaths(dir).stateFile, 'utf8'));

/** An environment with no AWS configuration at all (and no instance metadata to fall back on). */
async function noAwsEnv(): Promise<Record<string, string>> {
  const home = await tmpDir('fp-home-');
  return {
    PATH: process.env.PATH!,
    HOME: home,
    NO_COLOR: '1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: path.join(home, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'credentials'),
  };
}

describe('fp-yocto init --local and the commands after it', () => {
  it('sets up an empty dir without prompts, is idempotent, rotates, reports and destroys', { timeout: 90_000 }, async () => {
    const dir = path.join(await tmpDir(), 'project');
    const paths = projectPaths(dir);
    const port = await freePort();
    stopEmulatorAtEnd(paths.emulatorDir);

    const init = await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(port)]);
    expect(init.stderr).toBe('');
    expect(init.exitCode).toBe(0);
    expect(init.stdout).toContain(`started the local emulator on localhost:${port}`);
    expect(init.stdout).toContain('+ ProvisioningTemplate (AWS::IoT::ProvisioningTemplate)');
    expect(init.stdout).not.toContain('PRIVATE KEY');

    expect((await stat(paths.claimKey)).mode & 0o777).toBe(0o600);
    expect(await readFile(paths.claimCert, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(await readFile(paths.rootCa, 'utf8')).toBe(await readFile(path.join(paths.emulatorDir, 'root-ca.pem'), 'utf8'));
    expect(await readFile(paths.gitignore, 'utf8')).toMatch(/^claim\/$[\s\S]*^\.fp-yocto\/$/m);
    const conf = await readFile(paths.confSample, 'utf8');
    expect(conf).toContain(`FLEETPROV_PORT = "${port}"`);
    expect(conf).toContain('FLEETPROV_IOT_DATA_ENDPOINT = "10.0.2.2"');
    expect(conf).toContain('INIT_MANAGER = "systemd"');
    expect(conf).toContain(`FLEETPROV_AGENT_DIR = "${path.join(ROOT, 'dist')}"`);
    // init renders the layer too: exactly what `fp-yocto render` would write.
    const check = await cli(['render', '--check', '--dir', dir]);
    expect(check.stdout).toMatch(/meta-fleetprovisioning: up to date \(\d+ files\)/);
    expect(check.exitCode).toBe(0);
    const state = await readState(dir);
    expect(state).toMatchObject({ provider: 'local', stackName: 'fp-yocto', port, names: { templateName: 'fp-yocto-provisioning' } });
    expect(state.certificates).toHaveLength(1);
    const first = state.certificates[0]!.certificateId;

    const control = (await connectEmulator(paths.emulatorDir))!;
    expect(await control.describeCertificate(first)).toMatchObject({ status: 'ACTIVE' });
    expect(await control.listAttachedPolicies(first)).toEqual(['fp-yocto-claim']);
    expect((await control.describeProvisioningTemplate('fp-yocto-provisioning'))?.enabled).toBe(true);

    // No --local: the project remembers its provider, stack and port.
    const again = await cli(['init', '--yes', '--dir', dir]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain('no changes');
    expect(again.stdout).not.toContain('started the local emulator');
    expect((await readState(dir)).certificates).toHaveLength(1);

    const status = await cli(['status', '--dir', dir]);
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toContain('stack      fp-yocto (local emulator): CREATE_COMPLETE');
    expect(status.stdout).toContain(`claim      ${first.slice(0, 12)}… ACTIVE, expires `);
    expect(status.stdout).toContain('things     0 in group fp-yocto-devices');

    const rotate = await cli(['rotate-claim', '--dir', dir, '--grace', '0']);
    expect(rotate.exitCode).toBe(0);
    expect(rotate.stdout).toContain(`deactivated claim certificate ${first.slice(0, 12)}…`);
    const rotated = await readState(dir);
    expect(rotated.certificates).toHaveLength(2);
    expect(rotated.certificates[0]).toMatchObject({ certificateId: first, deactivatedAt: expect.any(String) });
    const second = rotated.certificates[1]!.certificateId;
    expect(await control.describeCertificate(first)).toMatchObject({ status: 'INACTIVE' });
    expect(await control.describeCertificate(second)).toMatchObject({ status: 'ACTIVE' });
    expect((await stat(paths.claimKey)).mode & 0o777).toBe(0o600);

    const refused = await cli(['destroy', '--dir', dir]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.trim()).toBe('error: destroy needs confirmation: run `fp-yocto destroy --yes` to delete stack fp-yocto');

    await control.createPolicy('not-ours', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: 'arn:aws:iot:*:*:client/x' }] }));
    const { pid } = JSON.parse(await readFile(path.join(paths.emulatorDir, 'emulator.json'), 'utf8'));
    const destroy = await cli(['destroy', '--dir', dir, '--yes']);
    expect(destroy.stderr).toBe('');
    expect(destroy.exitCode).toBe(0);
    // The emulator init started is stopped, and what it flushed on the way out shows the deletions.
    expect(destroy.stdout).toContain(`stopped the local emulator (its registry stays in ${paths.emulatorDir})`);
    expect(() => process.kill(pid, 0)).toThrow();
    const registry = new Database(path.join(paths.emulatorDir, 'registry.sqlite3'), { readonly: true });
    onTestFinished(() => void registry.close());
    const names = (sql: string) => registry.prepare(sql).pluck().all() as string[];
    expect(names('SELECT certificate_id FROM certificates').filter((id) => id === first || id === second)).toEqual([]);
    expect(names('SELECT template_name FROM provisioning_templates')).toEqual([]);
    expect(names('SELECT policy_name FROM policies')).toEqual(['not-ours']);
    await expect(stat(paths.claimKey)).rejects.toThrow();
    await expect(stat(paths.stateFile)).rejects.toThrow();
  });
});

describe('fp-yocto destroy --local once a device has provisioned (issue 12, defect 2)', () => {
  it('asks what becomes of the fleet, then --delete-fleet removes it and ends clean', { timeout: 90_000 }, async () => {
    const dir = path.join(await tmpDir(), 'project');
    const paths = projectPaths(dir);
    const port = await freePort();
    stopEmulatorAtEnd(paths.emulatorDir);
    expect((await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(port)])).exitCode).toBe(0);

    // A device provisions with the claim files init wrote, as the agent would.
    const claim = { certPem: await readFile(paths.claimCert, 'utf8'), keyPem: await readFile(paths.claimKey, 'utf8') };
    const emulator = { endpoint: 'localhost', port, caPem: await readFile(paths.rootCa, 'utf8') };
    const client = await connectMqtt(emulator, claim, { clientId: 'fleetprov-aabbccddeeff' });
    const created = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeClaimKey('device').csrPem });
    const registered = await fleetRequest(client, TOPICS.registerThing('fp-yocto-provisioning'), {
      certificateOwnershipToken: created.body.certificateOwnershipToken,
      parameters: { DeviceId: 'aabbccddeeff' },
    });
    expect(registered.body).toMatchObject({ thingName: 'fp-yocto-aabbccddeeff' });
    await client.endAsync();

    const refused = await cli(['destroy', '--yes', '--dir', dir]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.trim()).toBe(
      'error: 1 device(s) provisioned in thing group fp-yocto-devices: run `fp-yocto destroy --delete-fleet` to delete their things and certificates too, or `fp-yocto destroy --keep-fleet` to leave them (and policy fp-yocto-device, which they hold)',
    );
    const destroy = await cli(['destroy', '--yes', '--delete-fleet', '--dir', dir]);
    expect(destroy.stderr).toBe('');
    expect(destroy.exitCode).toBe(0);
    expect(destroy.stdout).toContain('- thing fp-yocto-aabbccddeeff and 1 certificate(s)');
    expect(destroy.stdout).toContain('- policy fp-yocto-device');
    expect(destroy.stdout).toContain('nothing fp-yocto created is left');
    const registry = new Database(path.join(paths.emulatorDir, 'registry.sqlite3'), { readonly: true });
    onTestFinished(() => void registry.close());
    const count = (table: string) => registry.prepare(`SELECT count(*) FROM ${table}`).pluck().get();
    expect([count('things'), count('certificates'), count('policies'), count('dynamodb_tables')]).toEqual([0, 0, 0, 0]);
  });
});

describe('fp-yocto cloud commands: errors are one clear line', () => {
  const oneLine = (stderr: string) => {
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    return lines[0];
  };

  it('no AWS region', async () => {
    const dir = await tmpDir();
    const result = await cli(['init', '--yes', '--dir', dir], { env: await noAwsEnv(), extendEnv: false });
    expect(result.exitCode).toBe(1);
    expect(oneLine(result.stderr)).toBe(
      'error: no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or set region in your AWS profile (~/.aws/config)',
    );
  });

  it('no AWS credentials', async () => {
    const dir = await tmpDir();
    const result = await cli(['init', '--yes', '--dir', dir, '--region', 'eu-west-1'], { env: await noAwsEnv(), extendEnv: false });
    expect(result.exitCode).toBe(1);
    expect(oneLine(result.stderr)).toMatch(/^error: no AWS credentials found \(run `aws configure` or `aws sso login`, or set AWS_PROFILE\)/);
    await expect(stat(projectPaths(dir).stateFile)).rejects.toThrow();
  });

  it.each([
    [['init', '--yes', '--region', 'Europe'], 'error: --region "Europe": expected an AWS region such as eu-west-1', 64],
    [['init', '--yes', '--stack-name', '9lives'], 'error: --stack-name "9lives": expected a letter then up to 22 letters, digits or dashes', 64],
    [
      ['init', '--yes', '--allow-list', 'aa:bb:cc'],
      'error: --allow-list "aa:bb:cc": expected a file of device ids (one a line, or a CSV with a deviceId header) or ids separated by commas (a MAC address such as aa:bb:cc:dd:ee:ff or aabbccddeeff)',
      64,
    ],
    [['init', '--yes', '--device-id-source', 'serial'], 'error: --device-id-source "serial": expected mac, machine-id, device-tree-serial, dmi-serial, file', 64],
    [['init', '--local', '--yes', '--port', 'http'], 'error: --port "http": expected a port number from 0 to 65535', 64],
    [['rotate-claim', '--grace', 'soon'], 'error: --grace "soon": expected a duration such as 0, 30m, 24h or 7d', 64],
  ])('%j', async (args, message, code) => {
    const dir = await tmpDir();
    const result = await cli([...args, '--dir', dir]);
    expect(oneLine(result.stderr)).toBe(message);
    expect(result.exitCode).toBe(code);
  });

  it.each([['status'], ['rotate-claim'], ['destroy', '--yes'], ['devices', 'list'], ['devices', 'allow', 'aabbccddeeff']])('%s outside a project', async (...args) => {
    const dir = await tmpDir();
    const result = await cli([...args, '--dir', dir]);
    expect(result.exitCode).toBe(1);
    expect(oneLine(result.stderr)).toBe(`error: ${dir}: no fp-yocto project here (run \`fp-yocto init\` first, or pass --dir)`);
  });

  it('says clearly when the emulator port is taken', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as net.AddressInfo;
    const dir = await tmpDir();
    stopEmulatorAtEnd(projectPaths(dir).emulatorDir);
    const result = await cli(['init', '--local', '--yes', '--dir', dir, '--port', String(port)]);
    expect(result.exitCode).toBe(1);
    expect(oneLine(result.stderr)).toBe(`error: port ${port} is already in use by another program: pass --port with a free port`);
  });

  it('a state file from elsewhere is named, not parsed blindly', async () => {
    const dir = await tmpDir();
    const paths = projectPaths(dir);
    await cli(['init', '--write-template', path.join(dir, 'x.yaml')]);
    await import('node:fs/promises').then((fs) => fs.mkdir(paths.stateDir, { recursive: true }));
    await writeFile(paths.stateFile, '{"hello":1}');
    const result = await cli(['status', '--dir', dir]);
    expect(oneLine(result.stderr)).toBe(`error: ${paths.stateFile}: not a state file written by fp-yocto (fix or remove it)`);
  });
});

describe('fp-yocto --help (issue 12, defect 9)', () => {
  it('prints one short line per command, like aws, gh and cdk, without loading any command', async () => {
    const result = await cli(['--help']);
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(100);
    expect(result.stdout).not.toMatch(/ {20,}/);
    const commands = lines.filter((l) => /^ {2}\S/.test(l)).map((l) => l.trim().split(/\s+/)[0]);
    expect(commands).toEqual(['init', 'render', 'status', 'devices', 'rotate-claim', 'destroy', 'emulator', 'simulate', 'qemu-test']);
    expect(result.stdout).toContain('Run `fp-yocto <command> --help`');
    // The long descriptions stay with each command.
    expect(result.stdout).not.toContain('Writes claim/');
    expect((await cli([])).stdout).toBe(result.stdout);
  });
});

describe('fp-yocto init --print-operator-policy', () => {
  it('prints a least-privilege IAM policy document for the stack name given', async () => {
    const result = await cli(['init', '--print-operator-policy', '--stack-name', 'fleet', '--region', 'eusc-de-east-1']);
    expect(result.exitCode).toBe(0);
    const policy = JSON.parse(result.stdout);
    expect(policy.Version).toBe('2012-10-17');
    const text = JSON.stringify(policy);
    expect(text).toContain('arn:aws:cloudformation:eusc-de-east-1:*:stack/fleet/*');
    expect(text).toContain('"iam:PassedToService"');
  });
});

describe('fp-yocto destroy flags', () => {
  it('refuses --delete-fleet with --keep-fleet', async () => {
    const dir = await tmpDir();
    const result = await cli(['destroy', '--delete-fleet', '--keep-fleet', '--dir', dir]);
    expect(result.stderr.trim()).toBe('error: --delete-fleet and --keep-fleet: choose one');
    expect(result.exitCode).toBe(64);
  });
});

describe('fp-yocto init --write-template', () => {
  it('writes the same template as the committed one', async () => {
    const file = path.join(await tmpDir(), 'stack.yaml');
    const result = await cli(['init', '--write-template', file]);
    expect(result.exitCode).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(await readFile(path.join(ROOT, TEMPLATE_FILE), 'utf8'));
  });

  it('shows examples in --help', async () => {
    const result = await cli(['init', '--help']);
    expect(result.stdout).toContain('fp-yocto init --local --yes');
    expect(result.stdout).toContain('--no-greengrass');
    expect((await cli(['rotate-claim', '--help'])).stdout).toContain('EventBridge Scheduler one-time schedule');
    expect((await cli(['destroy', '--help'])).stdout).toContain('--delete-fleet');
  });
});
