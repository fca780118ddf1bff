// The device table's client side against DynamoDB, with only the SDK mocked: the exact batched
// calls of an import, UnprocessedItems and throttling retried, and the conditional writes of
// revoke and reset. The same store runs against the emulator in devices-local.test.ts.
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  DynamoDBClient,
  ScanCommand,
  UpdateItemCommand,
  ConditionalCheckFailedException,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseDeviceList } from '../../src/cloud/devices/device-file.ts';
import { DeviceStore } from '../../src/cloud/devices/device-store.ts';
import { readDeviceList } from '../../src/cloud/devices/project-devices.ts';
import { tmpDir } from '../helpers/tmp.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const ddb = mockClient(DynamoDBClient);
const TABLE = 'fp-yocto-devices';
const NOW = new Date('2026-03-04T05:06:07.000Z');
const store = () => new DeviceStore(new DynamoDBClient({ region: 'eu-west-1' }), TABLE, { baseDelayMs: 0, now: () => NOW });
const mac = (i: number) => i.toString(16).padStart(12, '0');
const key = (id: string) => ({ deviceId: { S: id } });

beforeEach(() => ddb.reset());

describe('device lists', () => {
  it('reads plain ids and CSV with attributes, with line numbers for every bad line', () => {
    const text = ['# fleet 7', 'deviceId,model,batch', 'AA:BB:CC:DD:EE:01,x1,"7,b"', '', 'aa-bb-cc-dd-ee-02,x2', 'nonsense,x', 'aabbccddee01,x9', 'aabbccddee03,x1,2,3', 'aabbccddee04,bad value'].join('\n');
    expect(parseDeviceList(text, 'mac', 'fleet.csv')).toEqual({
      columns: ['model', 'batch'],
      entries: [
        { deviceId: 'aabbccddee01', attributes: { model: 'x1', batch: '7,b' } },
        { deviceId: 'aabbccddee02', attributes: { model: 'x2' } },
      ],
      invalid: [
        { line: 6, reason: '"nonsense": expected a MAC address such as aa:bb:cc:dd:ee:ff or aabbccddeeff' },
        { line: 8, reason: '3 attribute values for 2 column(s)' },
        { line: 9, reason: 'attribute value "bad value": expected at most 800 of a-z A-Z 0-9 _ . , @ / : # = [ ] -' },
      ],
      duplicates: 1,
    });
    expect(parseDeviceList('aabbccddee01\naabbccddee02,x\n', 'mac', 'ids.txt').invalid).toEqual([{ line: 2, reason: 'attribute values need a header line such as deviceId,model' }]);
    expect(parseDeviceList('deviceId,bad-name\n', 'mac', 'f').invalid[0]!.reason).toMatch(/^attribute column "bad-name"/);
  });

  it('takes a file or inline ids, and names the flag when it is neither', async () => {
    const file = path.join(await tmpDir(), 'ids.txt');
    await writeFile(file, 'SN-1\nsn 2\n');
    expect((await readDeviceList(file, 'serial', '--allow-list')).entries).toEqual([{ deviceId: 'sn-1' }, { deviceId: 'sn-2' }]);
    expect((await readDeviceList('AA:BB:CC:DD:EE:01,001122334455', 'mac', '--allow-list')).entries).toEqual([{ deviceId: 'aabbccddee01' }, { deviceId: '001122334455' }]);
    await expect(readDeviceList('/nonexistent/ids.txt', 'mac', '--allow-list')).rejects.toThrow(
      '--allow-list "/nonexistent/ids.txt": expected a file of device ids (one a line, or a CSV with a deviceId header) or ids separated by commas',
    );
  });
});

