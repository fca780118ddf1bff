// The emulator's registry: certificates, policies, templates, things and thing groups in one
// SQLite database (`<state dir>/registry.sqlite3`, WAL), readable with the sqlite3 CLI while the
// emulator runs. Reads are synchronous queries; every change goes through `write()`, whose
// promise settles only once the change is durable. Changes made in the same turn of the event
// loop share one transaction and one fsync (group commit), so an acknowledged provisioning
// survives kill -9 and a power cut without one fsync per request.
//
// Durability without blocking: SQLite runs with synchronous=NORMAL (a commit writes its WAL
// frames but does not fsync), and the batch's promise settles after an fsync of the WAL file
// done on libuv's thread pool. Committed frames that reached the disk are recovered by SQLite;
// checkpoints still sync the WAL before copying it and the database after, so frames are never
// only in a file that was not synced. The event loop never waits for the disk (p50 4 ms here).
import Database from 'better-sqlite3';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { CertificateStatus, ProvisioningTemplateInput } from './control-plane.ts';
import { MIGRATIONS } from './registry-schema.ts';

export const REGISTRY_FILE = 'registry.sqlite3';

export interface CertificateRecord {
  certificateId: string;
  certificatePem: string;
  status: CertificateStatus;
  creationDate: string;
  notAfter: string;
  claimCertificateId?: string;
  /** Pending fleet-provisioning registration: the SHA-256 of the ownership token, never the token. */
  ownership?: { tokenSha256: string; expiresAt: number };
}

export interface ThingRecord {
  thingName: string;
  attributes: Record<string, string>;
  thingGroups: string[];
  thingTypeName?: string;
  /** Certificate ids attached to the thing. */
  principals: string[];
}

/** A DynamoDB table of the emulator's DynamoDB: its key schema (CreateTable's KeySchema). */
export interface DynamoTableRecord {
  tableName: string;
  keySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  attributeDefinitions: { AttributeName: string; AttributeType: string }[];
  createdAt: string;
}

export interface PolicyRecord {
  policyName: string;
  policyDocument: string;
}

interface CertificateRow {
  certificate_id: string;
  certificate_pem: string;
  status: CertificateStatus;
  creation_date: string;
  not_after: string;
  claim_certificate_id: string | null;
  ownership_token_sha256: string | null;
  ownership_expires_at: number | null;
}

interface ThingRow {
  thing_name: string;
  attributes: string;
  thing_type_name: string | null;
}

const certificateOf = (r: CertificateRow): CertificateRecord => ({
  certificateId: r.certificate_id,
  certificatePem: r.certificate_pem,
  status: r.status,
  creationDate: r.creation_date,
  notAfter: r.not_after,
  ...(r.claim_certificate_id ? { claimCertificateId: r.claim_certificate_id } : {}),
  ...(r.ownership_token_sha256 ? { ownership: { tokenSha256: r.ownership_token_sha256, expiresAt: r.ownership_expires_at ?? 0 } } : {}),
});

/** The changes a `write()` callback may make; it may read through the same object. */
export interface RegistryWriter extends RegistryReader {
  putCertificate(record: CertificateRecord): void;
  /** Sets the status and ends any pending registration (the ownership token). */
  setCertificateStatus(certificateId: string, status: CertificateStatus): void;
  deleteCertificate(certificateId: string): void;
  /** Deletes PENDING_ACTIVATION certificates whose ownership token expired at `now`; returns how many. */
  deleteExpiredPending(now: number): number;
  attachPolicy(certificateId: string, policyName: string): void;
  detachPolicy(certificateId: string, policyName: string): void;
  putPolicy(policy: PolicyRecord): void;
  deletePolicy(policyName: string): void;
  putTemplate(template: ProvisioningTemplateInput): void;
  deleteTemplate(templateName: string): void;
  /** Creates or replaces a thing: attributes, type, groups (which must exist) and principals. */
  putThing(thing: ThingRecord): void;
  /** Deletes a thing (its group memberships and principals go with it); no thing, no change. */
  deleteThing(thingName: string): void;
  putThingGroup(thingGroupName: string): void;
  /** Deletes the group and every membership in it. */
  deleteThingGroup(thingGroupName: string): void;
  putDynamoTable(table: DynamoTableRecord): void;
  /** Deletes a DynamoDB table and its items. */
  deleteDynamoTable(tableName: string): void;
  /** Creates or replaces one item (`itemKey`: the key values, as dynamoItemKey makes it). */
  putDynamoItem(tableName: string, itemKey: string, item: object): void;
  deleteDynamoItem(tableName: string, itemKey: string): void;
}

