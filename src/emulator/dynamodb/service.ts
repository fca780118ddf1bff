// The emulator's DynamoDB: the operations the stack's device table is used with, over the
// registry database, with the behaviour the Amazon DynamoDB API Reference documents for them:
// conditional writes fail with ConditionalCheckFailedException (and the old item when asked
// with ReturnValuesOnConditionCheckFailure ALL_OLD), BatchWriteItem takes at most 25 requests and
// BatchGetItem 100 keys (no duplicates), Scan pages at 1 MB with LastEvaluatedKey, unused
// expression placeholders are refused. Each write is one registry transaction: two writers of
// one item are serialised, as DynamoDB serialises writes to an item.
import type { DynamoDbOperation } from '../control-plane.ts';
import type { DynamoTableRecord, Registry, RegistryReader } from '../registry.ts';
import { DynamoDbError } from './errors.ts';
import { compileCondition, compileProjection, compileUpdate, Usage, type AttributeValue, type Item, type Placeholders } from './expressions.ts';

type Input = Record<string, unknown>;
type Output = Record<string, unknown>;

const BATCH_WRITE_MAX = 25;
const BATCH_GET_MAX = 100;
/** "Scan": one page reads at most 1 MB. */
const SCAN_PAGE_BYTES = 1024 * 1024;
const SCAN_PAGE_ITEMS = 1000;
/** "Service, account, and table quotas": an item has at most 400 KB. */
const ITEM_MAX_BYTES = 400 * 1024;

const invalid = (message: string): never => {
  throw new DynamoDbError('ValidationException', message);
};

const LEGACY = ['Expected', 'AttributeUpdates', 'AttributesToGet', 'ScanFilter', 'ConditionalOperator', 'KeyConditions', 'QueryFilter'];

function placeholders(input: Input): Placeholders {
  return {
    names: input.ExpressionAttributeNames as Record<string, string> | undefined,
    values: input.ExpressionAttributeValues as Record<string, AttributeValue> | undefined,
  };
}

function requireString(input: Input, field: string): string {
  const v = input[field];
  if (typeof v !== 'string' || v === '') invalid(`1 validation error detected: Value null at '${field.charAt(0).toLowerCase()}${field.slice(1)}' failed to satisfy constraint: Member must not be null`);
  return v as string;
}

function project(item: Item, names: string[] | undefined): Item {
  if (!names) return item;
  return Object.fromEntries(names.filter((n) => item[n] !== undefined).map((n) => [n, item[n]!]));
}

function returnValues(mode: unknown, before: Item | undefined, after: Item | undefined, paths: string[]): Output {
  const pick = (item: Item | undefined) => (item ? Object.fromEntries(paths.filter((p) => item[p] !== undefined).map((p) => [p, item[p]!])) : {});
  const attributes = mode === 'ALL_OLD' ? before : mode === 'ALL_NEW' ? after : mode === 'UPDATED_OLD' ? pick(before) : mode === 'UPDATED_NEW' ? pick(after) : undefined;
  return attributes && Object.keys(attributes).length ? { Attributes: attributes } : {};
}

export class DynamoDbService {
  constructor(private readonly registry: Registry) {}

  async call(operation: DynamoDbOperation, input: Input = {}): Promise<Output> {
    const legacy = LEGACY.find((name) => input[name] !== undefined);
    if (legacy) invalid(`${legacy} is a legacy parameter this emulator does not support; use expressions`);
    switch (operation) {
      case 'CreateTable':
        return this.createTable(input);
      case 'DescribeTable':
        return { Table: this.describe(this.table(this.registry, requireString(input, 'TableName'))) };
      case 'DeleteTable':
        return this.deleteTable(input);
      case 'GetItem':
        return this.getItem(input);
      case 'PutItem':
        return this.putItem(input);
      case 'UpdateItem':
        return this.updateItem(input);
      case 'DeleteItem':
        return this.deleteItem(input);
      case 'BatchGetItem':
        return this.batchGetItem(input);
      case 'BatchWriteItem':
        return this.batchWriteItem(input);
      case 'Scan':
        return this.scan(input);
      default:
        return invalid(`unknown operation ${String(operation)}`);
    }
  }

