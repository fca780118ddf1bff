// One device id's item in the device table, as DynamoDB AttributeValues and as a record. The
// attribute names are the hook's (DEVICE_ITEM), which reads and writes the same item.
import { DEVICE_ITEM } from '../../shared/pre-provisioning-hook.ts';

export type AttributeValue = { S: string } | { M: Record<string, AttributeValue> } | { N: string } | { BOOL: boolean } | { NULL: true };
export type Item = Record<string, AttributeValue>;

export interface DeviceRecord {
  deviceId: string;
  /** On the allow-list (since allowedAt). */
  allowed: boolean;
  allowedAt?: string;
  revokedAt?: string;
  attributes: Record<string, string>;
  /** The certificate the hook approved last for this id, and when. */
  certificateId?: string;
  approvedAt?: string;
  lastRefusal?: string;
  lastRefusedAt?: string;
}

const str = (item: Item, name: string): string | undefined => {
  const v = item[name];
  return v && 'S' in v ? v.S : undefined;
};

export const S = (value: string): AttributeValue => ({ S: value });

export const keyOf = (deviceId: string): Item => ({ [DEVICE_ITEM.key]: S(deviceId) });

export function attributesValue(attributes: Record<string, string>): AttributeValue {
  return { M: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, S(v)])) };
}

export function attributesOf(item: Item): Record<string, string> {
  const v = item[DEVICE_ITEM.attributes];
  if (!v || !('M' in v)) return {};
  return Object.fromEntries(Object.entries(v.M).flatMap(([k, a]) => ('S' in a ? [[k, a.S]] : [])));
}

export function recordOf(item: Item): DeviceRecord {
  const optional = (name: keyof DeviceRecord, attribute: string) => {
    const v = str(item, attribute);
    return v === undefined ? {} : { [name]: v };
  };
  return {
    deviceId: str(item, DEVICE_ITEM.key) ?? '',
    allowed: str(item, DEVICE_ITEM.allowedAt) !== undefined,
    ...optional('allowedAt', DEVICE_ITEM.allowedAt),
    ...optional('revokedAt', DEVICE_ITEM.revokedAt),
    attributes: attributesOf(item),
    ...optional('certificateId', DEVICE_ITEM.certificateId),
    ...optional('approvedAt', DEVICE_ITEM.approvedAt),
    ...optional('lastRefusal', DEVICE_ITEM.lastRefusal),
    ...optional('lastRefusedAt', DEVICE_ITEM.lastRefusedAt),
  };
}

/** A new allow-list entry (BatchWriteItem's PutRequest: only for ids that have no item yet). */
export function newItem(deviceId: string, attributes: Record<string, string> | undefined, now: string): Item {
  return {
    ...keyOf(deviceId),
    [DEVICE_ITEM.allowedAt]: S(now),
    ...(attributes && Object.keys(attributes).length ? { [DEVICE_ITEM.attributes]: attributesValue(attributes) } : {}),
  };
}

const sameAttributes = (a: Record<string, string>, b: Record<string, string>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/** What an import does to an id that has an item: nothing, re-allow it, or set its attributes. */
export function importChange(existing: Item, attributes: Record<string, string> | undefined): 'present' | 'reallow' | 'update' {
  if (str(existing, DEVICE_ITEM.allowedAt) === undefined) return 'reallow';
  if (attributes && !sameAttributes(attributesOf(existing), attributes)) return 'update';
  return 'present';
}
