// Builds, once, a minimal Debian x86-64 systemd root filesystem for the QEMU first-boot test, and
// caches it under ~/.cache/fp-yocto/qemu/<key>/ as a bootable ext4 image plus the kernel and initrd
// for direct kernel boot. The key hashes everything that shapes the result (suite, package list,
// script version, the Node binary copied in), so a change rebuilds and an unchanged run reuses.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { GREENGRASS_GROUP } from '../shared/device-paths.ts';

/** Bump when the build steps below change in a way the package list does not show. */
export const ROOTFS_SCRIPT_VERSION = 6;

export const DEBIAN_SUITE = 'bookworm';

/**
 * Debian packages debootstrap adds to the minbase variant. Node is not among them: bookworm's
 * nodejs is 18, below the agent's minimum, so the host's own `node` (the one running this harness,
 * Node >= 20, linked only against glibc/libstdc++ that bookworm ships) is copied in instead.
 * No systemd-timesyncd: the guest cannot reach NTP, its clock comes from the host's RTC via
 * kvm-clock, and without a sync daemon time-sync.target is reached at once rather than never.
 */
export const GUEST_PACKAGES: readonly string[] = [
  'systemd',
  'systemd-sysv',
  'udev',
  'dbus', // systemd-logind needs it; logind turns QMP system_powerdown (ACPI button) into poweroff
  'kmod',
  'iproute2',
  'linux-image-amd64',
  'initramfs-tools',
  // The iotcored stand-in (greengrass-standin.ts): an MQTT client nobody here wrote, run as ggcore
  // with the identity the agent hands to Greengrass.
  'mosquitto-clients',
  // key.store tpm (the tpm scenario): Debian's equivalents of what the layer's meta-tpm dynamic
  // layer adds (META_TPM.packages in src/layer/model.ts: tpm2-tools, tpm2-openssl,
  // libtss2-tcti-device, openssl-bin). In the shared root filesystem, not a TPM-only variant: the
  // cache holds one key at a time, and a second debootstrap would cost minutes where these cost
  // a few MB (docs/qemu-test.md).
  'tpm2-tools',
  'tpm2-openssl',
  'libtss2-tcti-device0',
  'openssl',
  // FLEETPROV_TPM_TCTI = "tabrmd" (the tpm scenario): the user-space resource manager and its TCTI.
  // Bookworm's tpm2-openssl 1.1.1 hashes TLS in the TPM, which /dev/tpmrm0 cannot hold (the agent
  // refuses that pair: tpmProvider). Disabled below, dbus-activated on first use, as meta-tpm's
  // recipe leaves it (SYSTEMD_AUTO_ENABLE = "disable").
  'tpm2-abrmd',
  'libtss2-tcti-tabrmd0',
];

/**
 * Greengrass lite's service user, in its group (GREENGRASS_GROUP, the agent's default
 * greengrass.group), made as meta-aws's greengrass-lite recipe makes them (greengrass-lite_2.5.1.bb:
 * GROUPADD_PARAM "-r ggcore", USERADD_PARAM "-r -M -N -g ggcore -s /bin/false ggcore").
 */
export const GREENGRASS_USER = 'ggcore';

/** Host packages the harness needs (what .ci/run installs with apt-get). */
// python3 runs the layer's testimage case (oeqa-case.ts) against a booted guest. swtpm is the tpm
// scenario's TPM; tpm2-tools and swtpm's TCTI read its state back on the host (swtpm.ts).
export const HOST_PACKAGES: readonly string[] = ['debootstrap', 'qemu-system-x86', 'e2fsprogs', 'python3', 'swtpm', 'tpm2-tools', 'libtss2-tcti-swtpm0'];

/** Size of the cached ext4 image (sparse: only used blocks take disk space). */
export const ROOTFS_IMAGE_SIZE = '2G';

export interface RootfsKeyInput {
  suite: string;
  packages: readonly string[];
  scriptVersion: number;
  /** Node version and binary size of the node copied in. */
  node: string;
}