  private table(reader: RegistryReader, tableName: string): DynamoTableRecord {
    const table = reader.getDynamoTable(tableName);
    if (!table) throw new DynamoDbError('ResourceNotFoundException', `Requested resource not found: Table: ${tableName} not found`);
    return table;
  }

  private describe(table: DynamoTableRecord): Output {
    return {
      TableName: table.tableName,
      KeySchema: table.keySchema,
      AttributeDefinitions: table.attributeDefinitions,
      TableStatus: 'ACTIVE',
      CreationDateTime: table.createdAt,
      ItemCount: this.registry.countDynamoItems(table.tableName),
      BillingModeSummary: { BillingMode: 'PAY_PER_REQUEST' },
    };
  }

  /** The item's identity: its key attributes' values in key-schema order, each of its declared type. */
  private keyOf(table: DynamoTableRecord, key: unknown, what = 'Key'): string {
    if (!key || typeof key !== 'object') invalid(`The provided key element does not match the schema (${what} is missing)`);
    const k = key as Item;
    const values = table.keySchema.map(({ AttributeName }) => {
      const type = table.attributeDefinitions.find((d) => d.AttributeName === AttributeName)?.AttributeType ?? 'S';
      const v = k[AttributeName];
      if (!v || Object.keys(v).length !== 1 || typeof v[type] !== 'string') invalid('The provided key element does not match the schema');
      if (v![type] === '') invalid(`One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: ${AttributeName}`);
      return v![type];
    });
    return JSON.stringify(values);
  }

  private keyAttributes(table: DynamoTableRecord, item: Item): Item {
    return Object.fromEntries(table.keySchema.map(({ AttributeName }) => [AttributeName, item[AttributeName]!]));
  }

  private async createTable(input: Input): Promise<Output> {
    const tableName = requireString(input, 'TableName');
    if (!/^[a-zA-Z0-9_.-]{3,255}$/.test(tableName)) invalid(`TableName must be 3-255 characters of a-z A-Z 0-9 _ . -: ${tableName}`);
    const keySchema = input.KeySchema as DynamoTableRecord['keySchema'];
    const attributeDefinitions = input.AttributeDefinitions as DynamoTableRecord['attributeDefinitions'];
    if (!Array.isArray(keySchema) || keySchema.length < 1 || keySchema.length > 2 || !Array.isArray(attributeDefinitions))
      invalid('KeySchema (one HASH and an optional RANGE) and AttributeDefinitions are required');
    for (const k of keySchema) if (!attributeDefinitions.some((d) => d.AttributeName === k.AttributeName)) invalid(`One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [${k.AttributeName}]`);
    const record: DynamoTableRecord = { tableName, keySchema, attributeDefinitions, createdAt: new Date().toISOString() };
    await this.registry.write((tx) => {
      if (tx.getDynamoTable(tableName)) throw new DynamoDbError('ResourceInUseException', `Table already exists: ${tableName}`);
      tx.putDynamoTable(record);
    });
    return { TableDescription: this.describe(record) };
  }

  private async deleteTable(input: Input): Promise<Output> {
    const tableName = requireString(input, 'TableName');
    const table = this.table(this.registry, tableName);
    const description = this.describe(table);
    await this.registry.write((tx) => {
      this.table(tx, tableName);
      tx.deleteDynamoTable(tableName);
    });
    return { TableDescription: { ...description, TableStatus: 'DELETING' } };
  }

  private async getItem(input: Input): Promise<Output> {
    const table = this.table(this.registry, requireString(input, 'TableName'));
    const usage = new Usage(placeholders(input));
    const projection = typeof input.ProjectionExpression === 'string' ? compileProjection(input.ProjectionExpression, usage) : undefined;
    usage.checkAllUsed();
    const item = this.registry.getDynamoItem(table.tableName, this.keyOf(table, input.Key)) as Item | undefined;
    return item ? { Item: project(item, projection) } : {};
  }

