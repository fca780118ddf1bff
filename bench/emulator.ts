// Emulator throughput: devices provisioned per second with 50 concurrent clients, each doing what
// the agent does (connect with the claim, CreateCertificateFromCsr with its own key, RegisterThing
// through the shared hook, disconnect). Key pairs and CSRs are made before the clock starts.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { createCsr } from '../src/agent/csr.ts';
import { startEmulator } from '../src/emulator/index.ts';
import { DEVICE_ID_PARAMETER } from '../src/shared/pre-provisioning-hook.ts';
import { accepted, rejected, TOPICS } from '../src/shared/protocol.ts';
import { setupFleet, TEMPLATE_NAME } from '../test/helpers/emulator.ts';
import type { BenchRow } from './table.ts';

const CONCURRENCY = 50;
const DEVICES = 300;

async function request(client: mqtt.MqttClient, topic: string, body: unknown): Promise<Record<string, unknown>> {
  const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== accepted(topic) && t !== rejected(topic)) return;
      client.off('message', onMessage);
      const parsed = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (t === rejected(topic)) reject(new Error(`${topic}: ${String(parsed.errorMessage)}`));
      else resolve(parsed);
    };
    client.on('message', onMessage);
  });
  await client.publishAsync(topic, JSON.stringify(body), { qos: 1 });
  return reply;
}

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-bench-emulator-'));
  const emulator = await startEmulator({ port: 0, dir, log: process.env.FP_BENCH_LOG ? (l) => process.stderr.write(`${l}\n`) : undefined });
  try {
    const { control } = emulator;
    const claim = await setupFleet(emulator, dir);
    const devices = Array.from({ length: DEVICES }, (_, i) => {
      const mac = (0x020000000000 + i).toString(16).padStart(12, '0');
      const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      return { mac, csr: createCsr(key, mac) };
    });

    const provisionOne = async ({ mac, csr }: (typeof devices)[number]) => {
      const client = await mqtt.connectAsync(
        `mqtts://${emulator.endpoint}:${emulator.port}`,
        { ca: emulator.caPem, cert: claim.certPem, key: claim.keyPem, clientId: `fleetprov-${mac}`, reconnectPeriod: 0, protocolVersion: 5 },
        false,
      );
      try {
        const topics = [TOPICS.createFromCsr, TOPICS.registerThing(TEMPLATE_NAME)].flatMap((t) => [accepted(t), rejected(t)]);
        await client.subscribeAsync(topics, { qos: 1 });
        const created = await request(client, TOPICS.createFromCsr, { certificateSigningRequest: csr });
        await request(client, TOPICS.registerThing(TEMPLATE_NAME), {
          certificateOwnershipToken: created.certificateOwnershipToken,
          parameters: { [DEVICE_ID_PARAMETER]: mac },
        });
      } finally {
        await client.endAsync();
      }
    };

    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < devices.length) await provisionOne(devices[next++]!);
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const things = (await control.listThings()).length;
    if (things !== DEVICES) throw new Error(`bench: expected ${DEVICES} things, found ${things}`);
    const perSecond = DEVICES / seconds;
    // The issue sets no target: the row is for tracking throughput over time.
    return [
      {
        suite: 'emulator',
        metric: `provisions/s (${CONCURRENCY} concurrent clients, ${DEVICES} devices, CSR + RegisterThing)`,
        value: perSecond.toFixed(1),
      },
    ];
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
}