/** Pure: the cache key of a root filesystem. */
export function rootfsKey(input: RootfsKeyInput): string {
  const canonical = JSON.stringify({
    suite: input.suite,
    packages: [...input.packages].sort(),
    scriptVersion: input.scriptVersion,
    node: input.node,
  });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** Pure: the Debian mirror URI for `suite` from apt deb822 or one-line sources, if any. */
export function mirrorFromSources(texts: readonly string[], suite: string): string | undefined {
  for (const text of texts) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uris && suites.includes(suite)) return uris;
    }
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s/.exec(line.trim());
      if (m && m[2] === suite) return m[1];
    }
  }
  return undefined;
}

export function defaultMirror(suite = DEBIAN_SUITE): string {
  if (process.env.FP_QEMU_MIRROR) return process.env.FP_QEMU_MIRROR;
  const texts: string[] = [];
  if (existsSync('/etc/apt/sources.list')) texts.push(readFileSync('/etc/apt/sources.list', 'utf8'));
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) {
    // Sync read is fine: called once per build, before anything long.
    const names = readdirSync(dir).filter((n) => n.endsWith('.list') || n.endsWith('.sources'));
    for (const name of names.sort()) texts.push(readFileSync(join(dir, name), 'utf8'));
  }
  return mirrorFromSources(texts, suite) ?? 'http://deb.debian.org/debian';
}

export function cacheRoot(): string {
  return process.env.FP_QEMU_CACHE ?? join(homedir(), '.cache', 'fp-yocto', 'qemu');
}

export interface Rootfs {
  key: string;
  dir: string;
  /** ext4 image of the root filesystem; never boot it directly: copy it (see image.ts). */
  image: string;
  kernel: string;
  initrd: string;
  /** True when this call found the cache and built nothing. */
  cached: boolean;
  /** Node version inside the guest. */
  nodeVersion: string;
  /** Milliseconds the build took (debootstrap and all), 0 on a cache hit. */
  buildMs: number;
}

interface Meta {
  key: string;
  suite: string;
  mirror: string;
  packages: string[];
  nodeVersion: string;
  kernelVersion: string;
  buildMs: number;
  debootstrapMs: number;
  builtAt: string;
}

export interface EnsureRootfsOptions {
  cacheDir?: string;
  mirror?: string;
  /** Node binary to copy into the guest; default: the one running this process. */
  nodeBinary?: string;
  log?: (line: string) => void;
}

function nodeIdentity(nodeBinary: string): string {
  return `${process.version}:${statSync(nodeBinary).size}`;
}