  /** The table, the item key, and the condition of a single-item write; every placeholder checked. */
  private prepare(input: Input, key: unknown, compileMore?: (usage: Usage, table: DynamoTableRecord) => void) {
    const table = this.table(this.registry, requireString(input, 'TableName'));
    const itemKey = this.keyOf(table, key, input.Item ? 'Item' : 'Key');
    const usage = new Usage(placeholders(input));
    compileMore?.(usage, table);
    const condition = typeof input.ConditionExpression === 'string' ? compileCondition(input.ConditionExpression, usage) : undefined;
    usage.checkAllUsed();
    return { table, itemKey, condition };
  }

  /** A conditional single-item write in one transaction; `change` gives the new item, or undefined to delete. */
  private conditionalWrite(
    input: Input,
    prepared: ReturnType<DynamoDbService['prepare']>,
    change: (before: Item | undefined) => Item | undefined,
    paths: string[],
  ): Promise<Output> {
    const { table, itemKey, condition } = prepared;
    return this.registry.write((tx) => {
      this.table(tx, table.tableName);
      const before = tx.getDynamoItem(table.tableName, itemKey) as Item | undefined;
      if (condition && !condition(before)) {
        const old = input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' ? before : undefined;
        throw new DynamoDbError('ConditionalCheckFailedException', 'The conditional request failed', old);
      }
      const after = change(before);
      if (after) {
        if (JSON.stringify(after).length > ITEM_MAX_BYTES) invalid('Item size has exceeded the maximum allowed size');
        tx.putDynamoItem(table.tableName, itemKey, after);
      } else if (before) tx.deleteDynamoItem(table.tableName, itemKey);
      return returnValues(input.ReturnValues, before, after, paths);
    });
  }

  private async putItem(input: Input): Promise<Output> {
    if (!['NONE', 'ALL_OLD', undefined].includes(input.ReturnValues as string)) invalid('ReturnValues can only be ALL_OLD or NONE for PutItem');
    const item = input.Item as Item;
    return this.conditionalWrite(input, this.prepare(input, item), () => item, Object.keys(item ?? {}));
  }

  private async deleteItem(input: Input): Promise<Output> {
    if (!['NONE', 'ALL_OLD', undefined].includes(input.ReturnValues as string)) invalid('ReturnValues can only be ALL_OLD or NONE for DeleteItem');
    return this.conditionalWrite(input, this.prepare(input, input.Key), () => undefined, []);
  }

  private async updateItem(input: Input): Promise<Output> {
    if (typeof input.UpdateExpression !== 'string') invalid('UpdateItem needs an UpdateExpression (this emulator supports no AttributeUpdates)');
    let update!: ReturnType<typeof compileUpdate>;
    const prepared = this.prepare(input, input.Key, (usage, table) => {
      update = compileUpdate(input.UpdateExpression as string, usage, table.keySchema.map((k) => k.AttributeName));
    });
    const keyItem = this.keyAttributes(prepared.table, input.Key as Item);
    // UpdateItem creates the item (with its key) when there is none.
    return this.conditionalWrite(input, prepared, (before) => update.apply(before ?? keyItem), update.paths);
  }

  private async batchGetItem(input: Input): Promise<Output> {
    const requests = (input.RequestItems ?? {}) as Record<string, Input>;
    const total = Object.values(requests).reduce((n, r) => n + ((r.Keys as unknown[]) ?? []).length, 0);
    if (total === 0) invalid('The requested items are empty');
    if (total > BATCH_GET_MAX) invalid('Too many items requested for the BatchGetItem call');
    const responses: Record<string, Item[]> = {};
    for (const [tableName, request] of Object.entries(requests)) {
      const table = this.table(this.registry, tableName);
      const usage = new Usage(placeholders(request));
      const projection = typeof request.ProjectionExpression === 'string' ? compileProjection(request.ProjectionExpression, usage) : undefined;
      usage.checkAllUsed();
      const keys = (request.Keys as unknown[]).map((k) => this.keyOf(table, k));
      if (new Set(keys).size !== keys.length) invalid('Provided list of item keys contains duplicates');
      responses[tableName] = keys.flatMap((k) => {
        const item = this.registry.getDynamoItem(tableName, k) as Item | undefined;
        return item ? [project(item, projection)] : [];
      });
    }
    return { Responses: responses, UnprocessedKeys: {} };
  }

