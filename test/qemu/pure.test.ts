// Pure helpers of the QEMU harness: no VM, no debootstrap.
import { describe, expect, it } from 'vitest';
import { mirrorFromSources, rootfsKey } from '../../src/qemu/rootfs.ts';
import { canonicalGuestPath, enableUnit, parseIdFile, parseStat, resolveOwner } from '../../src/qemu/image.ts';
import { isUniversalMac, kvmBootsStockKernels, macFromSeed, plainMac } from '../../src/qemu/boot.ts';
import { overlayFromManifest } from '../../src/qemu/overlay-from-manifest.ts';

describe('rootfs helpers', () => {
  it('keys change with the package list but not its order', () => {
    const base = { suite: 'bookworm', packages: ['a', 'b'], scriptVersion: 1, node: 'v20.1.0:1' };
    expect(rootfsKey(base)).toBe(rootfsKey({ ...base, packages: ['b', 'a'] }));
    expect(rootfsKey(base)).not.toBe(rootfsKey({ ...base, packages: ['a', 'b', 'c'] }));
    expect(rootfsKey(base)).not.toBe(rootfsKey({ ...base, scriptVersion: 2 }));
    expect(rootfsKey(base)).not.toBe(rootfsKey({ ...base, node: 'v22.0.0:1' }));
  });

  it('finds the mirror for a suite in deb822 and one-line sources', () => {
    const deb822 = 'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n';
    expect(mirrorFromSources([deb822], 'bookworm')).toBe('http://mirror.example/debian');
    expect(mirrorFromSources(['deb [arch=amd64] http://m2.example/debian bookworm main\n'], 'bookworm')).toBe(
      'http://m2.example/debian',
    );
    expect(mirrorFromSources([deb822], 'trixie')).toBeUndefined();
  });
});

describe('image helpers', () => {
  it('canonicalises merged-/usr paths', () => {
    expect(canonicalGuestPath('/lib/systemd/system/x.service')).toBe('/usr/lib/systemd/system/x.service');
    expect(canonicalGuestPath('/bin/sh')).toBe('/usr/bin/sh');
    expect(canonicalGuestPath('/etc//a/')).toBe('/etc/a');
    expect(canonicalGuestPath('/library')).toBe('/library');
    expect(() => canonicalGuestPath('etc/a')).toThrow(/absolute/);
  });

  it('makes the enablement symlink systemctl enable would', () => {
    expect(enableUnit('a.service')).toEqual({
      type: 'symlink',
      path: '/etc/systemd/system/multi-user.target.wants/a.service',
      target: '/usr/lib/systemd/system/a.service',
    });
  });

  it('resolves owners by name or number', () => {
    const users = parseIdFile('root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n');
    const groups = parseIdFile('root:x:0:\nnogroup:x:65534:\nnobody:x:65000:\n');
    expect(resolveOwner({}, users, groups)).toEqual({ uid: 0, gid: 0 });
    expect(resolveOwner({ owner: 'nobody:nogroup' }, users, groups)).toEqual({ uid: 65534, gid: 65534 });
    expect(resolveOwner({ owner: 'nobody' }, users, groups)).toEqual({ uid: 65534, gid: 65000 });
    expect(resolveOwner({ owner: '12:34' }, users, groups)).toEqual({ uid: 12, gid: 34 });
    expect(resolveOwner({ owner: 'root', group: 'nogroup' }, users, groups)).toEqual({ uid: 0, gid: 65534 });
    expect(resolveOwner({ owner: 'nobody', gid: 7 }, users, groups)).toEqual({ uid: 65534, gid: 7 });
    expect(() => resolveOwner({ owner: 'ghost' }, users, groups)).toThrow(/unknown user/);
  });

  it('parses debugfs stat output', () => {
    const out = `Inode: 16   Type: regular    Mode:  0600   Flags: 0x80000
Generation: 0    Version: 0x00000000:00000000
User:  1234   Group:     5   Project:     0   Size: 5
File ACL: 0`;
    expect(parseStat(out)).toEqual({ type: 'regular', mode: 0o600, uid: 1234, gid: 5, size: 5 });
  });
});

describe('accelerator', () => {
  it('uses KVM only when the CPU has hardware virtualisation (not a paravirtual /dev/kvm)', () => {
    expect(kvmBootsStockKernels('flags\t\t: fpu vme de pse vmx sse\n', true)).toBe(true);
    expect(kvmBootsStockKernels('flags\t\t: fpu svm\n', true)).toBe(true);
    expect(kvmBootsStockKernels('flags\t\t: fpu vme de pse hypervisor\n', true)).toBe(false);
    expect(kvmBootsStockKernels('flags\t\t: fpu vmx\n', false)).toBe(false);
  });
});

describe('MACs', () => {
  it('tells universal from locally administered and multicast', () => {
    expect(isUniversalMac('00:16:3e:01:02:03')).toBe(true);
    expect(isUniversalMac('a4:5e:60:00:00:01')).toBe(true);
    expect(isUniversalMac('52:54:00:12:34:56')).toBe(false);
    expect(isUniversalMac('01:00:5e:00:00:01')).toBe(false);
    expect(isUniversalMac('00:16:3e:01:02')).toBe(false);
  });

  it('derives stable universal MACs and plain ids', () => {
    const a = macFromSeed('x');
    expect(a).toBe(macFromSeed('x'));
    expect(a).not.toBe(macFromSeed('y'));
    expect(isUniversalMac(a)).toBe(true);
    expect(plainMac('00:16:3E:0A:0B:0C')).toBe('00163e0a0b0c');
  });
});

describe('overlay from the install manifest', () => {
  it('maps dirs, files (through the resolver) and enablement symlinks one to one', () => {
    type Src = { kind: 'bundle' } | { kind: 'claim'; file: string };
    const manifest = [
      { type: 'dir' as const, path: '/usr/bin', mode: 0o755, owner: 'root', group: 'root' },
      { type: 'file' as const, path: '/usr/bin/fp-agent', mode: 0o755, owner: 'root', group: 'root', source: { kind: 'bundle' } as Src },
      { type: 'file' as const, path: '/etc/fleetprovisioning/claim/claim.key.pem', mode: 0o600, owner: 'root', group: 'root', source: { kind: 'claim', file: 'claim.key.pem' } as Src },
      { type: 'symlink' as const, path: '/etc/systemd/system/multi-user.target.wants/a.service', target: '/usr/lib/systemd/system/a.service' },
    ];
    const overlay = overlayFromManifest<Src>(manifest, (s) =>
      s.kind === 'bundle' ? { sourcePath: '/repo/dist/fp-agent' } : { contents: `pem of ${s.file}` },
    );
    expect(overlay).toEqual([
      { type: 'dir', path: '/usr/bin', mode: 0o755, owner: 'root', group: 'root' },
      { type: 'file', path: '/usr/bin/fp-agent', mode: 0o755, owner: 'root', group: 'root', sourcePath: '/repo/dist/fp-agent' },
      { type: 'file', path: '/etc/fleetprovisioning/claim/claim.key.pem', mode: 0o600, owner: 'root', group: 'root', contents: 'pem of claim.key.pem' },
      { type: 'symlink', path: '/etc/systemd/system/multi-user.target.wants/a.service', target: '/usr/lib/systemd/system/a.service' },
    ]);
    expect(() => overlayFromManifest([{ type: 'file', path: '/x', mode: 0o644 }], () => ({ contents: '' }))).toThrow(/no source/);
  });
});
