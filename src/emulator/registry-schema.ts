// The registry's SQLite schema, as an append-only list of migrations: entry i takes a database
// from `PRAGMA user_version` i to i + 1. To add a table (an allow-list, say), append an entry;
// never edit one that has shipped. Names follow AWS IoT's (certificate_id, thing_name, ...) so the
// database reads naturally with the sqlite3 CLI.

export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE certificates (
    certificate_id         TEXT PRIMARY KEY,
    certificate_pem        TEXT NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE', 'REVOKED', 'PENDING_ACTIVATION')),
    creation_date          TEXT NOT NULL,
    not_after              TEXT NOT NULL,
    claim_certificate_id   TEXT,
    -- A pending fleet-provisioning registration: the SHA-256 of the ownership token, never the token.
    ownership_token_sha256 TEXT UNIQUE,
    ownership_expires_at   INTEGER
  );
  CREATE INDEX certificates_by_ownership_expiry ON certificates (ownership_expires_at) WHERE ownership_token_sha256 IS NOT NULL;

  CREATE TABLE policies (
    policy_name     TEXT PRIMARY KEY,
    policy_document TEXT NOT NULL
  );

  CREATE TABLE certificate_policies (
    certificate_id TEXT NOT NULL REFERENCES certificates ON DELETE CASCADE,
    policy_name    TEXT NOT NULL,
    PRIMARY KEY (certificate_id, policy_name)
  );
  CREATE INDEX certificate_policies_by_policy ON certificate_policies (policy_name);

  CREATE TABLE provisioning_templates (
    template_name TEXT PRIMARY KEY,
    -- ProvisioningTemplateInput as JSON (body, enabled, role, hook).
    template      TEXT NOT NULL
  );

  CREATE TABLE thing_groups (
    thing_group_name TEXT PRIMARY KEY
  );

  CREATE TABLE things (
    thing_name      TEXT PRIMARY KEY,
    attributes      TEXT NOT NULL DEFAULT '{}',
    thing_type_name TEXT
  );

  CREATE TABLE thing_group_members (
    thing_name       TEXT NOT NULL REFERENCES things ON DELETE CASCADE,
    thing_group_name TEXT NOT NULL REFERENCES thing_groups ON DELETE CASCADE,
    PRIMARY KEY (thing_name, thing_group_name)
  );
  CREATE INDEX thing_group_members_by_group ON thing_group_members (thing_group_name);

  CREATE TABLE thing_principals (
    thing_name     TEXT NOT NULL REFERENCES things ON DELETE CASCADE,
    certificate_id TEXT NOT NULL REFERENCES certificates,
    PRIMARY KEY (thing_name, certificate_id)
  );
  CREATE INDEX thing_principals_by_certificate ON thing_principals (certificate_id);
  `,
  // The DynamoDB tables the stack creates (its device table), for the emulator's DynamoDB.
  `
  CREATE TABLE dynamodb_tables (
    table_name TEXT PRIMARY KEY,
    -- KeySchema and AttributeDefinitions as CreateTable took them (JSON).
    key_schema TEXT NOT NULL,
    created_at TEXT NOT NULL
  );

  CREATE TABLE dynamodb_items (
    table_name TEXT NOT NULL REFERENCES dynamodb_tables ON DELETE CASCADE,
    -- The key attributes' values, in key-schema order, as JSON: the item's identity.
    item_key   TEXT NOT NULL,
    -- The whole item in DynamoDB's AttributeValue JSON.
    item       TEXT NOT NULL,
    PRIMARY KEY (table_name, item_key)
  );
  `,
];
