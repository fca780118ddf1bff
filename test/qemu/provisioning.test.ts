// Issue 6: the device provisions on its first boot under QEMU. The scenarios live in
// src/qemu/scenarios.ts and `fp-yocto qemu-test` runs the very same ones; this file only hands
// them to vitest, one test each, in order (the reboot scenario boots the first one's image).
import { afterAll, beforeAll, describe, it } from 'vitest';
import { qemuSkipReason } from './availability.ts';
import { endRun, startRun, type QemuRun } from '../../src/qemu/run.ts';
import { SCENARIOS, type ScenarioState } from '../../src/qemu/scenarios.ts';

// FP_QEMU_SCENARIOS=a,b runs those by name; default: SCENARIOS.
const only = process.env.FP_QEMU_SCENARIOS?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
if (unknown.length) throw new Error(`FP_QEMU_SCENARIOS: unknown scenario ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
const selected = only ? SCENARIOS.filter((s) => only.includes(s.name)) : SCENARIOS;

describe.skipIf(qemuSkipReason)('first boot provisioning in QEMU (dist/fp-agent, the layer\'s files, the emulator)', () => {
  let run: QemuRun | undefined;
  const state: ScenarioState = {};

  beforeAll(async () => {
    run = await startRun({ progress: (l) => console.log(`[qemu] ${l}`), keep: !!process.env.FP_QEMU_KEEP });
  });

  afterAll(async () => {
    if (run) console.log(`[qemu] timings (ms): ${JSON.stringify(run.timings)}`);
    await endRun(run);
  });

  for (const scenario of selected) {
    it(`${scenario.name}: ${scenario.title}`, async () => {
      const t = Date.now();
      await scenario.run(run!, state);
      run!.timings[`scenario ${scenario.name}`] = Date.now() - t;
    });
  }
});
