// The device table through the DynamoDB API: the same calls go to AWS (the SDK's DynamoDBClient)
// and to the emulator (its control plane serves the same operations), so `fp-yocto devices`
// behaves alike on both.
//
// Imports are batched as DynamoDB asks ("BatchWriteItem", Amazon DynamoDB API Reference): 25
// puts a call, several calls in flight, and UnprocessedItems resent with exponential backoff.
// BatchWriteItem replaces whole items and takes no condition, so it only creates items for ids
// that have none: BatchGetItem (100 keys a call) first finds which ids exist, and those that need
// a change (re-allowed, new attributes) get an UpdateItem, which leaves the hook's record of the
// approved certificate alone.
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  ScanCommand,
  UpdateItemCommand,
  type BatchGetItemCommandOutput,
  type BatchWriteItemCommandOutput,
  type ScanCommandOutput,
  type UpdateItemCommandOutput,
} from '@aws-sdk/client-dynamodb';
import { setTimeout as delay } from 'node:timers/promises';
import { DEVICE_ITEM } from '../../shared/pre-provisioning-hook.ts';
import { UserError } from '../../shared/errors.ts';
import type { DeviceEntry } from './device-file.ts';
import { attributesValue, importChange, keyOf, newItem, recordOf, S, type DeviceRecord, type Item } from './device-item.ts';

/** What the store needs of a DynamoDB client: DynamoDBClient, or the emulator's stand-in. */
export interface DynamoDbSender {
  send(command: BatchGetItemCommand | BatchWriteItemCommand | UpdateItemCommand | ScanCommand): Promise<unknown>;
}

export interface DeviceStoreOptions {
  /** Batches in flight at once. */
  concurrency?: number;
  /** Backoff unit for unprocessed items and throttling; 0 in tests. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Rounds of retries before giving up. */
  maxRetries?: number;
  now?: () => Date;
}

export interface ImportSummary {
  /** New ids on the allow-list. */
  added: number;
  /** Ids that had been revoked and are allowed again. */
  reallowed: number;
  /** Ids already allowed whose attributes changed. */
  updated: number;
  /** Ids already allowed, unchanged. */
  present: number;
}

export type ListFilter = 'all' | 'allowed' | 'provisioned' | 'pending' | 'revoked' | 'refused';

export const BATCH_WRITE_MAX = 25;
export const BATCH_GET_MAX = 100;
const THROTTLED = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded', 'InternalServerError', 'LimitExceededException']);

const isConditionFailure = (error: unknown) => (error as { name?: string }).name === 'ConditionalCheckFailedException';

const chunk = <T>(items: T[], size: number): T[][] => Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

/** Runs `work` over the items with at most `limit` running at once. */
export async function inPool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const FILTERS: Record<Exclude<ListFilter, 'all'>, string> = {
  allowed: 'attribute_exists(#allowedAt)',
  provisioned: 'attribute_exists(#certificateId)',
  pending: 'attribute_exists(#allowedAt) AND attribute_not_exists(#certificateId)',
  revoked: 'attribute_exists(#revokedAt) AND attribute_not_exists(#allowedAt)',
  refused: 'attribute_exists(#lastRefusal)',
};