const READS = [
  'getCertificate',
  'listCertificates',
  'certificateByOwnershipToken',
  'policiesOf',
  'policyDocumentsOf',
  'certificatesWithPolicy',
  'getPolicy',
  'getTemplate',
  'getTemplateJson',
  'getThing',
  'listThings',
  'thingsOf',
  'thingsInGroup',
  'hasThingGroup',
  'count',
  'getDynamoTable',
  'getDynamoItem',
  'scanDynamoItems',
  'countDynamoItems',
] as const;

export type RegistryReader = Pick<Registry, (typeof READS)[number]>;

export interface RegistryOptions {
  /** For tests of the storage itself; the emulator always opens `<dir>/registry.sqlite3`. */
  file?: string;
}

export class Registry {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  /** The batch being collected: settles when its transaction commits. */
  #batch: { done: Promise<void>; resolve: () => void; reject: (error: Error) => void } | undefined;
  readonly #writer: RegistryWriter;
  /** One change inside the batch (a savepoint): made once, better-sqlite3 builds a wrapper per call. */
  readonly #change: <T>(change: (tx: RegistryWriter) => T) => T;

  private constructor(readonly file: string) {
    this.#db = new Database(file);
    // WAL: readers (the sqlite3 CLI) never block the emulator; NORMAL: see the header.
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 5000');
    this.#migrate();
    this.#writer = this.#makeWriter();
    this.#change = this.#db.transaction((change: (tx: RegistryWriter) => unknown) => change(this.#writer)) as <T>(change: (tx: RegistryWriter) => T) => T;
  }

  /** Opens (creating or migrating) the registry of a state directory. */
  static open(dir: string, options: RegistryOptions = {}): Registry {
    const file = options.file ?? path.join(dir, REGISTRY_FILE);
    try {
      return new Registry(file);
    } catch (error) {
      throw new Error(`${file}: cannot open the emulator registry: ${(error as Error).message}`);
    }
  }

