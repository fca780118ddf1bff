// The emulator's DynamoDB over a real registry database: the documented behaviour the device
// table's users depend on (conditional writes, batch limits, paging, placeholder checks).
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoDbService } from '../../src/emulator/dynamodb/service.ts';
import { Registry } from '../../src/emulator/registry.ts';
import { tmpDir } from '../helpers/tmp.ts';

let registry: Registry | undefined;
afterEach(() => registry?.close());

async function table() {
  registry = Registry.open(path.join(await tmpDir()));
  const db = new DynamoDbService(registry);
  await db.call('CreateTable', { TableName: 'devices', KeySchema: [{ AttributeName: 'deviceId', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'deviceId', AttributeType: 'S' }] });
  return db;
}
const key = (id: string) => ({ deviceId: { S: id } });

describe("the emulator's DynamoDB", () => {
  it('runs conditional updates atomically; a failed condition returns the old item when asked', async () => {
    const db = await table();
    const claim = (cert: string) =>
      db.call('UpdateItem', {
        TableName: 'devices',
        Key: key('a'),
        UpdateExpression: 'SET certificateId = :cert, firstSeen = if_not_exists(firstSeen, :cert)',
        ConditionExpression: 'attribute_not_exists(certificateId) OR certificateId = :cert',
        ExpressionAttributeValues: { ':cert': { S: cert } },
        ReturnValues: 'ALL_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
    const results = await Promise.allSettled([claim('one'), claim('two'), claim('three')]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const winner = (won[0] as PromiseFulfilledResult<{ Attributes: { certificateId: { S: string } } }>).value.Attributes.certificateId.S;
    for (const r of results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[]) {
      expect(r.reason).toMatchObject({ name: 'ConditionalCheckFailedException', Item: { deviceId: { S: 'a' }, certificateId: { S: winner }, firstSeen: { S: winner } } });
    }
    expect(await claim(winner)).toEqual({ Attributes: { deviceId: { S: 'a' }, certificateId: { S: winner }, firstSeen: { S: winner } } });
  });

  it('keeps to the batch limits and refuses duplicates and unused placeholders, as DynamoDB does', async () => {
    const db = await table();
    const puts = (n: number) => Array.from({ length: n }, (_, i) => ({ PutRequest: { Item: key(`id${i}`) } }));
    await expect(db.call('BatchWriteItem', { RequestItems: { devices: puts(26) } })).rejects.toMatchObject({ name: 'ValidationException' });
    expect(await db.call('BatchWriteItem', { RequestItems: { devices: puts(25) } })).toEqual({ UnprocessedItems: {} });
    await expect(db.call('BatchWriteItem', { RequestItems: { devices: [...puts(2), ...puts(1)] } })).rejects.toThrow('Provided list of item keys contains duplicates');
    const keys = (n: number) => Array.from({ length: n }, (_, i) => key(`id${i}`));
    await expect(db.call('BatchGetItem', { RequestItems: { devices: { Keys: keys(101) } } })).rejects.toThrow('Too many items requested for the BatchGetItem call');
    const got = await db.call('BatchGetItem', { RequestItems: { devices: { Keys: keys(30), ProjectionExpression: '#d', ExpressionAttributeNames: { '#d': 'deviceId' } } } });
    expect((got.Responses as Record<string, unknown[]>).devices).toHaveLength(25);
    await expect(
      db.call('UpdateItem', { TableName: 'devices', Key: key('x'), UpdateExpression: 'SET a = :a', ExpressionAttributeValues: { ':a': { S: '1' }, ':b': { S: '2' } } }),
    ).rejects.toThrow('Value provided in ExpressionAttributeValues unused in expressions: keys: {:b}');
    await expect(db.call('UpdateItem', { TableName: 'devices', Key: key('x'), UpdateExpression: 'SET deviceId = :a', ExpressionAttributeValues: { ':a': { S: '1' } } })).rejects.toThrow(
      'Cannot update attribute deviceId. This attribute is part of the key',
    );
    await expect(db.call('GetItem', { TableName: 'nope', Key: key('x') })).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('scans in pages with LastEvaluatedKey; Select COUNT counts what passes the filter', async () => {
    const db = await table();
    for (let b = 0; b < 100; b++) {
      const RequestItems = { devices: Array.from({ length: 25 }, (_, i) => ({ PutRequest: { Item: { ...key(`id${b * 25 + i}`), ...(i % 5 === 0 ? { certificateId: { S: 'c' } } : {}) } } })) };
      await db.call('BatchWriteItem', { RequestItems });
    }
    let total = 0;
    let pages = 0;
    let ExclusiveStartKey: unknown;
    do {
      const out = await db.call('Scan', { TableName: 'devices', Select: 'COUNT', FilterExpression: 'attribute_exists(certificateId)', ...(ExclusiveStartKey ? { ExclusiveStartKey } : {}) });
      expect(out.Items).toBeUndefined();
      total += out.Count as number;
      pages++;
      ExclusiveStartKey = out.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    expect(total).toBe(500);
    expect(pages).toBe(3);
  });
});
