// The device table at fleet scale (issue 15): 100,000 ids imported with the built CLI into a
// --local project (CLI -> control plane over HTTP -> the emulator's DynamoDB in SQLite), imported
// again (idempotent), counted by `status`; and the AWS path with only the SDK mocked, every call
// answered after a simulated round trip and a tenth of the batches left partly unprocessed, to
// count the calls an import makes and see the batching and retries at work.
import { BatchGetItemCommand, BatchWriteItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DeviceStore } from '../src/cloud/devices/device-store.ts';
import type { BenchRow } from './table.ts';

const IDS = 100_000;
const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.mjs');
/** "in minutes" (issue 15): the import must not take longer than this. */
const TARGET_S = 300;
/** A DynamoDB round trip from a build host in the same region, roughly. */
const ROUND_TRIP_MS = 15;

const mac = (i: number) => (0x020000000000 + i).toString(16).padStart(12, '0');

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const started = performance.now();
  const result = await work();
  return { seconds: (performance.now() - started) / 1000, result };
}

async function local(): Promise<BenchRow[]> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'fp-bench-devices-'));
  const dir = path.join(root, 'project');
  const file = path.join(root, 'fleet.csv');
  await writeFile(file, `deviceId,model\n${Array.from({ length: IDS }, (_, i) => `${mac(i)},m${i % 7}`).join('\n')}\n`);
  const cli = (args: string[]) => execa('node', [CLI, ...args, '--dir', dir], { env: { NO_COLOR: '1' } });
  try {
    await cli(['init', '--local', '--yes', '--port', String(await freePort())]);
    const first = await timed(() => cli(['devices', 'import', file]));
    if (!first.result.stdout.includes(`${IDS} added, 0 already there`)) throw new Error(`unexpected import output: ${first.result.stdout}`);
    const again = await timed(() => cli(['devices', 'import', file]));
    if (!again.result.stdout.includes(`0 added, ${IDS} already there`)) throw new Error(`unexpected re-import output: ${again.result.stdout}`);
    const status = await timed(() => cli(['status']));
    if (!status.result.stdout.includes(`${IDS} id(s)`)) throw new Error(`unexpected status: ${status.result.stdout}`);
    return [
      { suite: 'devices', metric: `import ${IDS} ids, --local (CLI, control plane, SQLite)`, value: `${first.seconds.toFixed(1)} s (${Math.round(IDS / first.seconds)} ids/s)`, target: `< ${TARGET_S} s`, ok: first.seconds < TARGET_S },
      { suite: 'devices', metric: `import the same ${IDS} ids again (all present)`, value: `${again.seconds.toFixed(1)} s`, target: `< ${TARGET_S} s`, ok: again.seconds < TARGET_S },
      { suite: 'devices', metric: `status with ${IDS} ids (two Select COUNT scans)`, value: `${status.seconds.toFixed(1)} s` },
    ];
  } finally {
    await cli(['destroy', '--yes']).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}

async function awsMocked(): Promise<BenchRow[]> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const ddb = mockClient(DynamoDBClient);
  const table = 'fp-yocto-devices';
  let calls = 0;
  ddb.on(BatchGetItemCommand).callsFake(async () => {
    calls++;
    await delay(ROUND_TRIP_MS);
    return { Responses: { [table]: [] } };
  });
  ddb.on(BatchWriteItemCommand).callsFake(async (input) => {
    calls++;
    await delay(ROUND_TRIP_MS);
    // One batch in ten comes back with its last 5 puts unprocessed, as under throttling.
    const requests = input.RequestItems[table];
    return calls % 10 === 0 ? { UnprocessedItems: { [table]: requests.slice(-5) } } : {};
  });
  try {
    const store = new DeviceStore(new DynamoDBClient({ region: 'eu-west-1' }), table);
    const entries = Array.from({ length: IDS }, (_, i) => ({ deviceId: mac(i) }));
    const { seconds, result } = await timed(() => store.allow(entries));
    if (result.added !== IDS) throw new Error(`expected ${IDS} added, got ${JSON.stringify(result)}`);
    const gets = ddb.commandCalls(BatchGetItemCommand).length;
    const writes = ddb.commandCalls(BatchWriteItemCommand).length;
    return [
      {
        suite: 'devices',
        metric: `import ${IDS} ids, AWS (SDK mocked, ${ROUND_TRIP_MS} ms a call, 1 batch in 10 partly unprocessed)`,
        value: `${seconds.toFixed(1)} s; ${gets} BatchGetItem + ${writes} BatchWriteItem`,
        target: `< ${TARGET_S} s; >= ${IDS / 100} + ${IDS / 25} calls`,
        ok: seconds < TARGET_S && gets === IDS / 100 && writes > IDS / 25,
      },
    ];
  } finally {
    ddb.restore();
  }
}

export async function run(): Promise<BenchRow[]> {
  return [...(await awsMocked()), ...(await local())];
}