describe('device store against DynamoDB', () => {
  it('imports in batches: BatchGetItem of 100 keys, then BatchWriteItem of 25 new items; ids already there are not rewritten', async () => {
    const ids = Array.from({ length: 130 }, (_, i) => mac(i));
    const there = new Set([mac(5), mac(120)]);
    ddb.on(BatchGetItemCommand).callsFake(async (input) => ({
      Responses: { [TABLE]: input.RequestItems[TABLE].Keys.filter((k: { deviceId: { S: string } }) => there.has(k.deviceId.S)).map((k: object) => ({ ...k, allowedAt: { S: 'earlier' } })) },
    }));
    ddb.on(BatchWriteItemCommand).resolves({});
    const progress: number[] = [];
    const summary = await store().allow(ids.map((deviceId) => ({ deviceId })), (done) => progress.push(done));
    expect(summary).toEqual({ added: 128, reallowed: 0, updated: 0, present: 2 });
    // Two groups (100 and 30 ids) in flight at once: progress after each.
    expect(progress).toHaveLength(2);
    expect(progress.at(-1)).toBe(130);

    const gets = ddb.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input);
    expect(gets).toHaveLength(2);
    expect(gets[0]).toEqual({
      RequestItems: {
        [TABLE]: {
          Keys: ids.slice(0, 100).map(key),
          ConsistentRead: true,
          ProjectionExpression: '#deviceId, #allowedAt, #attributes',
          ExpressionAttributeNames: { '#deviceId': 'deviceId', '#allowedAt': 'allowedAt', '#attributes': 'attributes' },
        },
      },
    });
    const writes = ddb.commandCalls(BatchWriteItemCommand).map((c) => c.args[0].input.RequestItems![TABLE]!);
    expect(writes.map((w) => w.length).sort((a, b) => a - b)).toEqual([4, 24, 25, 25, 25, 25]);
    expect(writes.flat()[0]).toEqual({ PutRequest: { Item: { deviceId: { S: mac(0) }, allowedAt: { S: NOW.toISOString() } } } });
    expect(writes.flat().map((w) => w.PutRequest!.Item!.deviceId!.S).filter((id) => there.has(id!))).toEqual([]);
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(0);
  });

  it('resends UnprocessedItems and UnprocessedKeys, and retries throttling, until everything is in', async () => {
    ddb
      .on(BatchGetItemCommand)
      .rejectsOnce(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }))
      .resolvesOnce({ Responses: { [TABLE]: [] }, UnprocessedKeys: { [TABLE]: { Keys: [key(mac(2))] } } })
      .resolves({ Responses: { [TABLE]: [] } });
    ddb
      .on(BatchWriteItemCommand)
      .resolvesOnce({ UnprocessedItems: { [TABLE]: [{ PutRequest: { Item: { deviceId: { S: mac(1) }, allowedAt: { S: 'x' } } } }] } })
      .resolves({});
    const summary = await store().allow([mac(1), mac(2)].map((deviceId) => ({ deviceId })));
    expect(summary.added).toBe(2);
    const gets = ddb.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input.RequestItems![TABLE]!.Keys);
    expect(gets).toEqual([[key(mac(1)), key(mac(2))], [key(mac(1)), key(mac(2))], [key(mac(2))]]);
    const writes = ddb.commandCalls(BatchWriteItemCommand).map((c) => c.args[0].input.RequestItems![TABLE]!.map((r) => r.PutRequest!.Item!.deviceId!.S));
    expect(writes).toEqual([[mac(1), mac(2)], [mac(1)]]);
  });

  it('gives up with one clear line when DynamoDB keeps items unprocessed', async () => {
    ddb.on(BatchGetItemCommand).resolves({ Responses: { [TABLE]: [] } });
    ddb.on(BatchWriteItemCommand).callsFake(async (input) => ({ UnprocessedItems: input.RequestItems }));
    const s = new DeviceStore(new DynamoDBClient({ region: 'eu-west-1' }), TABLE, { baseDelayMs: 0, maxRetries: 3 });
    await expect(s.allow([{ deviceId: mac(1) }])).rejects.toThrow(`BatchWriteItem on table ${TABLE} was still throttled after 3 retries; run the same command again (it is idempotent)`);
    expect(ddb.commandCalls(BatchWriteItemCommand)).toHaveLength(4);
  });

  it('re-allows a revoked id and updates attributes with UpdateItem, leaving the approved certificate alone', async () => {
    ddb.on(BatchGetItemCommand).resolves({
      Responses: {
        [TABLE]: [
          { ...key(mac(1)), revokedAt: { S: 'then' } },
          { ...key(mac(2)), allowedAt: { S: 'then' }, attributes: { M: { model: { S: 'x1' } } } },
          { ...key(mac(3)), allowedAt: { S: 'then' }, attributes: { M: { model: { S: 'x1' } } } },
        ],
      },
    });
    ddb.on(UpdateItemCommand).resolves({});
    const summary = await store().allow([
      { deviceId: mac(1), attributes: { model: 'x1' } },
      { deviceId: mac(2), attributes: { model: 'x2' } },
      { deviceId: mac(3), attributes: { model: 'x1' } },
    ]);
    expect(summary).toEqual({ added: 0, reallowed: 1, updated: 1, present: 1 });
    expect(ddb.commandCalls(BatchWriteItemCommand)).toHaveLength(0);
    expect(ddb.commandCalls(UpdateItemCommand).map((c) => c.args[0].input)).toEqual([
      {
        TableName: TABLE,
        Key: key(mac(1)),
        UpdateExpression: 'SET #allowedAt = :now, #attributes = :attributes REMOVE #revokedAt',
        ExpressionAttributeNames: { '#allowedAt': 'allowedAt', '#attributes': 'attributes', '#revokedAt': 'revokedAt' },
        ExpressionAttributeValues: { ':now': { S: NOW.toISOString() }, ':attributes': { M: { model: { S: 'x1' } } } },
      },
      {
        TableName: TABLE,
        Key: key(mac(2)),
        UpdateExpression: 'SET #attributes = :attributes',
        ExpressionAttributeNames: { '#attributes': 'attributes' },
        ExpressionAttributeValues: { ':attributes': { M: { model: { S: 'x2' } } } },
      },
    ]);
  });

  it('revokes with a conditional UpdateItem that keeps the record, and reports ids not on the list', async () => {
    ddb.on(UpdateItemCommand, { Key: key(mac(9)) }).rejects(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    ddb.on(UpdateItemCommand, { Key: key(mac(1)) }).resolves({});
    expect(await store().revoke([mac(1), mac(9)])).toEqual({ revoked: [mac(1)], notListed: [mac(9)] });
    expect(ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: key(mac(1)),
      UpdateExpression: 'SET #revokedAt = :now REMOVE #allowedAt',
      ConditionExpression: 'attribute_exists(#allowedAt)',
      ExpressionAttributeNames: { '#revokedAt': 'revokedAt', '#allowedAt': 'allowedAt' },
      ExpressionAttributeValues: { ':now': { S: NOW.toISOString() } },
    });
  });

  it('resets an id: forgets the approved certificate and the last refusal, and says which certificate it was', async () => {
    ddb.on(UpdateItemCommand, { Key: key(mac(1)) }).resolves({ Attributes: { certificateId: { S: 'abc' }, approvedAt: { S: 'then' } } });
    ddb.on(UpdateItemCommand, { Key: key(mac(9)) }).rejects(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    expect(await store().reset([mac(1), mac(9)])).toEqual({ reset: [{ deviceId: mac(1), certificateId: 'abc' }], unknown: [mac(9)] });
    expect(ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: key(mac(1)),
      UpdateExpression: 'REMOVE #certificateId, #publicKeySha256, #approvedAt, #claimCertificateId, #lastRefusal, #lastRefusedAt',
      ConditionExpression: 'attribute_exists(#deviceId)',
      ExpressionAttributeNames: {
        '#certificateId': 'certificateId',
        '#publicKeySha256': 'publicKeySha256',
        '#approvedAt': 'approvedAt',
        '#claimCertificateId': 'claimCertificateId',
        '#lastRefusal': 'lastRefusal',
        '#lastRefusedAt': 'lastRefusedAt',
        '#deviceId': 'deviceId',
      },
      ReturnValues: 'UPDATED_OLD',
    });
  });

  it('counts with Select COUNT Scans, page by page (no attributes come back)', async () => {
    ddb
      .on(ScanCommand)
      .resolvesOnce({ Count: 700, LastEvaluatedKey: key(mac(700)) })
      .resolvesOnce({ Count: 300 });
    expect(await store().count('provisioned')).toBe(1000);
    expect(ddb.commandCalls(ScanCommand).map((c) => c.args[0].input)).toEqual([
      { TableName: TABLE, Select: 'COUNT', FilterExpression: 'attribute_exists(#certificateId)', ExpressionAttributeNames: { '#certificateId': 'certificateId' } },
      {
        TableName: TABLE,
        Select: 'COUNT',
        FilterExpression: 'attribute_exists(#certificateId)',
        ExpressionAttributeNames: { '#certificateId': 'certificateId' },
        ExclusiveStartKey: key(mac(700)),
      },
    ]);
  });
});
