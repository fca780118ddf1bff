// Smoke test of the QEMU harness (src/qemu): cached root filesystem, overlay written without
// mounting, a boot, a oneshot unit that reports over the serial console (node version, MAC, the
// forwarded port works, the host is otherwise unreachable), a file read back from the image after
// shutdown. A second boot of the same image (unit skipped) and the QMP poweroff are covered by the
// provisioning scenarios (provisioning.test.ts), which do both anyway: one boot less for CI.
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuSkipReason } from './availability.ts';
import { ensureRootfs, type Rootfs } from '../../src/qemu/rootfs.ts';
import { enableUnit, makeImage, readFromImage, statInImage, type OverlayEntry } from '../../src/qemu/image.ts';
import { bootVm, macFromSeed, isUniversalMac, GUEST_HOST_ADDR } from '../../src/qemu/boot.ts';

const timings: Record<string, number> = {};
const t0 = () => Date.now();

// Guest side: report node's version, eth0's MAC, whether the forwarded host port answers and
// whether the host is reachable any other way (it must not be: slirp restrict=on).
const SMOKE_JS = `'use strict';
const fs = require('node:fs');
const net = require('node:net');
const port = Number(process.argv[2]);
const mac = fs.readFileSync('/sys/class/net/eth0/address', 'utf8').trim();
function probe(host) {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, 3000);
    s.on('data', (d) => { clearTimeout(t); s.destroy(); resolve('data:' + d.toString().trim()); });
    s.on('error', (e) => { clearTimeout(t); resolve('error:' + e.code); });
  });
}
(async () => {
  const fwd = await probe('${GUEST_HOST_ADDR}');
  const direct = await probe('10.0.2.254');
  const line = 'FP-SMOKE node=' + process.version + ' mac=' + mac + ' fwd=' + fwd + ' direct=' + direct;
  fs.mkdirSync('/var/lib/fp-smoke', { recursive: true, mode: 0o750 });
  fs.writeFileSync('/var/lib/fp-smoke/result.txt', line + '\\n', { mode: 0o640 });
  console.log(line);
})();
`;

const smokeUnit = (port: number) => `[Unit]
Description=fp smoke test
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/var/lib/fp-smoke/result.txt

[Service]
Type=oneshot
ExecStart=/usr/bin/node /usr/local/lib/fp-smoke/smoke.js ${port}
ExecStartPost=/bin/systemctl --no-block poweroff
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`;

describe.skipIf(qemuSkipReason)('qemu harness smoke', () => {
  let rootfs: Rootfs;
  let work: string;
  let server: Server;
  let port: number;
  let image: string;
  const mac = macFromSeed('fp-yocto smoke');
  const vmBase = () => ({ image, kernel: rootfs.kernel, initrd: rootfs.initrd, mac, forwards: [{ guestPort: port }] });
  // FP_QEMU_CONSOLE_DIR=dir keeps each boot's serial log there.
  const consoleLog = (name: string) =>
    process.env.FP_QEMU_CONSOLE_DIR ? join(process.env.FP_QEMU_CONSOLE_DIR, `smoke-${name}.log`) : undefined;

  beforeAll(async () => {
    let t = t0();
    rootfs = await ensureRootfs();
    timings[rootfs.cached ? 'rootfs cache hit ms' : 'rootfs build ms'] = Date.now() - t;
    if (!rootfs.cached) {
      t = t0();
      const again = await ensureRootfs();
      expect(again.cached).toBe(true);
      timings['rootfs cache hit ms'] = Date.now() - t;
    }
    work = await mkdtemp(join(tmpdir(), 'fp-qemu-smoke-'));
    server = createServer((s) => s.end('hello-from-host\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    server?.close();
    if (work) await rm(work, { recursive: true, force: true });
    console.log(`qemu smoke timings: ${JSON.stringify(timings)}`);
  });

  it('uses a universal MAC', () => {
    expect(isUniversalMac(mac)).toBe(true);
    expect(isUniversalMac('52:54:00:12:34:56')).toBe(false);
  });

  it('boots, runs the overlay unit, reports over the console and powers off', async () => {
    const overlay: OverlayEntry[] = [
      { path: '/usr/local/lib/fp-smoke/smoke.js', mode: 0o644, contents: SMOKE_JS },
      { path: '/lib/systemd/system/fp-smoke.service', mode: 0o644, contents: smokeUnit(port) },
      enableUnit('fp-smoke.service'),
      { path: '/etc/fp-smoke/owned-by-nobody', mode: 0o600, owner: 'nobody:nogroup', contents: 'x\n' },
    ];
    let t = t0();
    image = await makeImage({ base: rootfs.image, out: join(work, 'disk.img'), overlay });
    timings['image ms'] = Date.now() - t;
    const owned = await statInImage(image, '/etc/fp-smoke/owned-by-nobody');
    expect(owned).toMatchObject({ type: 'regular', mode: 0o600, uid: 65534, gid: 65534 });
    expect(await statInImage(image, '/usr/lib/systemd/system/fp-smoke.service')).toMatchObject({ mode: 0o644, uid: 0 });

    t = t0();
    const vm = await bootVm({ ...vmBase(), consoleLog: consoleLog('first-boot') });
    try {
      const line = await vm.waitForLine(/FP-SMOKE node=/, vm.kvm ? 120_000 : 900_000);
      timings['boot to unit ms'] = Date.now() - t;
      timings.kvm = vm.kvm ? 1 : 0;
      console.log(`guest said: ${line}`);
      expect(line).toMatch(/node=v(2\d|[3-9]\d)\./);
      expect(line).toContain(`mac=${mac}`);
      expect(line).toContain('fwd=data:hello-from-host');
      expect(line).not.toContain('direct=data:');
      // The unit powers the guest off itself: qemu exits 0.
      expect(await vm.waitForExit(120_000)).toBe(0);
      timings['boot to exit ms'] = Date.now() - t;
    } finally {
      await vm.kill();
    }

    const result = (await readFromImage(image, '/var/lib/fp-smoke/result.txt'))?.toString();
    expect(result).toMatch(new RegExp(`^FP-SMOKE node=v\\d+\\.\\S+ mac=${mac} fwd=data:hello-from-host`));
    expect(await statInImage(image, '/var/lib/fp-smoke/result.txt')).toMatchObject({ mode: 0o640, uid: 0, gid: 0 });
    expect(await statInImage(image, '/var/lib/fp-smoke')).toMatchObject({ type: 'directory', mode: 0o750 });
  });
});