  private async batchWriteItem(input: Input): Promise<Output> {
    const requests = (input.RequestItems ?? {}) as Record<string, { PutRequest?: { Item: Item }; DeleteRequest?: { Key: Item } }[]>;
    const total = Object.values(requests).reduce((n, r) => n + r.length, 0);
    if (total === 0) invalid('1 validation error detected: Value at \'requestItems\' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length greater than or equal to 1]');
    if (total > BATCH_WRITE_MAX) invalid(`1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to ${BATCH_WRITE_MAX}]`);
    const plans = Object.entries(requests).map(([tableName, writes]) => {
      const table = this.table(this.registry, tableName);
      const keyed = writes.map((w) => {
        if (w.PutRequest) return { key: this.keyOf(table, w.PutRequest.Item, 'Item'), item: w.PutRequest.Item };
        if (w.DeleteRequest) return { key: this.keyOf(table, w.DeleteRequest.Key) };
        return invalid('Each write request needs a PutRequest or a DeleteRequest');
      });
      if (new Set(keyed.map((k) => k.key)).size !== keyed.length) invalid('Provided list of item keys contains duplicates');
      for (const k of keyed) if (k.item && JSON.stringify(k.item).length > ITEM_MAX_BYTES) invalid('Item size has exceeded the maximum allowed size');
      return { tableName, keyed };
    });
    // Each put or delete is atomic; the batch as a whole is too here (DynamoDB does not promise it).
    await this.registry.write((tx) => {
      for (const { tableName, keyed } of plans) {
        this.table(tx, tableName);
        for (const k of keyed) {
          if (k.item) tx.putDynamoItem(tableName, k.key, k.item);
          else tx.deleteDynamoItem(tableName, k.key);
        }
      }
    });
    return { UnprocessedItems: {} };
  }

  private async scan(input: Input): Promise<Output> {
    const table = this.table(this.registry, requireString(input, 'TableName'));
    const usage = new Usage(placeholders(input));
    const filter = typeof input.FilterExpression === 'string' ? compileCondition(input.FilterExpression, usage, 'FilterExpression') : undefined;
    const projection = typeof input.ProjectionExpression === 'string' ? compileProjection(input.ProjectionExpression, usage) : undefined;
    usage.checkAllUsed();
    if (input.Segment !== undefined || input.TotalSegments !== undefined) invalid('this emulator does not support parallel scans (Segment, TotalSegments)');
    const count = input.Select === 'COUNT';
    if (input.Select !== undefined && !count && input.Select !== 'ALL_ATTRIBUTES') invalid(`Select ${String(input.Select)} is not supported by this emulator`);
    const limit = typeof input.Limit === 'number' ? Math.min(input.Limit, SCAN_PAGE_ITEMS) : SCAN_PAGE_ITEMS;
    const after = input.ExclusiveStartKey === undefined ? undefined : this.keyOf(table, input.ExclusiveStartKey, 'ExclusiveStartKey');
    const rows = this.registry.scanDynamoItems(table.tableName, after, limit);
    const items: Item[] = [];
    let bytes = 0;
    let scanned = 0;
    let last: Item | undefined;
    for (const row of rows) {
      scanned++;
      last = row.item as Item;
      if (!filter || filter(last)) items.push(project(last, projection));
      bytes += JSON.stringify(row.item).length;
      if (bytes >= SCAN_PAGE_BYTES) break;
    }
    const more = last !== undefined && (scanned < rows.length || rows.length === limit);
    return {
      ...(count ? {} : { Items: items }),
      Count: items.length,
      ScannedCount: scanned,
      ...(more ? { LastEvaluatedKey: this.keyAttributes(table, last!) } : {}),
    };
  }
}
