// Transient faults are retried with backoff until they pass, or until the deadline (exit 75).
import { describe, expect, it } from 'vitest';
import { startTestEmulator } from '../helpers/emulator.ts';
import { expectNoSecrets, makeDevice, THING_NAME, waitForStderr } from './device.ts';

const lastLine = (text: string) => text.trim().split('\n').at(-1);

describe('fp-agent provision retries transient faults', () => {
  it('rides out throttling (429)', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    await t.emulator.control.setFaults({ throttle: 2 });
    const r = await device.run();
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/attempt 1 failed: CreateCertificateFromCsr rejected: 429 ThrottlingException/);
    expect(r.stderr).toMatch(/attempt 2 failed: .*429/);
    expect(lastLine(r.stderr)).toContain(`provisioned as thing ${THING_NAME}`);
    expectNoSecrets(`${r.stdout}${r.stderr}`);
  });

  it.each(['connect', 'create-certificate', 'register-thing'] as const)('reconnects after the connection drops at %s', async (step) => {
    const t = await startTestEmulator();
    const device = await makeDevice(t);
    await t.emulator.control.setFaults({ dropAfter: step });
    const r = await device.run();
    expect(r.stderr).toContain('attempt 1 failed');
    expect(r.exitCode).toBe(0);
    expectNoSecrets(`${r.stdout}${r.stderr}`);
    expect(lastLine(r.stderr)).toContain(`provisioned as thing ${THING_NAME}`);
  });

  it('times out a reply that is too slow, and succeeds once replies are fast again', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, {
      retry: { initialDelayMs: 100, maxDelayMs: 500, deadlineMs: 20_000, attemptTimeoutMs: 1_500 },
    });
    await t.emulator.control.setFaults({ delayMs: 10_000 });
    const child = device.spawn();
    await waitForStderr(child, 'attempt 1 failed: CreateCertificateFromCsr: no answer within 1500 ms');
    await t.emulator.control.setFaults({});
    const r = await child;
    expect(r.exitCode).toBe(0);
    expect(lastLine(String(r.stderr))).toContain(`provisioned as thing ${THING_NAME}`);
  });

  it('exits 75 with one line when faults outlast the deadline', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { retry: { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 3_000, attemptTimeoutMs: 5_000 } });
    await t.emulator.control.setFaults({ throttle: 1_000 });
    const r = await device.run();
    expect(r.exitCode).toBe(75);
    expect(lastLine(r.stderr)).toMatch(/^fp-agent: gave up after \d+ attempts in [\d.]+ s: CreateCertificateFromCsr rejected: 429 ThrottlingException/);
    expect(r.stderr).not.toContain('provisioned as');
  });

  it('exits 75 naming the cause when nothing listens on the port', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { port: 1, retry: { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 800, attemptTimeoutMs: 500 } });
    const r = await device.run();
    expect(r.exitCode).toBe(75);
    expect(lastLine(r.stderr)).toMatch(/^fp-agent: gave up after \d+ attempts in [\d.]+ s: ECONNREFUSED/);
    // The 1 CONNECT/s wait between attempts counts within the deadline: the run never passes it.
    expect(Number(/in ([\d.]+) s/.exec(lastLine(r.stderr)!)![1])).toBeLessThanOrEqual(0.8);
  });

  it('reports a clock before the certificate notBefore as "time not synced" and retries', async () => {
    // The emulator issues device certificates from an hour ahead: to this device, its clock is behind.
    let skewMs = 0;
    const t = await startTestEmulator({ now: () => Date.now() + skewMs });
    skewMs = 3_600_000;
    const device = await makeDevice(t, { retry: { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 4_000, attemptTimeoutMs: 5_000 } });
    const r = await device.run();
    expect(r.exitCode).toBe(75);
    // Checked before RegisterThing: a certificate the device cannot use yet is not registered.
    expect(r.stderr).not.toContain('registering');
    expect(r.stderr).toMatch(/attempt 1 failed: time not synced: the clock \(.*\) is before the device certificate's notBefore/);
    expect(r.stderr).toContain('attempt 2 failed: time not synced');
    expect(lastLine(r.stderr)).toMatch(/^fp-agent: gave up after \d+ attempts in [\d.]+ s: time not synced/);
    expect(await device.run(['status', '--json']).then((s) => JSON.parse(s.stdout).provisioned)).toBe(false);
  });

  it('checks the claim certificate against the clock too (FP_AGENT_TEST_NOW)', async () => {
    const t = await startTestEmulator();
    const device = await makeDevice(t, { retry: { initialDelayMs: 50, maxDelayMs: 200, deadlineMs: 600, attemptTimeoutMs: 500 } });
    const r = await device.run(['provision'], { FP_AGENT_TEST_NOW: '2001-01-01T00:00:00Z' });
    expect(r.exitCode).toBe(75);
    expect(lastLine(r.stderr)).toMatch(/time not synced: the clock \(2001-01-01T00:00:00.000Z\) is before the claim certificate's notBefore/);
    expect(r.stderr).not.toContain('connecting');
  });
});