  #migrate(): void {
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) throw new Error(`schema version ${version} is newer than this emulator knows (${MIGRATIONS.length})`);
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.#db.transaction(() => {
        this.#db.exec(MIGRATIONS[v]!);
        this.#db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  #q<R = unknown>(sql: string): Database.Statement<unknown[], R> {
    let statement = this.#statements.get(sql);
    if (!statement) this.#statements.set(sql, (statement = this.#db.prepare(sql)));
    return statement as Database.Statement<unknown[], R>;
  }

  /**
   * Runs `change` at once, atomically (it throws: nothing of it stays), inside the current batch;
   * resolves with its result once the batch is committed and fsynced. Replies that acknowledge a
   * change must wait for this promise.
   */
  write<T>(change: (tx: RegistryWriter) => T): Promise<T> {
    if (!this.#db.inTransaction) this.#begin();
    const batch = this.#batch!;
    let result: T;
    try {
      result = this.#change(change);
    } catch (error) {
      // What was read during the undone change may be remembered: forget it all.
      this.#policyDocuments.clear();
      return Promise.reject(error);
    }
    return batch.done.then(() => result);
  }

  #begin(): void {
    this.#db.exec('BEGIN IMMEDIATE');
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A batch nobody waits on (every change in it failed) must not become an unhandled rejection.
    done.catch(() => undefined);
    this.#batch = { done, resolve, reject };
    setImmediate(() => this.#commit());
  }

  #commit(): void {
    const batch = this.#batch;
    if (!batch) return;
    this.#batch = undefined;
    try {
      this.#db.exec('COMMIT');
    } catch (error) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      this.#policyDocuments.clear();
      batch.reject(error as Error);
      return;
    }
    const synced = this.#durable();
    this.#lastSync = synced.catch(() => undefined);
    synced.then(batch.resolve, batch.reject);
  }

  #wal: Promise<FileHandle> | undefined;
  #lastSync: Promise<void> = Promise.resolve();
  /** The WAL fsync in flight, and the one queued behind it for the commits made meanwhile. */
  #syncing: Promise<void> | undefined;
  #queuedSync: Promise<void> | undefined;

  /**
   * Settles once what is committed now is on disk: by an fsync that starts after this commit. One
   * fsync at a time; the commits made while one runs share the next (under load ~half as many
   * fsyncs, each a round trip through libuv's thread pool).
   */
  #durable(): Promise<void> {
    if (!this.#syncing) return this.#startSync();
    this.#queuedSync ??= this.#syncing
      .catch(() => undefined)
      .then(() => {
        this.#queuedSync = undefined;
        return this.#startSync();
      });
    return this.#queuedSync;
  }

  #startSync(): Promise<void> {
    const sync: Promise<void> = this.#syncWal().finally(() => {
      if (this.#syncing === sync) this.#syncing = undefined;
    });
    this.#syncing = sync;
    return sync;
  }

  async #syncWal(): Promise<void> {
    // The WAL exists from the first commit on, and SQLite keeps it while the connection is open.
    this.#wal ??= open(`${this.file}-wal`, 'r+').catch((error: unknown) => {
      this.#wal = undefined;
      throw error;
    });
    await (await this.#wal).sync();
  }

  /** Commits what is pending, waits until it is durable, and closes the database. */
  async close(): Promise<void> {
    this.#commit();
    await this.#lastSync;
    if (this.#db.open) this.#db.close();
    await (await this.#wal?.catch(() => undefined))?.close();
    this.#wal = undefined;
  }

  // ---- reads

  getCertificate(certificateId: string): CertificateRecord | undefined {
    const row = this.#q<CertificateRow>('SELECT * FROM certificates WHERE certificate_id = ?').get(certificateId);
    return row && certificateOf(row);
  }

  listCertificates(): CertificateRecord[] {
    return this.#q<CertificateRow>('SELECT * FROM certificates ORDER BY rowid').all().map(certificateOf);
  }

  certificateByOwnershipToken(tokenSha256: string): CertificateRecord | undefined {
    const row = this.#q<CertificateRow>('SELECT * FROM certificates WHERE ownership_token_sha256 = ?').get(tokenSha256);
    return row && certificateOf(row);
  }

  policiesOf(certificateId: string): string[] {
    return this.#q<string>('SELECT policy_name FROM certificate_policies WHERE certificate_id = ? ORDER BY rowid').pluck().all(certificateId);
  }

  /**
   * The documents of the policies attached to a certificate (those that exist). Asked on every
   * CONNECT, PUBLISH, SUBSCRIBE and delivery, so remembered per certificate until a change to its
   * policies (or a failed change: see write()).
   */
  policyDocumentsOf(certificateId: string): readonly PolicyRecord[] {
    let documents = this.#policyDocuments.get(certificateId);
    if (!documents) {
      documents = this.#q<PolicyRecord>(
        `SELECT p.policy_name AS policyName, p.policy_document AS policyDocument
           FROM certificate_policies cp JOIN policies p ON p.policy_name = cp.policy_name
          WHERE cp.certificate_id = ? ORDER BY cp.rowid`,
      ).all(certificateId);
      if (this.#policyDocuments.size >= 50_000) this.#policyDocuments.clear();
      this.#policyDocuments.set(certificateId, documents);
    }
    return documents;
  }

  readonly #policyDocuments = new Map<string, readonly PolicyRecord[]>();

  certificatesWithPolicy(policyName: string): number {
    return this.#q<number>('SELECT count(*) FROM certificate_policies WHERE policy_name = ?').pluck().get(policyName)!;
  }

  getPolicy(policyName: string): PolicyRecord | undefined {
    return this.#q<PolicyRecord>('SELECT policy_name AS policyName, policy_document AS policyDocument FROM policies WHERE policy_name = ?').get(policyName);
  }

  getTemplate(templateName: string): ProvisioningTemplateInput | undefined {
    const json = this.getTemplateJson(templateName);
    return json === undefined ? undefined : (JSON.parse(json) as ProvisioningTemplateInput);
  }

  /** A template as stored (ProvisioningTemplateInput as JSON): a reader that parses it once can tell a new version by it. */
  getTemplateJson(templateName: string): string | undefined {
    return this.#q<string>('SELECT template FROM provisioning_templates WHERE template_name = ?').pluck().get(templateName);
  }

  getThing(thingName: string): ThingRecord | undefined {
    const row = this.#q<ThingRow>('SELECT * FROM things WHERE thing_name = ?').get(thingName);
    return row && this.#thingOf(row);
  }

  listThings(): ThingRecord[] {
    return this.#q<ThingRow>('SELECT * FROM things ORDER BY rowid').all().map((row) => this.#thingOf(row));
  }

  #thingOf(row: ThingRow): ThingRecord {
    return {
      thingName: row.thing_name,
      attributes: JSON.parse(row.attributes) as Record<string, string>,
      thingGroups: this.#q<string>('SELECT thing_group_name FROM thing_group_members WHERE thing_name = ? ORDER BY rowid').pluck().all(row.thing_name),
      ...(row.thing_type_name ? { thingTypeName: row.thing_type_name } : {}),
      principals: this.#q<string>('SELECT certificate_id FROM thing_principals WHERE thing_name = ? ORDER BY rowid').pluck().all(row.thing_name),
    };
  }

  /** Thing names whose principals include the certificate. */
  thingsOf(certificateId: string): string[] {
    return this.#q<string>('SELECT thing_name FROM thing_principals WHERE certificate_id = ? ORDER BY rowid').pluck().all(certificateId);
  }

  thingsInGroup(thingGroupName: string): string[] {
    return this.#q<string>('SELECT thing_name FROM thing_group_members WHERE thing_group_name = ? ORDER BY rowid').pluck().all(thingGroupName);
  }

  hasThingGroup(thingGroupName: string): boolean {
    return this.#q('SELECT 1 FROM thing_groups WHERE thing_group_name = ?').get(thingGroupName) !== undefined;
  }

  /** How many rows a table holds (things, certificates, ...): for status lines and benchmarks. */
  count(table: 'things' | 'certificates' | 'policies' | 'provisioning_templates' | 'thing_groups'): number {
    return this.#q<number>(`SELECT count(*) FROM ${table}`).pluck().get()!;
  }

  getDynamoTable(tableName: string): DynamoTableRecord | undefined {
    const row = this.#q<{ key_schema: string; created_at: string }>('SELECT key_schema, created_at FROM dynamodb_tables WHERE table_name = ?').get(tableName);
    if (!row) return undefined;
    const schema = JSON.parse(row.key_schema) as Pick<DynamoTableRecord, 'keySchema' | 'attributeDefinitions'>;
    return { tableName, ...schema, createdAt: row.created_at };
  }

  getDynamoItem(tableName: string, itemKey: string): Record<string, Record<string, unknown>> | undefined {
    const json = this.#q<string>('SELECT item FROM dynamodb_items WHERE table_name = ? AND item_key = ?').pluck().get(tableName, itemKey);
    return json === undefined ? undefined : (JSON.parse(json) as Record<string, Record<string, unknown>>);
  }

  /** Items in key order after `afterKey` (exclusive), at most `limit`: a Scan page. */
  scanDynamoItems(tableName: string, afterKey: string | undefined, limit: number): { itemKey: string; item: Record<string, Record<string, unknown>> }[] {
    return this.#q<{ item_key: string; item: string }>(
      'SELECT item_key, item FROM dynamodb_items WHERE table_name = ? AND item_key > ? ORDER BY item_key LIMIT ?',
    )
      .all(tableName, afterKey ?? '', limit)
      .map((r) => ({ itemKey: r.item_key, item: JSON.parse(r.item) as Record<string, Record<string, unknown>> }));
  }

  countDynamoItems(tableName: string): number {
    return this.#q<number>('SELECT count(*) FROM dynamodb_items WHERE table_name = ?').pluck().get(tableName)!;
  }

  // ---- writes (only through write())

  #makeWriter(): RegistryWriter {
    const q = <R = unknown>(sql: string) => this.#q<R>(sql);
    const writer: Omit<RegistryWriter, keyof RegistryReader> = {
      putCertificate: (c) => {
        q(
          `INSERT INTO certificates (certificate_id, certificate_pem, status, creation_date, not_after, claim_certificate_id, ownership_token_sha256, ownership_expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (certificate_id) DO UPDATE SET certificate_pem = excluded.certificate_pem, status = excluded.status,
             creation_date = excluded.creation_date, not_after = excluded.not_after, claim_certificate_id = excluded.claim_certificate_id,
             ownership_token_sha256 = excluded.ownership_token_sha256, ownership_expires_at = excluded.ownership_expires_at`,
        ).run(
          c.certificateId,
          c.certificatePem,
          c.status,
          c.creationDate,
          c.notAfter,
          c.claimCertificateId ?? null,
          c.ownership?.tokenSha256 ?? null,
          c.ownership?.expiresAt ?? null,
        );
      },
      setCertificateStatus: (id, status) => {
        q('UPDATE certificates SET status = ?, ownership_token_sha256 = NULL, ownership_expires_at = NULL WHERE certificate_id = ?').run(status, id);
      },
      deleteCertificate: (id) => {
        this.#policyDocuments.delete(id);
        q('DELETE FROM certificates WHERE certificate_id = ?').run(id);
      },
      deleteExpiredPending: (now) => {
        this.#policyDocuments.clear();
        return q(`DELETE FROM certificates WHERE status = 'PENDING_ACTIVATION' AND ownership_token_sha256 IS NOT NULL AND ownership_expires_at <= ?`).run(now).changes;
      },
      attachPolicy: (id, name) => {
        this.#policyDocuments.delete(id);
        q('INSERT OR IGNORE INTO certificate_policies (certificate_id, policy_name) VALUES (?, ?)').run(id, name);
      },
      detachPolicy: (id, name) => {
        this.#policyDocuments.delete(id);
        q('DELETE FROM certificate_policies WHERE certificate_id = ? AND policy_name = ?').run(id, name);
      },
      putPolicy: (p) => {
        this.#policyDocuments.clear();
        q('INSERT INTO policies (policy_name, policy_document) VALUES (?, ?) ON CONFLICT (policy_name) DO UPDATE SET policy_document = excluded.policy_document').run(
          p.policyName,
          p.policyDocument,
        );
      },
      deletePolicy: (name) => {
        this.#policyDocuments.clear();
        q('DELETE FROM policies WHERE policy_name = ?').run(name);
      },
      putTemplate: (t) => {
        q('INSERT INTO provisioning_templates (template_name, template) VALUES (?, ?) ON CONFLICT (template_name) DO UPDATE SET template = excluded.template').run(
          t.templateName,
          JSON.stringify(t),
        );
      },
      deleteTemplate: (name) => {
        q('DELETE FROM provisioning_templates WHERE template_name = ?').run(name);
      },
      putThing: (t) => {
        q(
          `INSERT INTO things (thing_name, attributes, thing_type_name) VALUES (?, ?, ?)
           ON CONFLICT (thing_name) DO UPDATE SET attributes = excluded.attributes, thing_type_name = excluded.thing_type_name`,
        ).run(t.thingName, JSON.stringify(t.attributes), t.thingTypeName ?? null);
        q('DELETE FROM thing_group_members WHERE thing_name = ?').run(t.thingName);
        for (const group of t.thingGroups) q('INSERT OR IGNORE INTO thing_group_members (thing_name, thing_group_name) VALUES (?, ?)').run(t.thingName, group);
        q('DELETE FROM thing_principals WHERE thing_name = ?').run(t.thingName);
        for (const id of t.principals) q('INSERT OR IGNORE INTO thing_principals (thing_name, certificate_id) VALUES (?, ?)').run(t.thingName, id);
      },
      deleteThing: (name) => {
        q('DELETE FROM things WHERE thing_name = ?').run(name);
      },
      putDynamoTable: (t) => {
        q('INSERT INTO dynamodb_tables (table_name, key_schema, created_at) VALUES (?, ?, ?)').run(
          t.tableName,
          JSON.stringify({ keySchema: t.keySchema, attributeDefinitions: t.attributeDefinitions }),
          t.createdAt,
        );
      },
      deleteDynamoTable: (name) => {
        q('DELETE FROM dynamodb_tables WHERE table_name = ?').run(name);
      },
      putDynamoItem: (table, key, item) => {
        q('INSERT INTO dynamodb_items (table_name, item_key, item) VALUES (?, ?, ?) ON CONFLICT (table_name, item_key) DO UPDATE SET item = excluded.item').run(
          table,
          key,
          JSON.stringify(item),
        );
      },
      deleteDynamoItem: (table, key) => {
        q('DELETE FROM dynamodb_items WHERE table_name = ? AND item_key = ?').run(table, key);
      },
      putThingGroup: (name) => {
        q('INSERT OR IGNORE INTO thing_groups (thing_group_name) VALUES (?)').run(name);
      },
      deleteThingGroup: (name) => {
        q('DELETE FROM thing_groups WHERE thing_group_name = ?').run(name);
      },
    };
    // Reads inside a change see the change so far (same connection, same transaction).
    const reads = Object.fromEntries(READS.map((name) => [name, (this[name] as (...args: never[]) => unknown).bind(this)])) as unknown as RegistryReader;
    return { ...reads, ...writer };
  }
}
