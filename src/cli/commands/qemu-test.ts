import { defineCommand } from 'citty';
import { EXIT, UserError } from '../../shared/errors.ts';

const DESCRIPTION = `Boot a device in QEMU and check that it provisions itself on first boot.

Builds (once, then cached in ~/.cache/fp-yocto/qemu, ~4-5 min) a small Debian x86-64 root
filesystem with systemd, installs into a copy of it exactly what the layer's recipes install
(dist/fp-agent, the units, config.yaml, the claim files; same modes and owners), boots it in
qemu-system-x86_64 with slirp networking locked down to the forwarded emulator ports (the guest
sees the host as 10.0.2.2), runs the emulator on the host, and checks three scenarios on three boots:

  first-boot       the device provisions as fp-<MAC>; files and modes (identity readable by
                   the ggcore group, device key 0640), state.json and the Greengrass lite
                   drop-in are right; the thing exists; then Debian's mosquitto_rr, as user
                   ggcore with the drop-in's identity, dials 8883 and the emulator sees the
                   thing subscribe to its deployments and publish its health
  reboot           the same image boots again: the units are skipped, Greengrass reconnects,
                   nothing new in the cloud
  denied-then-cut  the hook denies a device: exit 78 with one clear line, retried only after
                   RestartSec; then it is allowed, the emulator is cut mid-request and comes
                   back, and the device provisions
  proxy            a device whose only way out is an HTTP CONNECT proxy (tinyproxy on the
                   host, CONNECT to 443 only) provisions with the emulator on 443 (ALPN)

Needs, as root: debootstrap, qemu-system-x86 and e2fsprogs (Debian packages), and the agent
bundle (npm run build). Without usable KVM each boot takes ~1.5 min (TCG); the run ~6 min.
Environment: FP_QEMU_CACHE (cache dir), FP_QEMU_MIRROR (Debian mirror), FP_QEMU_CPUS.
See docs/qemu-test.md.`;

export default defineCommand({
  meta: { name: 'qemu-test', description: DESCRIPTION },
  args: {
    keep: { type: 'boolean', description: 'keep the work dir: disk images, serial logs, emulator state', default: false },
    accel: { type: 'string', description: 'kvm or tcg (default: kvm when /dev/kvm boots stock kernels, else tcg)', valueHint: 'kvm|tcg' },
    only: { type: 'string', description: 'run these scenarios only (comma-separated names; reboot needs first-boot)', valueHint: 'NAMES' },
  },
  async run({ args }) {
    const accel = args.accel === undefined ? undefined : String(args.accel);
    if (accel !== undefined && accel !== 'kvm' && accel !== 'tcg') throw new UserError(`--accel: expected kvm or tcg, got "${accel}"`, EXIT.usage);
    const { preflightProblem } = await import('../../qemu/preflight.ts');
    const problem = preflightProblem();
    if (problem) throw new UserError(problem);
    const { SCENARIOS } = await import('../../qemu/scenarios.ts');
    const names = args.only ? String(args.only).split(',').map((s) => s.trim()).filter(Boolean) : SCENARIOS.map((s) => s.name);
    const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
    if (unknown.length) throw new UserError(`--only: unknown scenario ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.name).join(', ')})`, EXIT.usage);
    const { startRun, endRun } = await import('../../qemu/run.ts');

    const started = Date.now();
    const say = (line: string) => console.log(`[${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s] ${line}`);
    const run = await startRun({ progress: say, keep: !!args.keep, ...(accel ? { kvm: accel === 'kvm' } : {}) });
    const results: { name: string; ok: boolean; ms: number; error?: string }[] = [];
    const state = {};
    try {
      for (const scenario of SCENARIOS.filter((s) => names.includes(s.name))) {
        say(`== ${scenario.name}: ${scenario.title}`);
        const t = Date.now();
        try {
          await scenario.run(run, state);
          results.push({ name: scenario.name, ok: true, ms: Date.now() - t });
          say(`ok ${scenario.name} (${Math.round((Date.now() - t) / 1000)} s)`);
        } catch (error) {
          const message = (error as Error).message;
          results.push({ name: scenario.name, ok: false, ms: Date.now() - t, error: message });
          say(`FAILED ${scenario.name}: ${message}`);
        }
      }
    } finally {
      await endRun(run);
    }
    console.log('\nsummary:');
    for (const r of results) console.log(`  ${r.ok ? 'ok    ' : 'FAILED'} ${r.name.padEnd(16)} ${String(Math.round(r.ms / 1000)).padStart(4)} s${r.ok ? '' : `  ${r.error!.split('\n')[0]}`}`);
    console.log(`  ${run.kvm ? 'KVM' : 'TCG'}, ${Math.round((Date.now() - started) / 1000)} s in all${args.keep ? `; kept ${run.work}` : ''}`);
    const failed = results.filter((r) => !r.ok).length;
    if (failed) throw new UserError(`${failed} of ${results.length} QEMU scenarios failed`);
  },
});
