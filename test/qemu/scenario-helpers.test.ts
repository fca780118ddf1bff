// Pure parts of the first-boot scenarios (no VM): the device's config.yaml,
// the host preflight, console time stamps, systemd time spans.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deviceConfigYaml } from '../../src/qemu/device-image.ts';
import { preflightProblem, missingHostPackages } from '../../src/qemu/preflight.ts';
import { guestSeconds, unitLine } from '../../src/qemu/console.ts';
import { systemdSeconds } from '../../src/qemu/scenarios.ts';
import { parseAgentConfig } from '../../src/shared/config.ts';

describe('config.yaml for the QEMU device', () => {
  it('is accepted by the agent\'s config parser and points at the forwarded port', () => {
    const text = deviceConfigYaml({ port: 4321, region: 'us-east-1', templateName: 'tpl', clientIdPrefix: 'fleetprov-', claimDir: '/x' });
    expect(parse(text)).toMatchObject({ iotDataEndpoint: '10.0.2.2', port: 4321, greengrass: { enabled: true }, deviceId: { source: 'mac' } });
    const config = parseAgentConfig(text, 'config.yaml');
    expect(config.templateParams).toEqual({ DeviceId: '${deviceId}' });
  });
});

describe('scenario helpers', () => {
  it('names the Debian packages of missing host tools in one line', () => {
    expect(missingHostPackages(() => true)).toEqual([]);
    expect(missingHostPackages((c) => c !== 'qemu-system-x86_64')).toEqual(['qemu-system-x86']);
    const line = preflightProblem((c) => c !== 'debootstrap' && c !== 'debugfs')!;
    expect(line).toMatch(/needs debootstrap, e2fsprogs .*apt-get install -y debootstrap qemu-system-x86 e2fsprogs/);
    expect(line).not.toContain('\n');
    // The tpm scenario's software TPM and what reads its state back (a tool and a TCTI library).
    expect(missingHostPackages((c) => c !== 'swtpm' && c !== 'libtss2-tcti-swtpm.so.0')).toEqual(['swtpm', 'libtss2-tcti-swtpm0']);
  });

  it('reads guest time stamps and unit lines', () => {
    const l = '[  154.639769] systemd[1]: Finished ggl.gg_pre-fleetprovisioning.service - Fleet provisioning: read the device id.';
    expect(guestSeconds(l)).toBeCloseTo(154.639769);
    expect(guestSeconds('no stamp')).toBeUndefined();
    expect(unitLine.finished('ggl.gg_pre-fleetprovisioning.service').test(l)).toBe(true);
    expect(unitLine.finished('ggl.gg_fleetprovisioning.service').test(l)).toBe(false);
    expect(
      unitLine.exited('ggl.gg_fleetprovisioning.service', 78).test('[ 1.0] systemd[1]: ggl.gg_fleetprovisioning.service: Main process exited, code=exited, status=78/CONFIG'),
    ).toBe(true);
  });

  it('parses the layer\'s systemd time spans', () => {
    expect(systemdSeconds('10s')).toBe(10);
    expect(systemdSeconds('5min')).toBe(300);
    expect(systemdSeconds('1h')).toBe(3600);
    expect(() => systemdSeconds('soon')).toThrow();
  });
});

