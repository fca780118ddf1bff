// The small YAML the project writes itself: block mappings whose values are JSON (strings, numbers,
// booleans, null, flow {} and []) or plain strings that read the same in YAML 1.1 and 1.2. The
// layer's config recipe writes config.yaml this way, and the agent its Greengrass drop-in. Reading
// it needs no YAML library, so the agent does not load `yaml` (most of its bundle, and a tenth of
// a Node start) on a device whose config came from the layer. Anything outside the subset is
// `undefined`, and the caller hands the text to the full parser: the fast path never reads a
// document differently from `yaml` (test/shared/simple-yaml.test.ts holds it to that).

/**
 * Plain (unquoted) strings both YAML 1.1 (libyaml, ggconfigd) and 1.2 (`yaml`) read as strings:
 * a letter or / first, then letters, digits, _ . / - (no number, no : or #), or a dotted IPv4 address.
 */
const PLAIN_STRING = /^(?:[A-Za-z/][A-Za-z0-9_./-]*|\d{1,3}(?:\.\d{1,3}){3})$/;
/** Words YAML 1.1 or 1.2 reads as booleans or null. */
const KEYWORD = /^(?:true|false|null|yes|no|on|off|y|n)$/i;
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const LINE = /^( *)("(?:[^"\\]|\\.)*"|[^\s":#][^":#]*?):(?: +(.*?))? *$/;

export const isPlainString = (value: string): boolean => PLAIN_STRING.test(value) && !KEYWORD.test(value);

type Doc = Record<string, unknown>;

function parseKey(raw: string): string | undefined {
  if (raw.startsWith('"')) {
    try {
      return JSON.parse(raw) as string;
    } catch {
      return undefined;
    }
  }
  return PLAIN_KEY.test(raw) && !KEYWORD.test(raw) ? raw : undefined;
}

/**
 * Whether well-formed JSON text repeats a key within one object. JSON.parse keeps the last one;
 * YAML refuses the document ("Map keys must be unique"), so such a value is not in the subset.
 */
function repeatsKey(json: string): boolean {
  const objects: Array<Set<string> | undefined> = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '{') objects.push(new Set());
    else if (c === '[') objects.push(undefined);
    else if (c === '}' || c === ']') objects.pop();
    else if (c === '"') {
      let end = i + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const token = json.slice(i, end + 1);
      i = end;
      let next = end + 1;
      while (/\s/.test(json[next] ?? '')) next++;
      const keys = objects.at(-1);
      if (json[next] !== ':' || !keys) continue;
      const key = JSON.parse(token) as string;
      if (keys.has(key) || key === '__proto__') return true;
      keys.add(key);
    }
  }
  return false;
}

/** A value of the subset, or `NOT_SIMPLE`. */
const NOT_SIMPLE = Symbol('not simple');
function parseValue(raw: string): unknown {
  if (isPlainString(raw)) return raw;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return NOT_SIMPLE;
  }
  return typeof value === 'object' && value !== null && repeatsKey(raw) ? NOT_SIMPLE : value;
}

/** The document, when `text` is in the subset; otherwise undefined (use a YAML parser). */
export function parseSimpleYaml(text: string): Doc | undefined {
  const root: Doc = {};
  // The mappings open at each indentation, innermost last.
  const open: Array<{ map: Doc; indent: number }> = [{ map: root, indent: 0 }];
  let pending: { map: Doc; key: string; indent: number } | undefined;
  for (const line of text.split('\n')) {
    if (/^ *(#.*)?$/.test(line)) continue;
    const match = LINE.exec(line);
    if (!match) return undefined;
    const indent = match[1]!.length;
    if (pending) {
      // `key:` alone: a mapping when the next line is deeper, else null.
      if (indent > pending.indent) {
        const child: Doc = {};
        pending.map[pending.key] = child;
        open.push({ map: child, indent });
      } else pending.map[pending.key] = null;
      pending = undefined;
    }
    while (open.length > 1 && open.at(-1)!.indent > indent) open.pop();
    const { map, indent: level } = open.at(-1)!;
    if (indent !== level) return undefined;
    const key = parseKey(match[2]!);
    if (key === undefined || key === '__proto__' || Object.hasOwn(map, key)) return undefined;
    const raw = match[3];
    if (raw === undefined || raw === '') {
      pending = { map, key, indent };
      continue;
    }
    const value = parseValue(raw);
    if (value === NOT_SIMPLE) return undefined;
    map[key] = value;
  }
  if (pending) pending.map[pending.key] = null;
  return root;
}

/** Writes a document in the subset: nested mappings as blocks, plain strings bare, the rest as JSON. */
export function stringifySimpleYaml(doc: Doc, indent = ''): string {
  let text = '';
  for (const [key, value] of Object.entries(doc)) {
    const name = PLAIN_KEY.test(key) && !KEYWORD.test(key) ? key : JSON.stringify(key);
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
      text += `${indent}${name}:\n${stringifySimpleYaml(value as Doc, `${indent}  `)}`;
    } else {
      text += `${indent}${name}: ${typeof value === 'string' && isPlainString(value) ? value : JSON.stringify(value)}\n`;
    }
  }
  return text;
}