/** ExpressionAttributeNames for the #names an expression uses (every name is one of DEVICE_ITEM's). */
function namesIn(...expressions: string[]): Record<string, string> {
  const names = new Set(expressions.flatMap((e) => [...e.matchAll(/#(\w+)/g)].map((m) => m[1]!)));
  return Object.fromEntries([...names].map((n) => [`#${n}`, n]));
}

export class DeviceStore {
  readonly #concurrency: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxRetries: number;
  readonly #now: () => Date;

  constructor(
    private readonly client: DynamoDbSender,
    readonly table: string,
    options: DeviceStoreOptions = {},
  ) {
    this.#concurrency = options.concurrency ?? 8;
    this.#baseDelayMs = options.baseDelayMs ?? 50;
    this.#maxDelayMs = options.maxDelayMs ?? 5_000;
    this.#maxRetries = options.maxRetries ?? 10;
    this.#now = options.now ?? (() => new Date());
  }

  /** Exponential backoff with full jitter ("Error retries and exponential backoff in AWS"). */
  async #backoff(attempt: number, what: string): Promise<void> {
    if (attempt >= this.#maxRetries) {
      throw new UserError(`${what} on table ${this.table} was still throttled after ${attempt} retries; run the same command again (it is idempotent)`);
    }
    const cap = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** attempt);
    await delay(Math.floor(Math.random() * cap));
  }

  /** Sends, retrying throttling beyond the SDK's own retries. */
  async #send<T>(command: BatchGetItemCommand | BatchWriteItemCommand | UpdateItemCommand | ScanCommand, what: string): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.client.send(command)) as T;
      } catch (error) {
        if (!THROTTLED.has((error as { name?: string }).name ?? '')) throw error;
        await this.#backoff(attempt, what);
      }
    }
  }

  /** The items of these ids (at most 100), consistent reads, UnprocessedKeys retried. */
  async #batchGet(ids: string[], projection?: string): Promise<Map<string, Item>> {
    const found = new Map<string, Item>();
    let keys = ids.map(keyOf);
    for (let attempt = 0; keys.length; attempt++) {
      if (attempt > 0) await this.#backoff(attempt - 1, 'BatchGetItem');
      const out = await this.#send<BatchGetItemCommandOutput>(
        new BatchGetItemCommand({
          RequestItems: {
            [this.table]: {
              Keys: keys,
              ConsistentRead: true,
              ...(projection ? { ProjectionExpression: projection, ExpressionAttributeNames: namesIn(projection) } : {}),
            },
          },
        }),
        'BatchGetItem',
      );
      for (const item of (out.Responses?.[this.table] ?? []) as Item[]) {
        const id = item[DEVICE_ITEM.key];
        if (id && 'S' in id) found.set(id.S, item);
      }
      keys = (out.UnprocessedKeys?.[this.table]?.Keys ?? []) as Item[];
    }
    return found;
  }

  /** Puts new items (at most 25), UnprocessedItems resent with backoff. */
  async #batchPut(items: Item[]): Promise<void> {
    let requests = items.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; requests.length; attempt++) {
      if (attempt > 0) await this.#backoff(attempt - 1, 'BatchWriteItem');
      const out = await this.#send<BatchWriteItemCommandOutput>(
        new BatchWriteItemCommand({ RequestItems: { [this.table]: requests } }),
        'BatchWriteItem',
      );
      requests = (out.UnprocessedItems?.[this.table] ?? []) as typeof requests;
    }
  }

  /**
   * Puts the entries on the allow-list: idempotent (an id already there is counted, not
   * rewritten); `onProgress` hears the number of entries done after every batch.
   */
  async allow(entries: DeviceEntry[], onProgress?: (done: number) => void): Promise<ImportSummary> {
    const summary: ImportSummary = { added: 0, reallowed: 0, updated: 0, present: 0 };
    let done = 0;
    const projection = `#${DEVICE_ITEM.key}, #${DEVICE_ITEM.allowedAt}, #${DEVICE_ITEM.attributes}`;
    await inPool(chunk(entries, BATCH_GET_MAX), this.#concurrency, async (group) => {
      const existing = await this.#batchGet(group.map((e) => e.deviceId), projection);
      const now = this.#now().toISOString();
      const fresh: Item[] = [];
      for (const entry of group) {
        const item = existing.get(entry.deviceId);
        if (!item) {
          fresh.push(newItem(entry.deviceId, entry.attributes, now));
          continue;
        }
        const change = importChange(item, entry.attributes);
        if (change === 'present') summary.present++;
        else {
          await this.#update(entry, change === 'reallow', now);
          summary[change === 'reallow' ? 'reallowed' : 'updated']++;
        }
      }
      for (const batch of chunk(fresh, BATCH_WRITE_MAX)) await this.#batchPut(batch);
      summary.added += fresh.length;
      done += group.length;
      onProgress?.(done);
    });
    return summary;
  }

  /** Re-allows a revoked id, or sets an allowed id's attributes, keeping the hook's record. */
  async #update(entry: DeviceEntry, reallow: boolean, now: string): Promise<void> {
    const set = [...(reallow ? ['#allowedAt = :now'] : []), ...(entry.attributes ? ['#attributes = :attributes'] : [])];
    const expression = `SET ${set.join(', ')}${reallow ? ' REMOVE #revokedAt' : ''}`;
    await this.#send<UpdateItemCommandOutput>(
      new UpdateItemCommand({
        TableName: this.table,
        Key: keyOf(entry.deviceId),
        UpdateExpression: expression,
        ExpressionAttributeNames: namesIn(expression),
        ExpressionAttributeValues: {
          ...(reallow ? { ':now': S(now) } : {}),
          ...(entry.attributes ? { ':attributes': attributesValue(entry.attributes) } : {}),
        },
      }),
      'UpdateItem',
    );
  }

  /**
   * One conditional UpdateItem per id, several in flight; returns the outputs of those that
   * passed, in the order given, and the ids whose condition failed.
   */
  async #updateEach(
    ids: string[],
    update: { expression: string; condition: string; values?: Record<string, ReturnType<typeof S>>; returnValues?: 'UPDATED_OLD' },
  ): Promise<{ passed: { deviceId: string; old?: Item }[]; failed: string[] }> {
    const passed = new Map<string, Item | undefined>();
    const failed: string[] = [];
    await inPool(ids, this.#concurrency, async (deviceId) => {
      try {
        const out = await this.#send<UpdateItemCommandOutput>(
          new UpdateItemCommand({
            TableName: this.table,
            Key: keyOf(deviceId),
            UpdateExpression: update.expression,
            ConditionExpression: update.condition,
            ExpressionAttributeNames: namesIn(update.expression, update.condition),
            ...(update.values ? { ExpressionAttributeValues: update.values } : {}),
            ...(update.returnValues ? { ReturnValues: update.returnValues } : {}),
          }),
          'UpdateItem',
        );
        passed.set(deviceId, out.Attributes as Item | undefined);
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        failed.push(deviceId);
      }
    });
    return { passed: ids.filter((id) => passed.has(id)).map((deviceId) => ({ deviceId, old: passed.get(deviceId) })), failed };
  }

  /**
   * Takes ids off the allow-list. Their item stays, with the certificate the hook recorded (a
   * revoked id that provisioned keeps that record); returns the ids that were not on the list.
   */
  async revoke(ids: string[]): Promise<{ revoked: string[]; notListed: string[] }> {
    const { passed, failed } = await this.#updateEach(ids, {
      expression: 'SET #revokedAt = :now REMOVE #allowedAt',
      condition: 'attribute_exists(#allowedAt)',
      values: { ':now': S(this.#now().toISOString()) },
    });
    return { revoked: passed.map((p) => p.deviceId), notListed: failed };
  }

  /**
   * Re-arms ids for one more provisioning (a re-flashed or repaired device): forgets the approved
   * certificate and the last refusal. Returns, per id, the certificate it forgets (or none).
   */
  async reset(ids: string[]): Promise<{ reset: { deviceId: string; certificateId?: string }[]; unknown: string[] }> {
    const forget = [DEVICE_ITEM.certificateId, DEVICE_ITEM.publicKeySha256, DEVICE_ITEM.approvedAt, DEVICE_ITEM.claimCertificateId, DEVICE_ITEM.lastRefusal, DEVICE_ITEM.lastRefusedAt];
    const { passed, failed } = await this.#updateEach(ids, {
      expression: `REMOVE ${forget.map((n) => `#${n}`).join(', ')}`,
      condition: `attribute_exists(#${DEVICE_ITEM.key})`,
      returnValues: 'UPDATED_OLD',
    });
    const reset = passed.map(({ deviceId, old }) => {
      const certificateId = old ? recordOf({ ...old, ...keyOf(deviceId) }).certificateId : undefined;
      return certificateId ? { deviceId, certificateId } : { deviceId };
    });
    return { reset, unknown: failed };
  }

  /** The records of these ids, in the order given; ids without an item are left out. */
  async get(ids: string[]): Promise<DeviceRecord[]> {
    const found = new Map<string, Item>();
    await inPool(chunk(ids, BATCH_GET_MAX), this.#concurrency, async (group) => {
      for (const [id, item] of await this.#batchGet(group)) found.set(id, item);
    });
    return ids.flatMap((id) => {
      const item = found.get(id);
      return item ? [recordOf(item)] : [];
    });
  }

  /** The Scan pages of a filter, following LastEvaluatedKey. */
  async *#scan(filter: ListFilter, select?: 'COUNT'): AsyncGenerator<ScanCommandOutput> {
    const expression = filter === 'all' ? undefined : FILTERS[filter];
    let ExclusiveStartKey: Item | undefined;
    do {
      const out = await this.#send<ScanCommandOutput>(
        new ScanCommand({
          TableName: this.table,
          ...(select ? { Select: select } : {}),
          ...(expression ? { FilterExpression: expression, ExpressionAttributeNames: namesIn(expression) } : {}),
          ...(ExclusiveStartKey ? { ExclusiveStartKey } : {}),
        }),
        'Scan',
      );
      yield out;
      ExclusiveStartKey = out.LastEvaluatedKey as Item | undefined;
    } while (ExclusiveStartKey);
  }

  /** Every record that passes the filter, page by page (Scan: the table is read once). */
  async *list(filter: ListFilter = 'all'): AsyncGenerator<DeviceRecord[]> {
    for await (const page of this.#scan(filter)) {
      const records = ((page.Items ?? []) as Item[]).map(recordOf);
      if (records.length) yield records;
    }
  }

  /**
   * How many ids pass the filter: Scan with Select COUNT returns no attributes, but DynamoDB
   * still reads every item (on-demand: one read request unit per 8 KB scanned, eventually
   * consistent), so about 2,000 read units, a fraction of a cent, for 100,000 ids.
   */
  async count(filter: Exclude<ListFilter, 'all'>): Promise<number> {
    let total = 0;
    for await (const page of this.#scan(filter, 'COUNT')) total += page.Count ?? 0;
    return total;
  }
}