/** Returns the cached root filesystem for the current inputs, building it first if absent. */
export async function ensureRootfs(opts: EnsureRootfsOptions = {}): Promise<Rootfs> {
  const nodeBinary = opts.nodeBinary ?? process.execPath;
  const key = rootfsKey({
    suite: DEBIAN_SUITE,
    packages: GUEST_PACKAGES,
    scriptVersion: ROOTFS_SCRIPT_VERSION,
    node: nodeIdentity(nodeBinary),
  });
  const root = opts.cacheDir ?? cacheRoot();
  const dir = join(root, key);
  const result = (cached: boolean, buildMs: number): Rootfs => {
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
    return {
      key,
      dir,
      image: join(dir, 'rootfs.ext4'),
      kernel: join(dir, 'vmlinuz'),
      initrd: join(dir, 'initrd.img'),
      cached,
      nodeVersion: meta.nodeVersion,
      buildMs,
    };
  };
  // meta.json is written last inside the temp dir, and the dir is renamed whole: its presence
  // under the final name means a complete build.
  if (existsSync(join(dir, 'meta.json'))) return result(true, 0);

  const log = opts.log ?? ((l: string) => process.stderr.write(`[qemu-rootfs] ${l}\n`));
  const mirror = opts.mirror ?? defaultMirror();
  await mkdir(root, { recursive: true });
  const tmp = join(root, `.build-${key}-${process.pid}-${Date.now()}`);
  const tree = join(tmp, 'tree');
  await mkdir(tree, { recursive: true });
  const started = Date.now();
  try {
    log(`debootstrap ${DEBIAN_SUITE} from ${mirror} into ${tree}`);
    await execa(
      'debootstrap',
      [
        '--variant=minbase',
        `--include=${GUEST_PACKAGES.join(',')}`,
        '--components=main',
        DEBIAN_SUITE,
        tree,
        mirror,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], all: true, env: { DEBIAN_FRONTEND: 'noninteractive' } },
    );
    const debootstrapMs = Date.now() - started;
    log(`debootstrap done in ${(debootstrapMs / 1000).toFixed(0)} s`);

    await configureTree(tree, nodeBinary);
    const nodeVersion = (await execa('chroot', [tree, '/usr/bin/node', '--version'])).stdout.trim();
    log(`node in guest: ${nodeVersion}`);
    await execa('chroot', [tree, 'sh', '-c', `command -v mosquitto_rr && id ${GREENGRASS_USER}`]);
    // What key.store tpm runs in the guest: tpm2-tools, openssl and its tpm2 provider module (which
    // cannot be loaded here: it opens the TPM when it loads), and the device TCTI.
    await execa('chroot', [tree, 'sh', '-c', 'command -v tpm2_createprimary tpm2_evictcontrol tpm2_readpublic openssl && ls /usr/lib/*/ossl-modules/tpm2.so /usr/lib/*/libtss2-tcti-device.so.0 /usr/lib/*/libtss2-tcti-tabrmd.so.0 /usr/share/dbus-1/system-services/com.intel.tss2.Tabrmd.service']);

    const bootDir = join(tree, 'boot');
    const bootFiles = await readdir(bootDir);
    const vmlinuz = bootFiles.find((f) => f.startsWith('vmlinuz-'));
    const initrd = bootFiles.find((f) => f.startsWith('initrd.img-'));
    if (!vmlinuz || !initrd) throw new Error(`no kernel/initrd in ${bootDir}: ${bootFiles.join(' ')}`);
    await copyFile(join(bootDir, vmlinuz), join(tmp, 'vmlinuz'));
    await copyFile(join(bootDir, initrd), join(tmp, 'initrd.img'));

    log('mkfs.ext4 -d (ownership and modes come from the tree, built as root)');
    await execa('mkfs.ext4', [
      '-q',
      '-F',
      '-L',
      'fp-root',
      '-E',
      'root_owner=0:0',
      '-d',
      tree,
      join(tmp, 'rootfs.ext4'),
      ROOTFS_IMAGE_SIZE,
    ]);
    await rm(tree, { recursive: true, force: true });

    const buildMs = Date.now() - started;
    const meta: Meta = {
      key,
      suite: DEBIAN_SUITE,
      mirror,
      packages: [...GUEST_PACKAGES],
      nodeVersion,
      kernelVersion: vmlinuz.slice('vmlinuz-'.length),
      buildMs,
      debootstrapMs,
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another run finished the same key first: theirs is as good as ours.
      if (existsSync(join(dir, 'meta.json'))) await rm(tmp, { recursive: true, force: true });
      else throw err;
    }
    log(`rootfs ${key} built in ${(buildMs / 1000).toFixed(0)} s`);
    await pruneStale(root, key);
    return result(false, buildMs);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** Removes root filesystems of other keys (superseded) and build dirs abandoned over 2 h ago. */
async function pruneStale(root: string, keep: string): Promise<void> {
  for (const name of await readdir(root)) {
    const path = join(root, name);
    const stale =
      (/^[0-9a-f]{16}$/.test(name) && name !== keep) ||
      (name.startsWith('.build-') && Date.now() - statSync(path).mtimeMs > 2 * 3600_000);
    if (stale) await rm(path, { recursive: true, force: true });
  }
}

/** Module trees (under lib/modules/<kver>/kernel) no QEMU virtio guest loads. */
const PRUNED_MODULE_DIRS = [
  'drivers/gpu',
  'drivers/media',
  'drivers/net/wireless',
  'drivers/net/ethernet',
  'drivers/infiniband',
  'drivers/staging',
  'drivers/bluetooth',
  'drivers/isdn',
  'drivers/iio',
  'drivers/scsi',
  'drivers/usb',
  'drivers/hid',
  'sound',
  'net/bluetooth',
  'net/wireless',
  'net/mac80211',
  'fs/xfs',
  'fs/btrfs',
  'fs/ocfs2',
  'fs/gfs2',
];

const NETWORK_UNIT = `[Match]
Name=eth0

[Network]
DHCP=ipv4
`;

/** Post-debootstrap configuration of the tree (runs as root on the host, no chroot services). */
async function configureTree(tree: string, nodeBinary: string): Promise<void> {
  const w = (rel: string, text: string) => writeFile(join(tree, rel), text);
  const ln = async (target: string, rel: string) => {
    await mkdir(join(tree, rel, '..'), { recursive: true });
    await rm(join(tree, rel), { force: true });
    await execa('ln', ['-s', target, join(tree, rel)]);
  };
  await w('etc/hostname', 'fp-qemu\n');
  await w('etc/hosts', '127.0.0.1 localhost\n127.0.1.1 fp-qemu\n');
  await w('etc/fstab', '/dev/vda / ext4 rw,relatime 0 1\n');
  // Empty machine-id: systemd generates one on first boot (ConditionFirstBoot semantics).
  await w('etc/machine-id', '');
  await rm(join(tree, 'var/lib/dbus/machine-id'), { force: true });
  // DHCP on slirp via systemd-networkd (part of the systemd package in bookworm).
  await mkdir(join(tree, 'etc/systemd/network'), { recursive: true });
  await w('etc/systemd/network/20-eth0.network', NETWORK_UNIT);
  await ln(
    '/lib/systemd/system/systemd-networkd.service',
    'etc/systemd/system/multi-user.target.wants/systemd-networkd.service',
  );
  await ln(
    '/lib/systemd/system/systemd-networkd-wait-online.service',
    'etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service',
  );
  // No login prompts on the serial console: the harness never logs in, and getty output would
  // interleave with the journal lines the host matches on.
  await ln('/dev/null', 'etc/systemd/system/serial-getty@ttyS0.service');
  await ln('/dev/null', 'etc/systemd/system/getty@tty1.service');
  // Greengrass lite's user, as its package's useradd makes it on a Yocto image.
  await execa('chroot', [tree, 'groupadd', '-r', GREENGRASS_GROUP]);
  await execa('chroot', [tree, 'useradd', '-r', '-M', '-N', '-g', GREENGRASS_GROUP, '-s', '/bin/false', GREENGRASS_USER]);
  // tpm2-abrmd starts when a client asks for its bus name (its D-Bus service file names the unit),
  // never at boot: a guest without a TPM would otherwise wait on dev-tpm0.device and fail the unit.
  await rm(join(tree, 'etc/systemd/system/multi-user.target.wants/tpm2-abrmd.service'), { force: true });
  // Boot straight to multi-user (no display manager anyway).
  await ln('/lib/systemd/system/multi-user.target', 'etc/systemd/system/default.target');
  // No background jobs during a test boot (they would also try the network, which is blocked).
  for (const unit of ['apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'e2scrub_all.timer', 'fstrim.timer']) {
    await ln('/dev/null', `etc/systemd/system/${unit}`);
  }
  // Smaller image: drop kernel modules for hardware a virtio VM never has, docs, man pages, locales.
  const modRoot = join(tree, 'usr/lib/modules');
  for (const kver of await readdir(modRoot)) {
    for (const sub of PRUNED_MODULE_DIRS) await rm(join(modRoot, kver, 'kernel', sub), { recursive: true, force: true });
    await execa('chroot', [tree, 'depmod', '-a', kver]);
  }
  await execa('sh', ['-c', `rm -rf "${tree}"/usr/share/doc/* "${tree}"/usr/share/man/* "${tree}"/usr/share/locale/*`]);
  // A small initrd: the stock one (MODULES=most, 36 MB) takes seconds to unpack under TCG. The
  // root disk only needs virtio-pci, virtio-blk and ext4; udev loads the rest from the root fs.
  await w('etc/initramfs-tools/conf.d/fp-qemu.conf', 'MODULES=list\n');
  await w('etc/initramfs-tools/modules', 'virtio_pci\nvirtio_blk\next4\n');
  await execa('chroot', [tree, 'update-initramfs', '-u', '-k', 'all']);
  // Node: see GUEST_PACKAGES.
  await copyFile(nodeBinary, join(tree, 'usr/bin/node'));
  await chmod(join(tree, 'usr/bin/node'), 0o755);
  // Smaller image: package caches are not needed at run time.
  await execa('sh', ['-c', `rm -rf "${tree}"/var/cache/apt/archives/*.deb "${tree}"/var/lib/apt/lists/*`]);
}
