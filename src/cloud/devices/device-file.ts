// Reads the device lists `fp-yocto devices import` and `init --allow-list` take: one device id a
// line, or a CSV whose header names the per-device attributes (deviceId,model,batch). Pure: text
// in, entries and line-numbered problems out. csv-parse does the quoting (RFC 4180), since an
// attribute value may hold a comma.
import { parse } from 'csv-parse/sync';
import { canonicalDeviceId, DEVICE_ID_EXPECTED, type DeviceIdKind } from '../../shared/device-id.ts';

export interface DeviceEntry {
  deviceId: string;
  /** Per-device attributes; undefined when the list has no attribute columns (existing ones stay). */
  attributes?: Record<string, string>;
}

export interface InvalidLine {
  line: number;
  reason: string;
}

export interface DeviceList {
  entries: DeviceEntry[];
  /** Attribute columns of the header, in order; empty for a plain list of ids. */
  columns: string[];
  invalid: InvalidLine[];
  /** Ids listed more than once (the first one counts). */
  duplicates: number;
}

const HEADER_ID = /^(device[_-]?id|id)$/i;
/** A template parameter name that is also a thing attribute name. */
export const ATTRIBUTE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** "AttributePayload" (AWS IoT API Reference): thing attribute values. */
export const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/;

/** Parses a device list; `source` names it in messages (a file name, or --allow-list). */
export function parseDeviceList(text: string, kind: DeviceIdKind, source: string): DeviceList {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { comment: '#', skip_empty_lines: true, relax_column_count: true, trim: true, info: true, bom: true }) as unknown as typeof records;
  } catch (error) {
    const e = error as { lines?: number; message: string };
    return { entries: [], columns: [], invalid: [{ line: e.lines ?? 0, reason: `${source}: not readable as CSV: ${e.message}` }], duplicates: 0 };
  }
  const invalid: InvalidLine[] = [];
  let columns: string[] = [];
  let body = records;
  const first = records[0];
  // A first line starting with deviceId (or device_id, id) is the header, whatever the id kind.
  if (first && HEADER_ID.test(first.record[0] ?? '')) {
    columns = first.record.slice(1);
    const badColumns = columns.filter((c) => !ATTRIBUTE_NAME.test(c));
    if (badColumns.length) {
      invalid.push({ line: first.info.lines, reason: `attribute column ${JSON.stringify(badColumns[0])}: expected a name of letters, digits and _ starting with a letter` });
      return { entries: [], columns: [], invalid, duplicates: 0 };
    }
    body = records.slice(1);
  }
  const seen = new Set<string>();
  const entries: DeviceEntry[] = [];
  let duplicates = 0;
  for (const { record, info } of body) {
    const line = info.lines;
    const [raw = '', ...values] = record;
    const deviceId = canonicalDeviceId(kind, raw);
    if (!deviceId) {
      invalid.push({ line, reason: `${JSON.stringify(raw)}: expected ${DEVICE_ID_EXPECTED[kind]}` });
      continue;
    }
    if (values.length > columns.length) {
      invalid.push({ line, reason: columns.length ? `${values.length} attribute values for ${columns.length} column(s)` : 'attribute values need a header line such as deviceId,model' });
      continue;
    }
    const badValue = values.find((v) => !ATTRIBUTE_VALUE.test(v));
    if (badValue !== undefined) {
      invalid.push({ line, reason: `attribute value ${JSON.stringify(badValue)}: expected at most 800 of a-z A-Z 0-9 _ . , @ / : # = [ ] -` });
      continue;
    }
    if (seen.has(deviceId)) {
      duplicates++;
      continue;
    }
    seen.add(deviceId);
    const attributes = Object.fromEntries(columns.map((c, i) => [c, values[i] ?? '']).filter(([, v]) => v !== ''));
    entries.push(columns.length ? { deviceId, attributes } : { deviceId });
  }
  return { entries, columns, invalid, duplicates };
}

/** Device ids given on the command line, comma-separated or as separate arguments. */
export function parseDeviceIds(values: string[], kind: DeviceIdKind): { ids: string[]; invalid: string[] } {
  const given = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const ids: string[] = [];
  const invalid: string[] = [];
  for (const value of given) {
    const id = canonicalDeviceId(kind, value);
    if (id) ids.push(id);
    else invalid.push(value);
  }
  return { ids: [...new Set(ids)], invalid };
}
